"""LiteLLM's custom callbacks (``callbacks: custom_callbacks.proxy_handler_instance``): the config entries, finding
and importing the operator's module, the ``CustomLogger`` stand-in, the arguments each call gets, failures and
slowness kept off the requests; and through a real ``relaygate serve`` with a module on the import path."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import relaygate.observe.custom_callbacks as cc
from relaygate.config import ConfigError as LoaderConfigError
from relaygate.config.errors import ConfigError
from relaygate.config.observe import CUSTOM, ObserveSettings, from_litellm
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.capture import DETAILED
from relaygate.observe.custom_callbacks import CustomCallbackSink, Response, load_callback, shim_litellm
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, detail, with_detail


def settings(ls: dict[str, Any], source: str = "") -> ObserveSettings:
    warnings: list[str] = []
    got = from_litellm(ls, {}, {}, warnings, source)
    assert got is not None
    return got


def test_config_entries() -> None:
    s = settings({"callbacks": ["custom_callbacks.proxy_handler_instance", "prometheus"],
                  "success_callback": ["hooks.audit.on_success"], "failure_callback": ["hooks.pager"]},
                 "/etc/relaygate/config.yaml")
    assert s.custom_success == ("custom_callbacks.proxy_handler_instance", "hooks.audit.on_success")
    assert s.custom_failure == ("custom_callbacks.proxy_handler_instance", "hooks.pager")
    assert CUSTOM in s.success_callbacks and CUSTOM in s.failure_callbacks and "prometheus" in s.success_callbacks
    assert s.custom_dir == "/etc/relaygate" and CUSTOM in DETAILED and not s.custom_hooks_ok
    assert from_litellm({"callbacks": ["m.h"]}, {}, {"ignore_guardrails": True}, []).custom_hooks_ok  # type: ignore[union-attr]
    assert CALLBACK_FAILURES["custom_callbacks_failed"] == CUSTOM
    # case kept (module and attribute names are Python's), each once
    s = settings({"callbacks": ["My_Hooks.Handler", "My_Hooks.Handler"]})
    assert s.custom_success == ("My_Hooks.Handler",) and s.custom_dir == ""
    # the literal name does not start an empty sink: it is not a callback LiteLLM knows
    warnings: list[str] = []
    assert from_litellm({"callbacks": [CUSTOM]}, {}, {}, warnings) is None and "not supported" in warnings[0]
    for bad in ("custom callbacks.x", "mod.", ".attr", "mod.1x", "mod..x"):
        with pytest.raises(ValueError, match=r"module\.attribute"):
            from_litellm({"callbacks": [bad]}, {}, {}, [])


def _write(dir_: Path, name: str, text: str) -> None:
    path = dir_.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_loading_beside_the_config_and_its_errors(tmp_path: Path) -> None:
    _write(tmp_path, "rg_cb_beside", """
        class Handler:
            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                pass
        proxy_handler_instance = Handler()
        def plain(kwargs, response_obj, start_time, end_time):
            pass
        class Made:
            def log_failure_event(self, kwargs, response_obj, start_time, end_time):
                pass
        class NeedsArgs:
            def __init__(self, x):
                pass
        class Hooked(Handler):
            async def async_pre_call_hook(self, *a):
                pass
        class Logged(Handler):
            async def async_post_call_failure_hook(self, *a):
                pass
        not_a_callback = 42
    """)
    _write(tmp_path, "pkg_rg.sub_cb", "def fn(kwargs, response_obj, start_time, end_time):\n    pass\n")
    _write(tmp_path, "rg_cb_broken", "raise RuntimeError('boom\\x1b[31m')\n")
    base = str(tmp_path)
    obj = load_callback("rg_cb_beside.proxy_handler_instance", base)
    assert type(obj).__name__ == "Handler" and load_callback("rg_cb_beside.proxy_handler_instance", base) is obj
    assert callable(load_callback("rg_cb_beside.plain", base))
    assert type(load_callback("rg_cb_beside.Made", base)).__name__ == "Made"  # a class: made once
    assert callable(load_callback("pkg_rg.sub_cb.fn", base))  # a dotted module: its sub-directories
    # a proxy hook that could refuse a request does not run here: the start stops, unless acknowledged
    with pytest.raises(ConfigError, match=r"async_pre_call_hook.*ignore_guardrails"):
        load_callback("rg_cb_beside.Hooked", base)
    assert type(load_callback("rg_cb_beside.Hooked", base, hooks_ok=True)).__name__ == "Hooked"
    assert type(load_callback("rg_cb_beside.Logged", base)).__name__ == "Logged"  # an observing hook: a warning
    with pytest.raises(ConfigError, match="cannot import 'rg_cb_missing'"):
        load_callback("rg_cb_missing.handler", base)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_callback("rg_cb_beside.nope", base)
    with pytest.raises(ConfigError, match="without arguments"):
        load_callback("rg_cb_beside.NeedsArgs", base)
    with pytest.raises(ConfigError, match="neither a function"):
        load_callback("rg_cb_beside.not_a_callback", base)
    with pytest.raises(ConfigError, match="RuntimeError: boom") as err:
        load_callback("rg_cb_broken.x", base)
    assert "\x1b" not in str(err.value)


@pytest.fixture
def no_litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LiteLLM not installed (the tests' environment has it: hidden here, restored after)."""
    saved = {k: v for k, v in sys.modules.items() if k == "litellm" or k.startswith("litellm.")}
    for k in saved:
        del sys.modules[k]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "litellm" else real(name, *a))
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == "litellm" or k.startswith("litellm.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_the_customlogger_stand_in_without_litellm(no_litellm: None, tmp_path: Path) -> None:
    _write(tmp_path, "rg_cb_shim", """
        import litellm
        from litellm.integrations.custom_logger import CustomLogger

        class MyCustomHandler(CustomLogger):  # LiteLLM's documented example, in short
            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                self.seen = kwargs["model"]
                self.cost = litellm.completion_cost(completion_response=response_obj)
                self.usage = response_obj["usage"]

            def use_litellm(self):
                return litellm.acompletion

        proxy_handler_instance = MyCustomHandler()
    """)
    obj = load_callback("rg_cb_shim.proxy_handler_instance", str(tmp_path))
    assert shim_litellm() and cc._method(obj, True) is not None
    assert cc._method(obj, False) is None  # the base's no-op is not a failure handler
    with pytest.raises(AttributeError, match="relaygate runs custom callbacks without LiteLLM"):
        obj.use_litellm()
    sink, events = _sink({"rg_cb_shim.proxy_handler_instance": obj}, ("rg_cb_shim.proxy_handler_instance",))
    asyncio.run(sink.handle([with_detail(detail())]))
    assert (obj.seen, obj.cost, obj.usage["total_tokens"]) == ("gpt-4o", pytest.approx(0.00025), 15) and not events
    with pytest.raises(ValueError, match="prices the response_obj"):
        sys.modules["litellm"].completion_cost(completion_response={"usage": {}})


class Collected:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Any, Any, Any, str]] = []

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(("success", kwargs, response_obj, start_time, end_time, threading.current_thread().name))

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(("failure", kwargs, response_obj, start_time, end_time, threading.current_thread().name))


