"""Credentials of database models sealed at rest (store.sealing): AES-GCM under LITELLM_SALT_KEY, else the
master key; only credential-named fields; rows that do not open are skipped by the gateway, never served
with a wrong key, and the opened secrets join the log redactor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from relaygate.config import from_litellm
from relaygate.core.errors import redact
from relaygate.management.models import read_db_models
from relaygate.store import ModelRow, open_store
from relaygate.store.sealing import PREFIX, Sealer, SealError, open_credentials, seal_credentials, sealer_for

PARAMS = {"model": "mock/echo", "api_key": "sk-sealed-upstream-1", "api_base": "http://x/v1",
          "aws_secret_access_key": "aws-secret-value-22", "extra_headers": {"x-api-token": "tok-in-header-333"},
          "temperature": 0.2}


def test_only_credentials_are_sealed_and_they_open_again() -> None:
    s = Sealer("sk-master")
    sealed = seal_credentials(PARAMS, s)
    for k in ("api_key", "aws_secret_access_key"):
        assert sealed[k].startswith(PREFIX) and PARAMS[k] not in sealed[k]
    assert sealed["extra_headers"]["x-api-token"].startswith(PREFIX)
    assert {k: sealed[k] for k in ("model", "api_base", "temperature")} == {
        "model": "mock/echo", "api_base": "http://x/v1", "temperature": 0.2}
    assert open_credentials(sealed, s) == PARAMS
    assert seal_credentials(sealed, s) == sealed  # sealing twice changes nothing
    assert seal_credentials(PARAMS, s)["api_key"] != sealed["api_key"]  # a fresh nonce each time
    with pytest.raises(SealError) as exc:
        open_credentials(sealed, Sealer("another-key"))
    assert "sk-sealed" not in str(exc.value)
    with pytest.raises(SealError):
        open_credentials(sealed, Sealer(None))
    assert open_credentials(PARAMS, s) == PARAMS  # rows written in clear read as they are
    assert seal_credentials(PARAMS, Sealer(None)) == PARAMS  # nothing to seal with


def test_salt_key_wins_over_the_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = from_litellm({"general_settings": {"master_key": "sk-master-x"}}, "<test>")
    monkeypatch.delenv("LITELLM_SALT_KEY", raising=False)
    by_master = seal_credentials({"api_key": "v-1234567890"}, sealer_for(cfg))
    assert open_credentials(by_master, Sealer("sk-master-x")) == {"api_key": "v-1234567890"}
    monkeypatch.setenv("LITELLM_SALT_KEY", "salt-abc")
    by_salt = seal_credentials({"api_key": "v-1234567890"}, sealer_for(cfg))
    assert open_credentials(by_salt, Sealer("salt-abc")) == {"api_key": "v-1234567890"}


def test_gateway_skips_rows_that_do_not_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
        try:
            good = Sealer("key-now")
            await store.create_model(ModelRow(model_id="ok", model_name="ok",
                                              litellm_params=seal_credentials(PARAMS, good)))
            await store.create_model(ModelRow(model_id="old", model_name="old",
                                              litellm_params=seal_credentials(PARAMS, Sealer("key-before"))))
            with caplog.at_level(logging.ERROR, "relaygate"):
                _, deps = await read_db_models(store, good)
            assert [d.id for d in deps] == ["ok"] and deps[0].api_key == "sk-sealed-upstream-1"
            assert any("old" in r.getMessage() and "does not open" in r.getMessage() for r in caplog.records)
            assert "sk-sealed-upstream-1" not in redact("upstream said sk-sealed-upstream-1")
        finally:
            await store.close()

    asyncio.run(main())

