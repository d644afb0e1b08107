"""``GET /cache/stats`` (the admin UI's cache page): the answer built from a real ``ResponseCache``'s
counters, and against a real ``relaygate serve`` (one worker: the counters are per worker) a miss then a hit
through the openai SDK, a flush emptying the entries, the role rules, and the answer without a cache."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from bench.procs import start_mock
from relaygate.cache.routes import cache_stats
from tests.conftest import start_gateway

MASTER = "sk-cache-stats-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def test_without_a_cache() -> None:
    assert cache_stats(None) == {"enabled": False, "type": None, "hits": 0, "misses": 0, "hit_rate": None,
                                 "entries": 0, "bytes": 0, "max_bytes": 0}


def _stats(url: str, headers: dict[str, str] = ADMIN) -> dict[str, object]:
    r = httpx.get(url + "/cache/stats", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


@pytest.mark.e2e
def test_cache_stats_after_a_hit() -> None:
    with start_mock(name="up") as mock:
        config = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{mock.openai_base}"}}
litellm_settings:
  cache: true
  cache_params: {{type: local}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(config) as gw:
            assert _stats(gw.url) == {"enabled": True, "type": "local", "hits": 0, "misses": 0, "hit_rate": None,
                                      "entries": 0, "bytes": 0, "max_bytes": _stats(gw.url)["max_bytes"]}
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER)
            messages = [{"role": "user", "content": "cache me"}]
            first = client.chat.completions.with_raw_response.create(model="gpt", messages=messages)  # type: ignore[arg-type]
            second = client.chat.completions.with_raw_response.create(model="gpt", messages=messages)  # type: ignore[arg-type]
            assert first.headers.get("x-litellm-cache-key") is None
            assert second.headers.get("x-litellm-cache-key")  # served from the cache
            stats = _stats(gw.url)
            assert stats["hits"] == 1
            assert stats["misses"] == 1
            assert stats["hit_rate"] == 0.5
            assert stats["entries"] == 1
            assert isinstance(stats["bytes"], int) and stats["bytes"] > 0
            assert httpx.post(gw.url + "/cache/flushall", headers=ADMIN).status_code == 200
            assert _stats(gw.url)["entries"] == 0
            assert httpx.get(gw.url + "/cache/stats").status_code == 401
            assert httpx.get(gw.url + "/cache/stats", headers={"Authorization": "Bearer sk-wrong"}).status_code == 401


@pytest.mark.e2e
def test_cache_stats_roles_and_no_cache(tmp_path: Path) -> None:
    tmp = tmp_path
    config = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "http://127.0.0.1:9/v1"}}
general_settings:
  master_key: {MASTER}
  database_url: "sqlite:///{tmp}/cs.db"
"""
    with start_gateway(config) as gw:
        assert _stats(gw.url)["enabled"] is False
        for role, status in (("internal_user", 401), ("proxy_admin_viewer", 200)):
            u = httpx.post(gw.url + "/user/new", headers=ADMIN, json={"user_role": role})
            assert u.status_code == 200, u.text
            k = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={"user_id": u.json()["user_id"]})
            assert k.status_code == 200, k.text
            r = httpx.get(gw.url + "/cache/stats", headers={"Authorization": f"Bearer {k.json()['key']}"})
            assert r.status_code == status, r.text
