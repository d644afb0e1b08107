"""``relaygate db import-litellm`` of what LiteLLM's UI stores with ``STORE_MODEL_IN_DB``: the models of
``LiteLLM_ProxyModelTable``, their ``litellm_params`` encrypted by LiteLLM's own code (its default NaCl
SecretBox and its ``v2:gcm:`` AES-GCM, run in a subprocess of the litellm package), and the cost settings of
``LiteLLM_Config``. The imported model then answers through a gateway, its upstream key decrypted on the
wire and sealed at rest in relaygate's format."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from typing import Any

import orjson

from relaygate.store.importer import import_litellm
from relaygate.store.sealing import PREFIX, Sealer, open_litellm
from relaygate.store.settings import read_settings
from tests.pg import PostgresServer
from tests.store.conftest import db_url  # noqa: F401  (both backends)
from tests.store.test_importer import _sql, litellm_database

SALT = "sk-litellm-salt-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-for-imported-model"

_ENCRYPT = """
import base64, json, sys
from litellm.proxy.common_utils.encrypt_decrypt_utils import _encrypt_aes_gcm, encrypt_value
out = []
for kind, secret, value in json.loads(sys.stdin.read()):
    if kind == "gcm":
        out.append(_encrypt_aes_gcm(value, secret))
    else:
        out.append(base64.urlsafe_b64encode(encrypt_value(value, secret)).decode())
print(json.dumps(out))
"""


def litellm_encrypt(items: list[tuple[str, str, str]]) -> list[str]:
    """``(format, secret, value)`` encrypted by LiteLLM's own functions ("nacl": its default, "gcm")."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", _ENCRYPT], input=json.dumps(items), capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    out: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_open_litellm_formats() -> None:
    nacl, gcm, other = litellm_encrypt([("nacl", SALT, "hello"), ("gcm", SALT, "héllo"), ("nacl", "sk-x", "hi")])
    assert open_litellm(nacl, SALT) == "hello" and open_litellm(gcm, SALT) == "héllo"
    assert open_litellm(other, SALT) is None  # another key
    for plain in ("openai/gpt-4o", "gpt-4o", "", "http://127.0.0.1:9/v1", "v2:gcm:AAAA", "a" * 80):
        assert open_litellm(plain, SALT) is None
    # what the import takes for a ciphertext it could not open (left out), and for a name in clear (kept)
    from relaygate.store.importer import _sealed

    standard = base64.b64encode(base64.urlsafe_b64decode(other)).decode()  # older LiteLLM's spelling
    assert _sealed(other) and _sealed(gcm) and _sealed(standard)
    assert open_litellm(standard, "sk-x") == "hi"
    for name in ("openai/gpt-4o", "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", "mock/echo",
                 "vertex_ai/projects/my-project/locations/us-central1/publishers/google/models/gemini-pro"):
        assert not _sealed(name), name


GENERAL = {"include_call_id_in_error_body": True, "max_request_size_mb": "huge", "alerting": ["slack"],
           "return_wildcard_routes": None}
"""LiteLLM's stored ``general_settings``: one field relaygate takes from the database, one that does not load,
one relaygate reads only from the file, one null (unset)."""


async def fill_models(source: str, base: str) -> None:
    """LiteLLM's stored models (two encrypted by LiteLLM under :data:`SALT`, one under another key, one in
    clear) and its ``litellm_settings`` row (one valid setting, one invalid, one relaygate does not store)."""
    enc = litellm_encrypt([
        ("nacl", SALT, "openai/gpt-x"), ("nacl", SALT, base), ("nacl", SALT, UPSTREAM_KEY),
        ("gcm", SALT, "openai/gpt-y"), ("gcm", SALT, base), ("gcm", SALT, UPSTREAM_KEY),
        ("nacl", "sk-another-salt", "openai/gpt-z")])
    params = [{"model": enc[0], "api_base": enc[1], "api_key": enc[2], "rpm": 60},
              {"model": enc[3], "api_base": enc[4], "api_key": enc[5]},
              {"model": enc[6]},
              {"model": "openai/gpt-plain", "api_base": base}]  # an old row LiteLLM left in clear
    values = ", ".join(f"('{i}', 'ui-model-{i}', '{json.dumps(p)}', '{json.dumps(info)}', 'admin', 'admin')"
                       for i, (p, info) in enumerate(zip(params, ({"id": "0", "db_model": True,
                                                                   "input_cost_per_token": 1e-6}, {}, {}, {}),
                                                         strict=True)))
    await _sql(source, 'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info, '
                       f"created_by, updated_by) VALUES {values}")
    settings = {"cost_discount_config": {"openai": 0.1}, "cost_margin_config": {"openai": 11},
                "success_callback": ["langfuse"]}
    await _sql(source, 'INSERT INTO "LiteLLM_Config" (param_name, param_value) VALUES '
                       f"('litellm_settings', '{json.dumps(settings)}'), ('general_settings', '{json.dumps(GENERAL)}')")


