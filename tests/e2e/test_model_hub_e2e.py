"""LiteLLM's public model hub through a real ``relaygate serve`` (two workers, SQLite store, ``store_model_in_db``):
``GET /public/model_hub`` and ``/public/model_hub/info`` answer without a key, show only the groups
``litellm_settings.public_model_groups`` names (with their latest health check once ``/health`` ran one) and
the configured links; ``/model_group/info`` flags the public groups; the admin changes both lists through
``POST /model_group/make_public`` and ``/model_hub/update_useful_links`` (every worker serves the change),
anyone else is refused, a bad body is a 400 and nothing is stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate import __version__
from relaygate.config import ConfigError, load_config
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-hub-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def config(db: Path, *, stored: bool = True) -> str:
    return f"""
model_list:
  - model_name: open-chat
    litellm_params: {{model: mock/echo}}
  - model_name: open-chat
    litellm_params: {{model: mock/echo, rpm: 50}}
  - model_name: internal
    litellm_params: {{model: mock/echo}}
litellm_settings:
  public_model_groups: [open-chat]
  public_model_groups_links: {{"Docs": "https://docs.example.com", "Status": {{url: "https://status.example.com", index: 1}}}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
  store_model_in_db: {"true" if stored else "false"}
"""


def hub(c: httpx.Client) -> dict[str, dict[str, Any]]:
    r = c.get("/public/model_hub")  # no key
    assert r.status_code == 200, r.text
    return {g["model_group"]: g for g in r.json()}


def every_worker(gw: GatewayProc, mark: int, check: Any) -> None:
    """Once each worker swapped in the change written past ``mark``, ``check`` holds on 8 fresh connections."""
    gw.wait_swapped(mark)
    for _ in range(8):
        with httpx.Client(base_url=gw.url, timeout=20) as fresh:
            assert check(fresh)


def test_the_hub(tmp_path: Path) -> None:
    with start_gateway(config(tmp_path / "rg.db"), workers=2) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
        groups = hub(c)
        assert list(groups) == ["open-chat"]
        g = groups["open-chat"]
        assert g["is_public_model_group"] is True and g["providers"] == ["mock"] and g["mode"] == "chat"
        assert g["health_status"] is None and g["health_checked_at"] is None

        info = c.get("/public/model_hub/info").json()
        assert info == {"docs_title": "LiteLLM API", "custom_docs_description": None, "litellm_version": __version__,
                        "useful_links": {"Docs": "https://docs.example.com",
                                         "Status": {"url": "https://status.example.com", "index": 1}}}

        r = c.get("/model_group/info", headers=AUTH)
        flags = {e["model_group"]: e["is_public_model_group"] for e in r.json()["data"]}
        assert flags == {"open-chat": True, "internal": False}

        # a health check (this worker's) shows on the hub as LiteLLM's health fields
        healthy: dict[str, Any] = {}
        for _ in range(8):  # until the answering worker is one that ran it
            assert c.get("/health", headers=AUTH).status_code == 200
            healthy = hub(c)["open-chat"]
            if healthy["health_status"] is not None:
                break
        assert healthy["health_status"] == "healthy" and healthy["health_response_time"] >= 0
        assert healthy["health_checked_at"].startswith(time.strftime("%Y-", time.gmtime()))

        # a check that names the model is kept in the database: another instance that never checked shows it
        assert c.get("/health?model=open-chat", headers=AUTH).status_code == 200
        with start_gateway(config(tmp_path / "rg.db")) as other, httpx.Client(base_url=other.url, timeout=20) as c2:
            shown: dict[str, Any] = {}
            for _ in range(80):  # the row is written off /health's path; a worker reads the history every 5 s
                shown = hub(c2)["open-chat"]
                if shown["health_status"] is not None:
                    break
                time.sleep(0.2)
            assert shown["health_status"] == "healthy" and shown["health_response_time"] >= 0, shown

        # the admin publishes both groups and new links; every worker serves them
        mark = gw.mark()
        r = c.post("/model_group/make_public", headers=AUTH, json={"model_groups": ["open-chat", "internal"]})
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "Successfully updated public model groups",
                            "public_model_groups": ["open-chat", "internal"], "updated_by": "default_user_id"}
        every_worker(gw, mark, lambda f: set(hub(f)) == {"open-chat", "internal"})
        mark = gw.mark()
        r = c.post("/model_hub/update_useful_links", headers=AUTH, json={"useful_links": {"Wiki": "https://w.example"}})
        assert r.status_code == 200 and r.json()["useful_links"] == {"Wiki": "https://w.example"}, r.text
        every_worker(gw, mark, lambda f: f.get("/public/model_hub/info").json()["useful_links"] == {
            "Wiki": "https://w.example"})

        # anyone else is refused; a bad body is a 400 and changes nothing
        key = c.post("/key/generate", headers=AUTH, json={}).json()["key"]
        r = c.post("/model_group/make_public", headers={"Authorization": f"Bearer {key}"}, json={"model_groups": []})
        assert r.status_code in (401, 403), r.text
        assert c.post("/model_group/make_public", json={"model_groups": []}).status_code == 401
        for path, body in (("/model_group/make_public", {"model_groups": "open-chat"}),
                           ("/model_group/make_public", {"model_groups": [1]}),
                           ("/model_group/make_public", {}),
                           ("/model_hub/update_useful_links", {"useful_links": {"x": "javascript:alert(1)"}}),
                           ("/model_hub/update_useful_links", {"useful_links": ["https://a.example"]})):
            r = c.post(path, headers=AUTH, json=body)
            assert r.status_code == 400 and r.json()["error"]["message"], (path, r.text)
        assert set(hub(c)) == {"open-chat", "internal"}


def test_changes_need_the_database_config(tmp_path: Path) -> None:
    with start_gateway(config(tmp_path / "rg.db", stored=False)) as gw, \
            httpx.Client(base_url=gw.url, timeout=20) as c:
        r = c.post("/model_group/make_public", headers=AUTH, json={"model_groups": ["internal"]})
        assert r.status_code == 400 and "store_model_in_db" in r.json()["error"]["message"], r.text
        assert list(hub(c)) == ["open-chat"]


def test_bad_links_in_the_file_stop_startup(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model_list: []\nlitellm_settings:\n  public_model_groups_links: {Docs: 'ftp://x'}\n")
    with pytest.raises(ConfigError, match="public_model_groups_links"):
        load_config(str(path))
    path.write_text("model_list: []\nlitellm_settings:\n  public_model_groups: open-chat\n")
    with pytest.raises(ConfigError, match="public_model_groups"):
        load_config(str(path))
