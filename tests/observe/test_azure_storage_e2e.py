"""LiteLLM's ``azure_storage`` callback against Azurite, Microsoft's Azure Storage emulator (the response cache's
tests start it: HTTPS, OAuth on, Shared Key checked with the emulator's well-known account key), with an account
key and with Entra ID client credentials from a real HTTP server playing Entra's token endpoint; from hand-built
records and through a real ``relaygate serve``. Files are read back from Azurite."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import KNOWN_CALLBACKS, ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.azure_storage import make_azure_storage
from relaygate.sinks.record import Outcome
from tests.cache.test_azure_blob_cache_e2e import (  # noqa: F401  (fixtures)
    ACCOUNT,
    CLIENT_ID,
    SECRET,
    TENANT,
    Azurite,
    Entra,
    azurite,
    entra,
)
from tests.conftest import start_gateway
from tests.observe.test_otel_export import T0, detail, record, with_detail

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's account key for devstoreaccount1 (public: the emulator's documented default)."""
BOTH = ObserveSettings(success_callbacks=("azure_storage",), failure_callbacks=("azure_storage",))
DAY = datetime.fromtimestamp(T0 + 1.5, UTC).strftime("%Y-%m-%d")


def file_system(az: Azurite, name: str) -> str:
    r = az.call("PUT", f"{name}?restype=container")
    assert r.status_code in (201, 409), r.text
    return name


def read(az: Azurite, fs: str, name: str) -> dict[str, Any]:
    r = az.call("GET", f"{fs}/{name}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = json.loads(r.content)
    return out


def names(az: Azurite, fs: str, want: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(found := az.names(fs)) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(found)


def env_of(az: Azurite, fs: str, **extra: str) -> dict[str, str]:
    return {"AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT, "AZURE_STORAGE_FILE_SYSTEM": fs,
            "AZURE_STORAGE_ACCOUNT_URL": az.account_url, **extra}


def send(records: list[Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, az: Azurite,
         settings: ObserveSettings = BOTH, events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    monkeypatch.setenv("SSL_CERT_FILE", str(az.ca))  # TLS contexts load the default paths
    on_event = (lambda e, n: events.append((e, n))) if events is not None else None
    sink = make_azure_storage(settings, env, on_event, **{"flush_interval": 0.01, **options})

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def test_a_file_per_request_with_the_account_key(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fs = file_system(azurite, "llm-logs-key")
    ok = with_detail(detail(), call_id="call-ok")
    failed = record(call_id="call-bad", status=500, outcome=Outcome.ERROR, error_type="internal",
                    error_message="upstream failed")
    hostile = record(call_id="../../etc/passwd")  # a client's x-litellm-call-id never leaves the folder
    sink = send([ok, failed, hostile], env_of(azurite, fs, AZURE_STORAGE_ACCOUNT_KEY=KEY), monkeypatch, azurite)
    got = names(azurite, fs, 3)
    assert sink.sent == 3 and sink.dropped == 0
    # named by the payload's id: the provider's response id, else the call id (as LiteLLM names them)
    assert got == sorted([f"{DAY}/call-bad.json", f"{DAY}/chatcmpl-123.json", f"{DAY}/passwd.json"])
    payload = read(azurite, fs, f"{DAY}/chatcmpl-123.json")
    assert payload["status"] == "success" and payload["model_group"] == "gpt-4o-alias"
    assert payload["messages"] and payload["metadata"]["user_api_key_alias"] == "my-key"
    bad = read(azurite, fs, f"{DAY}/call-bad.json")
    assert bad["status"] == "failure" and "upstream failed" in bad["error_str"]


def test_entra_id_client_credentials(azurite: Azurite, entra: Entra, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fs = file_system(azurite, "llm-logs-entra")
    env = env_of(azurite, fs, AZURE_STORAGE_TENANT_ID=TENANT, AZURE_STORAGE_CLIENT_ID=CLIENT_ID,
                 AZURE_STORAGE_CLIENT_SECRET=SECRET, AZURE_AUTHORITY_HOST=entra.url + "/")
    quiet = ObserveSettings(success_callbacks=("azure_storage",), turn_off_message_logging=True)
    send([with_detail(detail(), call_id="call-entra")], env, monkeypatch, azurite, quiet)
    assert names(azurite, fs, 1) == [f"{DAY}/chatcmpl-123.json"] and entra.grants == 1
    payload = read(azurite, fs, f"{DAY}/chatcmpl-123.json")
    assert "redacted-by-litellm" in json.dumps(payload["messages"])  # message logging off


def test_refused_writes_are_counted(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fs = file_system(azurite, "llm-logs-refused")
    wrong = "A" * 86 + "=="  # a well-formed key Azurite does not know
    events: list[tuple[str, int]] = []
    sink = send([record(call_id="c-1")], env_of(azurite, fs, AZURE_STORAGE_ACCOUNT_KEY=wrong), monkeypatch, azurite,
                events=events)
    assert sink.dropped == 1 and ("azure_storage_dropped", 1) in events and azurite.names(fs) == []
    missing = send([record(call_id="c-2")], env_of(azurite, "no-such-fs", AZURE_STORAGE_ACCOUNT_KEY=KEY),
                   monkeypatch, azurite)
    assert missing.dropped == 1  # the file system is not created (LiteLLM's is not either)
    assert CALLBACK_FAILURES["azure_storage_dropped"] == "azure_storage" and "azure_storage" in KNOWN_CALLBACKS


@pytest.mark.parametrize(("extra", "name"), [
    ({"AZURE_STORAGE_ACCOUNT_NAME": ""}, "AZURE_STORAGE_ACCOUNT_NAME"),
    ({"AZURE_STORAGE_FILE_SYSTEM": ""}, "AZURE_STORAGE_FILE_SYSTEM"),
    ({"AZURE_STORAGE_FILE_SYSTEM": "a/b"}, "AZURE_STORAGE_FILE_SYSTEM"),
    ({"AZURE_STORAGE_ACCOUNT_KEY": "not base64!"}, "AZURE_STORAGE_ACCOUNT_KEY"),
    ({"AZURE_STORAGE_TENANT_ID": "t", "AZURE_STORAGE_CLIENT_ID": "c"}, "AZURE_STORAGE_CLIENT_SECRET"),
    ({"AZURE_STORAGE_ACCOUNT_URL": "ftp://x"}, "AZURE_STORAGE_ACCOUNT_URL")])
def test_config_errors(extra: dict[str, str], name: str) -> None:
    env = {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_FILE_SYSTEM": "logs", **extra}
    with pytest.raises(ConfigError) as err:
        make_azure_storage(BOTH, env, None)
    assert err.value.field == name


def test_azure_storage_through_the_gateway(azurite: Azurite) -> None:  # noqa: F811
    fs = file_system(azurite, "llm-logs-gateway")
    config = """model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
litellm_settings:
  callbacks: ["azure_storage"]
general_settings:
  master_key: sk-e2e-azure-storage
"""
    env = {**env_of(azurite, fs, AZURE_STORAGE_ACCOUNT_KEY=KEY), "SSL_CERT_FILE": str(azurite.ca),
           "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}
    with start_gateway(config, env=env) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "chat", "messages": [
            {"role": "user", "content": "store me"}]}, headers={"authorization": "Bearer sk-e2e-azure-storage"})
        assert r.status_code == 200
        (name,) = names(azurite, fs, 1)
    payload = read(azurite, fs, name)
    assert name.endswith(".json") and payload["messages"] == [{"role": "user", "content": "store me"}]
    assert payload["model_group"] == "chat" and payload["status"] == "success"
