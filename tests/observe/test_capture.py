"""The request-path half of observability (``observe.capture``), in-process against a real upstream server.

What must hold: with no exporter that needs one, no Detail is built; with one, every exchange's record
carries a Detail with the decoded request and answer (a chat stream assembled), trace ids continued from
a valid incoming ``traceparent`` (a bad one starts a new trace), one attempt per upstream try (retries and
fallbacks visible, each with the span id it sent upstream), the ``traceparent`` sent upstream only with
OpenTelemetry on; redaction (global, per request header, per key) leaves bodies out; per-key logging
targets capture even when no exporter is configured globally.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from relaygate.auth.targets import env_references, logging_off
from relaygate.config.loader import from_litellm
from relaygate.gateway import Gateway
from relaygate.observe.detail import Detail, LoggingTarget, key_logging
from relaygate.observe.detail import detail_of as observe_detail_of
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.asgi.conftest import call
from tests.compat.recorder import recording_upstream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {"session_id": "s-1"}}
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"


@pytest.fixture(autouse=True)
def no_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the records' Details themselves: the configured exporters are not started (each has
    its own tests against a real receiver)."""
    from relaygate.gateway import core
    from relaygate.observe import Exporters

    monkeypatch.setattr(core, "install_exporters", lambda settings, *args: Exporters(settings))


def gateway(url: str, settings: dict[str, Any], *, extra_models: list[dict[str, Any]] | None = None,
            router: dict[str, Any] | None = None) -> tuple[Gateway, list[CompletionRecord]]:
    models = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": url + "/v1",
                                                     "api_key": "sk-up"}}]
    cfg = from_litellm({"model_list": models + (extra_models or []), "litellm_settings": settings,
                        "relaygate_settings": {"log_bodies": True}, "router_settings": router or {}}, "<test>")
    gw = Gateway(cfg)
    records: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: list[CompletionRecord]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return gw, records


def detail_of(record: CompletionRecord) -> Detail:
    """The record's Detail as an exporter reads it (``observe.detail.detail_of``: the kept bytes decoded)."""
    assert isinstance(record.extra, dict)
    detail = record.extra["observe"]
    assert isinstance(detail, Detail)
    assert observe_detail_of(record) is detail
    assert detail.raw_input is None and detail.raw_output is None
    return detail


def test_no_exporter_needing_a_detail_builds_none() -> None:
    with recording_upstream() as up:
        async def main() -> None:
            # json_logs without bodies reads the record alone: no capture, no traceparent upstream
            cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/gpt-4o", "api_base": up.url + "/v1", "api_key": "k"}}],
                "litellm_settings": {"json_logs": True}}, "<test>")
            gw = Gateway(cfg)
            assert gw.runtime.observer is None
            records: list[CompletionRecord] = []
            gw.completions.add_sink(type("S", (), {"handle": lambda self, b: records.extend(b)})())
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": [
                {"role": "user", "content": "hi"}]}, headers={"traceparent": TRACEPARENT})
            assert r.status == 200
            await gw.completions.aclose()
            assert records[0].extra is None
            assert "traceparent" not in up.last().headers

        asyncio.run(main())


def test_unary_detail_with_continued_trace_and_traceparent_upstream() -> None:
    with recording_upstream() as up:
        async def main() -> None:
            gw, records = gateway(up.url, {"callbacks": ["json_logs"], "success_callback": ["otel"]})
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"traceparent": TRACEPARENT})
            assert r.status == 200
            await gw.completions.aclose()
            (rec,) = records
            d = detail_of(rec)
            assert (d.trace_id, d.parent_span_id, d.trace_flags) == (PARENT_TRACE, PARENT_SPAN, 1)
            assert re.fullmatch("[0-9a-f]{16}", d.span_id) and d.span_id != PARENT_SPAN
            # the request as sent on (LiteLLM's control fields such as metadata are not the model's input)
            assert d.input == {"model": "m", "messages": CHAT["messages"]} and d.metadata == {"session_id": "s-1"} and not d.redacted
            assert d.output is not None and d.output["choices"][0]["message"]["content"] == "hello"
            (a,) = d.attempts
            assert (a.deployment_id, a.model_group, a.provider, a.upstream_model, a.status) == (
                rec.deployment_id, "m", "openai", "gpt-4o", 200)
            assert a.api_base == up.url + "/v1" and a.start <= a.end
            # the upstream got the attempt's span as its parent, in the request's trace
            assert up.last().headers["traceparent"] == f"00-{PARENT_TRACE}-{a.span_id}-01"
            assert a.span_id != d.span_id

        asyncio.run(main())