class KeyedUpstream:
    """An OpenAI-shaped upstream that remembers the ``authorization`` header of each request."""

    def __init__(self) -> None:
        self.auth: list[str] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"authorization":
                    self.auth.append(value.strip().decode())
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
        finally:
            writer.close()


def test_import_models_and_settings(db_url: str, postgres_server: PostgresServer) -> None:  # noqa: F811
    from relaygate.asgi import Gateway
    from relaygate.config import from_litellm
    from relaygate.store import open_store
    from tests.asgi.conftest import call

    source = litellm_database(postgres_server)
    up = KeyedUpstream()

    async def main() -> None:
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        await fill_models(source, base)
        store = await open_store(db_url)
        try:
            counts = await import_litellm(source, store, SALT)
            assert counts.read["models"] == 4 and counts.created["models"] == 3, counts
            notes = " | ".join(counts.notes)
            assert "model 2 (ui-model-2) left out" in notes and "did it change?" in notes
            assert "setting cost_margin_config left out" in notes and "between 0 and 10" in notes
            assert "3 model(s) imported" in notes and "store_model_in_db" in notes
            assert UPSTREAM_KEY not in notes
            rows = {r.model_id: r for r in (await store.list_models(page_size=100)).items}
            assert sorted(rows) == ["0", "1", "3"]
            first = rows["0"].litellm_params
            assert (first["model"], first["api_base"], first["rpm"]) == ("openai/gpt-x", base, 60)
            assert first["api_key"].startswith(PREFIX)  # sealed again, in relaygate's format
            assert Sealer(SALT).open(first["api_key"]) == UPSTREAM_KEY
            assert rows["0"].model_info == {"input_cost_per_token": 1e-6}
            assert rows["1"].litellm_params["model"] == "openai/gpt-y"
            assert rows["3"].litellm_params == {"model": "openai/gpt-plain", "api_base": base}
            assert await read_settings(store) == {"cost_discount_config": {"openai": 0.1},
                                                  "general_settings": {"include_call_id_in_error_body": True}}
            assert "general_settings.max_request_size_mb left out" in notes and "expected a size in MB" in notes
            assert "general_settings.alerting left out: set it in the config file" in notes
            again = await import_litellm(source, store, SALT)  # idempotent: updated in place
            assert again.created.get("models", 0) == 0 and again.updated["models"] == 3
            none = await import_litellm(source, store, None)  # no secret: the encrypted rows are left out
            assert none.read["models"] == 4 and none.updated.get("models") == 1
            assert "no LITELLM_SALT_KEY or master key" in " ".join(none.notes)
        finally:
            await store.close()

        # the imported models answer through a gateway on that store (stored models on), the upstream key
        # opened on the wire; the imported discount applies
        cfg: dict[str, Any] = {"model_list": [], "general_settings": {
            "master_key": SALT, "database_url": db_url, "store_model_in_db": True}}
        gw = Gateway(from_litellm(cfg, "<test>"))
        await gw.startup()
        try:
            chat = {"messages": [{"role": "user", "content": "hi"}]}
            auth = {"authorization": f"Bearer {SALT}"}
            for name in ("ui-model-0", "ui-model-1", "ui-model-3"):
                r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": name}, headers=auth)
                assert r.status == 200, (name, r.body)
            assert up.auth[:2] == [f"Bearer {UPSTREAM_KEY}"] * 2
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "ui-model-0"}, headers=auth)
            cost = float(dict(r.headers)["x-litellm-response-cost"])
            assert abs(cost - 0.9 * 1e-6) < 1e-12  # 1 prompt token at the imported price, the imported discount
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "ui-model-2"}, headers=auth)
            assert r.status == 400  # left out
            assert "litellm_call_id" in r.json()["error"]  # the imported general setting is served
        finally:
            await gw.shutdown()
            server.close()

    asyncio.run(main())


def test_cli_import_models(tmp_path: Any, postgres_server: PostgresServer, monkeypatch: Any,
                           capsys: Any) -> None:
    """The command opens LiteLLM's models with ``LITELLM_SALT_KEY`` (else the master key) and prints no secret."""
    from relaygate.cli import main

    source = litellm_database(postgres_server)
    asyncio.run(fill_models(source, "http://127.0.0.1:9/v1"))
    target = f"sqlite:///{tmp_path / 'rg.db'}"
    monkeypatch.setenv("LITELLM_SALT_KEY", SALT)
    assert main(["db", "import-litellm", source, "--database-url", target]) == 0
    out = capsys.readouterr().out
    assert "models: 4 read, 3 new, 0 updated" in out and "settings imported from LiteLLM_Config" in out
    assert UPSTREAM_KEY not in out and SALT not in out
    monkeypatch.delenv("LITELLM_SALT_KEY")
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-not-litellms")
    assert main(["db", "import-litellm", source, "--database-url", target]) == 0
    out = capsys.readouterr().out
    assert "models: 4 read, 0 new, 1 updated" in out and "does not open" in out