def _sink(objs: dict[str, Any], both: tuple[str, ...], **kw: Any) -> tuple[CustomCallbackSink, list[tuple[str, int]]]:
    events: list[tuple[str, int]] = []
    s = ObserveSettings(success_callbacks=(CUSTOM,), failure_callbacks=(CUSTOM,), custom_success=both,
                        custom_failure=both, **kw)
    return CustomCallbackSink(s, lambda e, n: events.append((e, n)), loader=lambda p, d, h: objs[p],
                              call_timeout=0.5), events


def test_the_arguments_of_a_success_and_a_failure() -> None:
    handler = Collected()
    sink, _ = _sink({"m.h": handler}, ("m.h",))
    ok = with_detail(detail(metadata={"session_id": "s-1", "trace_user_id": "u-7"}))
    failed = with_detail(detail(output=None, error_message="upstream said no"), outcome=Outcome.ERROR, status=502,
                         error_type="api_error", call_id="call-2")

    async def main() -> None:
        await sink.handle([ok, failed])
        await sink.aclose()

    asyncio.run(main())
    (kind, kw, resp, start, end, thread), (fkind, fkw, fresp, _, _, fthread) = handler.events
    assert (kind, fkind) == ("success", "failure")
    assert thread == "MainThread" and fthread.startswith("relaygate-custom-callback")  # sync methods: a thread
    assert kw["model"] == "gpt-4o" and kw["messages"] == CHAT_IN["messages"] and kw["litellm_call_id"] == "call-1"
    assert kw["optional_params"]["temperature"] == 0.2 and kw["call_type"] == "acompletion"
    assert kw["response_cost"] == pytest.approx(0.00025) and kw["stream"] is False and kw["cache_hit"] is False
    meta = kw["litellm_params"]["metadata"]
    assert meta["user_api_key_alias"] == "my-key" and meta["user_api_key_team_id"] == "team-1"
    assert meta["model_group"] == "gpt-4o-alias" and meta["session_id"] == "s-1"
    assert kw["litellm_params"]["model_info"] == {"id": "dep-1"}
    assert kw["litellm_params"]["proxy_server_request"]["body"] == CHAT_IN
    slo = kw["standard_logging_object"]
    assert slo["status"] == "success" and slo["model_group"] == "gpt-4o-alias" and slo["litellm_call_id"] == "call-1"
    assert (end - start).total_seconds() == pytest.approx(1.5)
    assert isinstance(resp, Response) and resp.choices[0].message.content == "hello"
    assert resp["choices"][0]["finish_reason"] == "stop" and resp.model_dump()["id"] == CHAT_OUT["id"]
    assert resp.usage.total_tokens == 15 and json.loads(resp.json())["model"] == CHAT_OUT["model"]
    assert fresp is None and fkw["exception"].status_code == 502 and "upstream said no" in str(fkw["exception"])
    assert fkw["standard_logging_object"]["status"] == "failure" and fkw["traceback_exception"]