@pytest.mark.parametrize("forward", [False, "false", None, True])
def test_forward_traceparent_to_llm_provider(forward: Any) -> None:
    """``litellm_settings.forward_traceparent_to_llm_provider: false`` keeps the ``traceparent`` from the provider
    (the trace is still continued and exported); unset, null or true, each attempt sends its span (relaygate's
    default; LiteLLM's is false, and it then forwards the client's header as it came)."""
    with recording_upstream() as up:
        async def main() -> None:
            settings: dict[str, Any] = {"callbacks": ["otel"]}
            if forward is not None:
                settings["forward_traceparent_to_llm_provider"] = forward
            gw, records = gateway(up.url, settings)
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"traceparent": TRACEPARENT})
            assert r.status == 200
            await gw.completions.aclose()
            d = detail_of(records[0])
            assert d.trace_id == PARENT_TRACE and d.attempts
            sent = up.last().headers.get("traceparent")
            if forward in (False, "false"):
                assert sent is None
            else:
                assert sent == f"00-{PARENT_TRACE}-{d.attempts[0].span_id}-01"

        asyncio.run(main())


def test_forward_traceparent_to_llm_provider_must_be_a_flag() -> None:
    from relaygate.config import ConfigError

    with pytest.raises(ConfigError, match="forward_traceparent_to_llm_provider"):
        from_litellm({"model_list": [], "litellm_settings": {"callbacks": ["otel"],
                                                             "forward_traceparent_to_llm_provider": "yes"}}, "<t>")


@pytest.mark.parametrize("bad", ["00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                                 "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                 "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "garbage\r\nx: y"])
def test_an_invalid_traceparent_starts_a_new_trace(bad: str) -> None:
    with recording_upstream() as up:
        async def main() -> None:
            gw, records = gateway(up.url, {"callbacks": ["otel"]})
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"traceparent": bad})
            assert r.status == 200
            await gw.completions.aclose()
            d = detail_of(records[0])
            assert d.parent_span_id is None and d.trace_id != PARENT_TRACE.upper()
            assert re.fullmatch("[0-9a-f]{32}", d.trace_id)
            sent = up.last().headers["traceparent"]
            assert sent == f"00-{d.trace_id}-{d.attempts[0].span_id}-01"

        asyncio.run(main())


def test_retries_and_fallbacks_are_attempts() -> None:
    with recording_upstream(openai_like=True) as up:
        async def main() -> None:
            broken = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                             "api_base": up.url + "/status-500/v1"}}
            backup = {"model_name": "b", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "k",
                                                             "api_base": up.url + "/v1"}}
            cfg = from_litellm({"model_list": [broken, backup],
                                "litellm_settings": {"callbacks": ["otel"]},
                                "router_settings": {"num_retries": 1, "fallbacks": [{"m": ["b"]}],
                                                    "retry_after": 0}}, "<test>")
            gw = Gateway(cfg)
            records: list[CompletionRecord] = []
            gw.completions.add_sink(type("S", (), {"handle": lambda self, b: records.extend(b)})())
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "m"})
            assert r.status == 200, r.body
            await gw.completions.aclose()
            d = detail_of(records[0])
            groups = [(a.model_group, a.status) for a in d.attempts]
            assert groups[-1] == ("b", 200)
            assert groups[:-1] and all(g == ("m", 500) for g in groups[:-1])
            assert all(a.error_type for a in d.attempts[:-1]) and not d.attempts[-1].error_type
            assert len({a.span_id for a in d.attempts}) == len(d.attempts)
            # every try sent its own span id upstream, all in one trace
            sent = [s.headers["traceparent"] for s in up.seen]
            assert sent == [f"00-{d.trace_id}-{a.span_id}-01" for a in d.attempts]

        asyncio.run(main())


