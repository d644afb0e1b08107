"""The route table: static, parameterised and mounted routes; 404 and 405 with Allow."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.errors import GatewayError
from relaygate.http.routes import NO_PARAMS, RouteTable


def _h(name: str) -> Any:
    async def handler(*args: Any) -> None:
        return None

    handler.__name__ = name
    return handler


@pytest.fixture
def table() -> RouteTable:
    t = RouteTable()
    t.add("POST", "/v1/chat/completions", _h("chat"))
    t.add("GET", "/v1/models", _h("models"))
    t.add("GET", "/v1/models/{model_id:path}", _h("model_info"))
    t.add("POST", "/openai/deployments/{model:path}/chat/completions", _h("deploy_chat"))
    t.add("POST", "/engines/{model}/chat/completions", _h("engine_chat"))
    t.add(["GET", "DELETE"], "/key/{key_id}", _h("key"))
    t.add("POST", "/key/generate", _h("key_generate"))
    t.add("GET", "/key/info", _h("key_info"))
    t.mount("/ui", _h("ui"), methods=["GET"])
    return t


def name(table: RouteTable, method: str, path: str) -> tuple[str, dict[str, str]]:
    m = table.match(method, path)
    return m.handler.__name__, dict(m.params)


def test_static_routes_have_no_params(table: RouteTable) -> None:
    m = table.match("POST", "/v1/chat/completions")
    assert m.handler.__name__ == "chat" and m.params is NO_PARAMS
    assert name(table, "HEAD", "/v1/models") == ("models", {})


def test_path_parameters(table: RouteTable) -> None:
    assert name(table, "POST", "/openai/deployments/my/deploy/chat/completions") == (
        "deploy_chat", {"model": "my/deploy"})
    assert name(table, "POST", "/engines/gpt-4/chat/completions") == ("engine_chat", {"model": "gpt-4"})
    assert name(table, "GET", "/v1/models/openai/gpt-4o") == ("model_info", {"model_id": "openai/gpt-4o"})
    assert name(table, "DELETE", "/key/sk-123") == ("key", {"key_id": "sk-123"})


def test_static_wins_over_a_parameter(table: RouteTable) -> None:
    assert name(table, "POST", "/key/generate") == ("key_generate", {})
    assert name(table, "GET", "/key/info") == ("key_info", {})


def test_more_literal_segments_win() -> None:
    t = RouteTable()
    t.add("GET", "/team/{team_id}", _h("team"))
    t.add("GET", "/team/{team_id}/members", _h("members"))
    t.add("GET", "/{anything:path}", _h("catch_all"))
    assert name(t, "GET", "/team/t1/members") == ("members", {"team_id": "t1"})
    assert name(t, "GET", "/team/t1") == ("team", {"team_id": "t1"})
    assert name(t, "GET", "/x/y") == ("catch_all", {"anything": "x/y"})


def test_mounts(table: RouteTable) -> None:
    assert name(table, "GET", "/ui") == ("ui", {"path": ""})
    assert name(table, "GET", "/ui/keys/new") == ("ui", {"path": "keys/new"})
    with pytest.raises(GatewayError) as e:
        table.match("GET", "/uix")
    assert e.value.status == 404


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/chat/completions", "POST"),
    ("POST", "/v1/models", "GET, HEAD"),
    ("POST", "/key/abc", "DELETE, GET, HEAD"),
    ("POST", "/ui/x", "GET, HEAD"),
])
def test_405_names_the_allowed_methods(table: RouteTable, method: str, path: str, allow: str) -> None:
    with pytest.raises(GatewayError) as e:
        table.match(method, path)
    assert e.value.status == 405
    assert (b"allow", allow.encode()) in e.value.headers


@pytest.mark.parametrize("path", ["/", "/v2/chat/completions", "/engines//chat/completions",
                                  "/openai/deployments/chat/completions", "/key/a/b"])
def test_404(table: RouteTable, path: str) -> None:
    with pytest.raises(GatewayError) as e:
        table.match("POST", path)
    assert e.value.status == 404


def test_a_route_added_twice_is_a_wiring_bug() -> None:
    t = RouteTable()
    t.add("GET", "/a/{x}", _h("a"))
    with pytest.raises(ValueError):
        t.add("GET", "/a/{x}", _h("b"))
    t.add("POST", "/a/{x}", _h("c"))  # another method on the same path is fine
    t.add("POST", "/static", _h("d"))
    with pytest.raises(ValueError):
        t.add("POST", "/static", _h("e"))


@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]),
       path=st.text(max_size=60).map(lambda s: "/" + s))
def test_any_path_matches_or_is_a_404_or_405(method: str, path: str) -> None:
    t = RouteTable()
    t.add("POST", "/openai/deployments/{model:path}/chat/completions", _h("d"))
    t.add(["GET", "DELETE"], "/key/{key_id}", _h("k"))
    t.mount("/ui", _h("ui"))
    try:
        m = t.match(method, path)
    except GatewayError as exc:
        assert exc.status in (404, 405)
    else:
        assert all(isinstance(v, str) and v == v for v in m.params.values())


def test_routes_listing(table: RouteTable) -> None:
    listed = table.routes()
    assert ("POST", "/v1/chat/completions") in listed and ("GET", "/key/{key_id}") in listed
    assert ("GET", "/ui/{path:path}") in listed
