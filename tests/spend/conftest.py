"""The spend tests run on both backends (``db_url``: SQLite file or a database on the session's PostgreSQL)."""

from tests.store.conftest import db_url, run  # noqa: F401