def test_stream_answer_is_assembled() -> None:
    with recording_upstream() as up:
        async def main() -> None:
            gw, records = gateway(up.url, {"callbacks": ["otel"]})
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
            assert r.status == 200 and b"[DONE]" in r.body
            await gw.completions.aclose()
            (rec,) = records
            assert rec.stream and rec.ttft is not None
            d = detail_of(rec)
            assert d.output["object"] == "chat.completion"
            assert d.output["choices"][0]["message"]["content"] == "hello"
            assert d.attempts[0].end >= d.attempts[0].start

        asyncio.run(main())


@pytest.mark.parametrize("how", ["global", "header"])
def test_redaction_keeps_bodies_out(how: str) -> None:
    with recording_upstream() as up:
        async def main() -> None:
            settings: dict[str, Any] = {"callbacks": ["otel"]}
            headers = {}
            if how == "global":
                settings["turn_off_message_logging"] = True
            else:
                headers["x-litellm-enable-message-redaction"] = "true"
            gw, records = gateway(up.url, settings)
            for stream in (False, True):
                r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": stream}, headers=headers)
                assert r.status == 200
            await gw.completions.aclose()
            for rec in records:
                d = detail_of(rec)
                assert d.redacted and d.input is None and d.output is None
                assert d.attempts and d.metadata == {"session_id": "s-1"}

        asyncio.run(main())


def test_failure_detail_has_the_error() -> None:
    with recording_upstream(openai_like=True) as up:
        async def main() -> None:
            cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/gpt-4o", "api_key": "k", "api_base": up.url + "/status-400/v1"}}],
                "litellm_settings": {"callbacks": ["otel"]}}, "<test>")
            gw = Gateway(cfg)
            records: list[CompletionRecord] = []
            gw.completions.add_sink(type("S", (), {"handle": lambda self, b: records.extend(b)})())
            r = await call(gw, "POST", "/v1/chat/completions", CHAT)
            assert r.status == 400
            await gw.completions.aclose()
            (rec,) = records
            assert rec.outcome is Outcome.ERROR
            d = detail_of(rec)
            assert d.error_message and d.error_message == orjson.loads(r.body)["error"]["message"]
            assert d.output is None and d.attempts[0].status == 400

        asyncio.run(main())


def test_key_logging_targets() -> None:
    meta = {"logging": [
        {"callback_name": "Langfuse", "callback_type": "success",
         "callback_vars": {"langfuse_public_key": "pk", "langfuse_secret_key": "os.environ/RG_TEST_LF_SECRET",
                           "langfuse_host": "http://127.0.0.1:1"}},
        {"callback_name": "otel", "callback_type": "sometimes"},  # not a type: skipped
        "not a mapping",
    ], "turn_off_message_logging": True}
    import os
    os.environ["RG_TEST_LF_SECRET"] = "sk-lf"
    try:
        targets, redacts = key_logging(meta)
    finally:
        del os.environ["RG_TEST_LF_SECRET"]
    assert redacts
    assert targets == [LoggingTarget("langfuse", "success", {
        "langfuse_public_key": "pk", "langfuse_secret_key": "sk-lf", "langfuse_host": "http://127.0.0.1:1"})]
    assert key_logging({"logging": "x"}) == (None, False)


def test_team_callback_settings_disabled_logging_and_environment_references() -> None:
    legacy = {"callback_settings": {"success_callback": ["langfuse", "otel"], "failure_callback": ["langfuse"],
                                    "callback_vars": {"langfuse_public_key": "pk", "langfuse_secret_key": "sk"}}}
    targets, redacts = key_logging(legacy)  # LiteLLM's older team shape
    assert not redacts and targets == [
        LoggingTarget("langfuse", "success_and_failure", {"langfuse_public_key": "pk", "langfuse_secret_key": "sk"}),
        LoggingTarget("otel", "success", {"langfuse_public_key": "pk", "langfuse_secret_key": "sk"})]
    disabled = {"logging": [], "callback_settings": {"success_callback": [], "failure_callback": []}}
    assert logging_off(disabled) and key_logging(disabled) == (None, False)
    assert not logging_off({"logging": []}) and not logging_off(legacy) and not logging_off(None)
    assert not logging_off({**disabled, "logging": [{"callback_name": "langfuse"}]})  # a callback added since
    assert env_references({"logging": [{"callback_vars": {"a": "os.environ/X", "b": "plain"}}, "junk"],
                           "callback_settings": {"callback_vars": {"c": "x-os.environ/Y", "d": 3}}}) == ["a", "c"]
    assert env_references({"logging": "x"}) == [] and env_references([]) == []
    assert key_logging(None) == (None, False)