def test_redaction_reaches_custom_callbacks() -> None:
    handler = Collected()
    sink, _ = _sink({"m.h": handler}, ("m.h",), turn_off_message_logging=True)
    asyncio.run(sink.handle([with_detail(detail())]))
    (_, kw, resp, *_), = handler.events
    assert kw["messages"] == [{"role": "user", "content": "redacted-by-litellm"}]
    assert kw["litellm_params"]["proxy_server_request"] == {}
    assert resp.choices[0].message.content == "redacted-by-litellm"


def test_functions_failures_and_slowness_stay_in_the_sink() -> None:
    calls: list[str] = []

    def plain(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        calls.append(kwargs["litellm_call_id"])

    async def raising(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        raise ValueError("callback bug\r\nforged log line")

    async def hanging(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await asyncio.sleep(30)

    async def exiting(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        sys.exit(3)  # the operator's code may do anything: the worker goes on

    def exiting_sync(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        raise KeyboardInterrupt

    class SuccessOnly:
        async def async_log_success_event(self, *a: Any) -> None:
            calls.append("success-only")

    sink, events = _sink({"f.plain": plain, "f.raising": raising, "f.hanging": hanging, "f.so": SuccessOnly(),
                          "f.exit": exiting, "f.exit_sync": exiting_sync},
                         ("f.plain", "f.raising", "f.hanging", "f.so", "f.exit", "f.exit_sync"))

    async def main() -> None:
        await sink.handle([with_detail(detail()), with_detail(detail(), outcome=Outcome.ERROR, status=500,
                                                              call_id="call-9")])
        await sink.aclose()

    asyncio.run(main())
    assert calls == ["call-1", "success-only", "call-9"]  # a function: both lists; the object: its event only
    # raised, timed out, exited and interrupted, twice each
    assert sink.failed == 8 and events.count(("custom_callbacks_failed", 1)) == 8


def test_through_the_gateway(tmp_path: Path) -> None:
    """A LiteLLM-style handler and a function on the import path, told about a success and a failure."""
    out = tmp_path / "events.jsonl"
    _write(tmp_path, "rg_e2e_callbacks", f"""
        import json, threading
        OUT = {str(out)!r}
        lock = threading.Lock()

        def _write(event):
            with lock, open(OUT, "a") as f:
                f.write(json.dumps(event) + "\\n")

        class MyCustomHandler:
            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                _write({{"kind": "success", "model": kwargs["model"], "cost": kwargs["response_cost"],
                        "key_alias": kwargs["litellm_params"]["metadata"].get("user_api_key_alias"),
                        "call_id": kwargs["litellm_call_id"], "text": response_obj.choices[0].message.content,
                        "tokens": response_obj.usage.total_tokens, "id": kwargs["standard_logging_object"]["id"],
                        "seconds": (end_time - start_time).total_seconds(),
                        "headers": kwargs["litellm_params"]["metadata"]["headers"]}})

            async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
                _write({{"kind": "failure", "status": kwargs["exception"].status_code,
                        "call_id": kwargs["litellm_call_id"]}})

        proxy_handler_instance = MyCustomHandler()

        def on_success(kwargs, response_obj, start_time, end_time):
            _write({{"kind": "function", "call_id": kwargs["litellm_call_id"]}})
    """)
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
  - model_name: down
    litellm_params: {model: openai/gpt-4o, api_base: "http://127.0.0.1:9/v1", api_key: sk-x, max_retries: 0}
litellm_settings:
  callbacks: ["rg_e2e_callbacks.proxy_handler_instance"]
  success_callback: ["rg_e2e_callbacks.on_success"]
general_settings:
  master_key: sk-custom-master
"""
    with start_gateway(config, env={"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"}) as gw:
        headers = {"Authorization": "Bearer sk-custom-master"}
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={**headers, "x-request-source": "e2e",
                                                                 "x-api-key": "sk-never-logged"}, timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
        assert r.status_code == 200, r.text
        bad = httpx.post(f"{gw.url}/v1/chat/completions", headers=headers, timeout=10,
                         json={"model": "down", "messages": [{"role": "user", "content": "hi"}]})
        assert bad.status_code >= 500
        events: list[dict[str, Any]] = []
        for _ in range(200):
            events = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            if len(events) >= 3:
                break
            asyncio.run(asyncio.sleep(0.05))
    by_kind = {e["kind"]: e for e in events}
    assert set(by_kind) == {"success", "function", "failure"}, events
    ok = by_kind["success"]
    assert ok["call_id"] == r.headers["x-litellm-call-id"] == by_kind["function"]["call_id"]
    assert ok["text"] == r.json()["choices"][0]["message"]["content"] and ok["tokens"] > 0
    assert ok["model"] == "echo" and ok["seconds"] >= 0
    # the request's headers as LiteLLM's metadata has them, credentials left out
    assert ok["headers"]["x-request-source"] == "e2e" and "authorization" not in ok["headers"]
    assert "x-api-key" not in ok["headers"] and "sk-custom-master" not in json.dumps(ok["headers"])
    assert by_kind["failure"]["call_id"] == bad.headers["x-litellm-call-id"] and by_kind["failure"]["status"] >= 500


def test_a_module_that_does_not_import_stops_the_start(tmp_path: Path) -> None:
    from relaygate.config import load_config
    from relaygate.observe import check

    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text("""
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["rg_no_such_module.proxy_handler_instance"]
""")
    loaded = load_config(str(cfg_file))
    assert loaded.observe is not None and loaded.observe.custom_dir == str(tmp_path)
    with pytest.raises((ConfigError, LoaderConfigError), match="rg_no_such_module"):
        check(loaded.observe, {})


def test_a_sync_callback_that_hangs_holds_neither_the_sink_nor_the_exit() -> None:
    release = threading.Event()
    calls: list[str] = []

    def stuck(kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        calls.append(kwargs["litellm_call_id"])
        release.wait(10)

    sink, events = _sink({"f.stuck": stuck}, ("f.stuck",))

    async def main() -> None:
        await sink.handle([with_detail(detail()), with_detail(detail(), call_id="call-2")])
        await sink.aclose()

    asyncio.run(main())  # each call gave up after the sink's timeout; the thread is a daemon's
    assert sink.failed == 2 and events == [("custom_callbacks_failed", 1)] * 2 and calls == ["call-1"]
    workers = [t for t in threading.enumerate() if t.name == "relaygate-custom-callback"]
    assert workers and all(t.daemon for t in workers)
    release.set()


def test_kept_headers_leave_credentials_out() -> None:
    from relaygate.observe.capture import MAX_HEADERS, _kept_headers

    kept = _kept_headers([(b"Authorization", b"Bearer sk-1"), (b"x-api-key", b"k"), (b"cookie", b"c"),
                          (b"x-goog-api-key", b"g"), (b"x-auth-token", b"t"), (b"user-agent", b"ua/1"),
                          (b"x-trace", b"v" * 5000)])
    assert kept == {"user-agent": "ua/1", "x-trace": "v" * 1000}
    assert len(_kept_headers([(f"x-h{i}".encode(), b"1") for i in range(500)])) == MAX_HEADERS
