"""General settings stored in the database (``management.db_config``) against a real ``relaygate serve`` with two
workers and a SQLite database: a field set through ``/config/field/update`` is served by every worker, shown by
``/config/list``, refused when the YAML file sets it (the refusal names the file), taken away by
``/config/field/delete``, and served again by a gateway started later on the same database."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-db-general-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
GS = "general_settings"


def _config(db: Path) -> str:
    return f"""
model_list:
  - model_name: steady
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
  store_model_in_db: true
  return_wildcard_routes: true
"""


def _call_id_shown(url: str) -> bool:
    r = httpx.post(url + "/v1/chat/completions", headers=ADMIN, timeout=30,
                   json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400, r.text
    return "litellm_call_id" in r.json()["error"]


def _settled(gw: GatewayProc, mark: int, shown: bool) -> bool:
    gw.wait_swapped(mark)
    return all(_call_id_shown(gw.url) is shown for _ in range(8))


def _field(url: str, name: str, value: object) -> httpx.Response:
    return httpx.post(url + "/config/field/update", headers=ADMIN,
                      json={"field_name": name, "field_value": value, "config_type": GS})


def test_general_settings_stored_served_by_every_worker_and_kept() -> None:
    db = Path(tempfile.mkdtemp()) / "g.db"
    with start_gateway(_config(db), workers=2) as gw:
        url = gw.url
        assert not _call_id_shown(url)
        mark = gw.mark()
        r = _field(url, "include_call_id_in_error_body", True)
        assert r.status_code == 200, r.text
        assert r.json() == {"param_name": GS, "param_value": {"include_call_id_in_error_body": True}}
        assert _settled(gw, mark, True)
        listed = {f["field_name"]: f for f in httpx.get(url + "/config/list?config_type=general_settings",
                                                        headers=ADMIN).json()}
        assert (listed["include_call_id_in_error_body"]["source"], listed["return_wildcard_routes"]["source"]) == (
            "db", "config")
        r = _field(url, "return_wildcard_routes", False)
        assert r.status_code == 400 and "is set in the config file" in r.text and str(gw.log_path.parent / "config.yaml") in r.text
    with start_gateway(_config(db), workers=2) as again:  # a restart on the same database serves it
        again.wait_swapped(0)  # each worker's start: the stored settings read and served
        assert all(_call_id_shown(again.url) for _ in range(8))
        mark = again.mark()
        r = httpx.post(again.url + "/config/field/delete", headers=ADMIN,
                       json={"field_name": "include_call_id_in_error_body", "config_type": GS})
        assert r.status_code == 200 and r.json()["param_value"] == {}, r.text
        assert _settled(again, mark, False)