def test_a_cache_hit_exports_the_answer_it_served() -> None:
    with recording_upstream() as up:
        async def main() -> None:
            gw, records = gateway(up.url, {"callbacks": ["otel"], "cache": True})
            for stream in (False, False, True):
                r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": stream})
                assert r.status == 200
            await gw.completions.aclose()
            miss, hit, stream_hit = records
            assert not miss.cache_hit and hit.cache_hit and stream_hit.cache_hit
            assert len(up.seen) == 1
            for rec in (hit, stream_hit):
                d = detail_of(rec)
                assert d.output is not None and d.output["choices"][0]["message"]["content"] == "hello"
                assert d.attempts == []  # no upstream was tried

        asyncio.run(main())


@pytest.mark.parametrize("path,body", [
    ("/v1/messages", {"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/responses", {"model": "m", "stream": True, "input": "hi", "store": False}),
])
def test_messages_and_responses_streams_are_assembled(path: str, body: dict[str, Any]) -> None:
    with recording_upstream() as up:
        async def main() -> None:
            # an OpenAI-compatible provider without a native /responses: the request is translated to chat
            gw, records = gateway(up.url, {"callbacks": ["otel"]}, extra_models=[{"model_name": "t", "litellm_params": {
                "model": "hosted_vllm/x", "api_base": up.url + "/v1", "api_key": "k"}}])
            r = await call(gw, "POST", path, {**body, "model": "t"})
            assert r.status == 200, r.body
            await gw.completions.aclose()
            (rec,) = records
            out = detail_of(rec).output
            assert out is not None, r.body[:500]
            if path == "/v1/messages":
                assert out["type"] == "message" and out["content"][0] == {"type": "text", "text": "hello"}
                assert out["stop_reason"] == "end_turn"
            else:
                assert out["object"] == "response" and out["status"] == "completed"
                texts = [c["text"] for item in out["output"] if item["type"] == "message" for c in item["content"]]
                assert texts == ["hello"]

        asyncio.run(main())


def test_global_redaction_holds_for_a_keys_own_targets() -> None:
    """``turn_off_message_logging`` with no configured callback still holds for what a key's own logging targets
    get (their capture's observer is the config's, not a blank one), and for the spend logs' stored prompts."""
    from relaygate.observe.capture import Capture
    from relaygate.pipeline.exchange import Exchange

    models = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}}]
    cfg = from_litellm({"model_list": models, "litellm_settings": {"turn_off_message_logging": True}}, "<test>")
    rt = Gateway(cfg).runtime
    assert rt.observer is None and rt.key_observer is not None and rt.key_observer.redact
    ex = Exchange.__new__(Exchange)
    ex.body, ex.control, ex.stream, ex.route = b'{"model": "m", "messages": []}', None, False, "chat"
    cap = Capture(rt.key_observer, ex, [], [LoggingTarget("langfuse", "success", {})], False)
    assert cap.exports and cap.detail.redacted and cap.detail.input is None
    plain = from_litellm({"model_list": models, "general_settings": {"store_prompts_in_spend_logs": True}}, "<t>")
    rt = Gateway(plain).runtime
    assert rt.store_prompts and rt.observer is not None and rt.observer.prompts and not rt.observer.exports
    cap = Capture(rt.observer, ex, [], None, False)  # the spend logs' capture: the bytes, nothing decoded, no ids
    assert not cap.exports and cap.body == ex.body and cap.detail.input is None and cap.detail.trace_id == ""


def test_the_request_path_keeps_bytes_and_the_first_exporter_read_decodes_them() -> None:
    """The capture decodes nothing: the body and the answer stay bytes in the Detail until an exporter reads it
    through ``detail_of``, which decodes both once (a body that is not JSON becomes None, as it did)."""
    from relaygate.config.observe import ObserveSettings
    from relaygate.observe.capture import Capture, Observer
    from relaygate.observe.detail import materialize
    from relaygate.pipeline.exchange import Exchange

    observer = Observer(ObserveSettings(success_callbacks=("langfuse",)))
    ex = Exchange.__new__(Exchange)
    ex.body, ex.control, ex.stream, ex.route = bytearray(b'{"model": "m", "messages": []}'), None, False, "chat"
    ex.ctx = ex.who = None
    cap = Capture(observer, ex, [], None, False)
    d = cap.detail
    assert d.input is None and d.raw_input == b'{"model": "m", "messages": []}' and type(d.raw_input) is bytes
    ex.body[2:7] = b"MODEL"  # a buffer changed later: the Detail kept its own copy
    cap.output = b'{"id": "x", "choices": []}'
    assert cap.finish(ex, None) is d and d.output is None and d.raw_output == b'{"id": "x", "choices": []}'
    record = CompletionRecord(call_id="c", route="chat", stream=False, model="m", model_group="m", deployment_id="",
                              provider="", upstream_model="", key_hash=None, key_alias=None, team_id=None,
                              user_id=None, status=200, outcome=Outcome.OK, prompt_tokens=0, completion_tokens=0,
                              cache_read_tokens=0, cache_write_tokens=0, latency=0.0, ttft=None, overhead=0.0,
                              cost=0.0, cache_hit=False, retries=0, fallbacks=0, extra={"observe": d})
    assert observe_detail_of(record) is d
    assert d.input == {"model": "m", "messages": []} and d.output == {"id": "x", "choices": []}
    assert d.raw_input is None and d.raw_output is None
    d.input = "kept"  # nothing pending: a second read decodes nothing
    assert observe_detail_of(record) is d and d.input == "kept"
    bad = Detail("a" * 32, "b" * 16, raw_input=b"{not json", raw_output=b"")
    materialize(bad)
    assert bad.input is None and bad.output is None and bad.raw_input is None and bad.raw_output is None


def test_the_clients_steering_headers_are_kept_bounded() -> None:
    """LiteLLM's ``langfuse_*`` and ``opik_*`` request headers reach the exporters that read them
    (``Detail.request_headers``), at most 16 and each cut to 1000 characters; nothing else of the request's headers,
    and nothing when no exporter reads a Detail."""
    from relaygate.observe.capture import MAX_STEERING, MAX_STEERING_VALUE, Capture
    from relaygate.pipeline.exchange import Exchange

    models = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}}]
    rt = Gateway(from_litellm({"model_list": models, "litellm_settings": {"callbacks": ["langfuse"]}},
                              "<test>")).runtime
    ex = Exchange.__new__(Exchange)
    ex.body, ex.control, ex.stream, ex.route = b'{"model": "m", "messages": []}', None, False, "chat"
    headers = [(b"authorization", b"Bearer sk-secret"), (b"x-api-key", b"k"), (b"langfuse_trace_name", b"t1"),
               (b"opik_project_name", b"p" * 5000), (b"x-custom", b"v"),
               *((f"langfuse_k{i}".encode(), b"v") for i in range(40))]
    detail = Capture(rt.observer, ex, headers, None, False).detail
    assert detail.request_headers["langfuse_trace_name"] == "t1"
    assert detail.request_headers["opik_project_name"] == "p" * MAX_STEERING_VALUE
    assert len(detail.request_headers) == MAX_STEERING
    assert all(k.startswith(("langfuse_", "opik_")) for k in detail.request_headers)
    plain = Gateway(from_litellm({"model_list": models, "general_settings": {"store_prompts_in_spend_logs": True}},
                                 "<t>")).runtime
    assert Capture(plain.observer, ex, headers, None, False).detail.request_headers == {}
