"""LiteLLM's custom callbacks: ``callbacks: custom_callbacks.proxy_handler_instance`` in the config, the operator's
own Python told about every finished request, as a sink of completion events.

What it owns: finding and importing each callback (:func:`load_callback`), the ``litellm`` names such a file
imports when LiteLLM itself is not installed (:func:`shim_litellm`: ``CustomLogger`` and ``completion_cost``),
and :class:`CustomCallbackSink`, which calls them with LiteLLM's arguments off the request path.

- **Configuration**, as LiteLLM reads it: a ``module.attribute`` entry in ``litellm_settings.callbacks`` (told about
  successes and failures), ``success_callback`` or ``failure_callback``. The module is looked for first as a file
  beside the config (``<config dir>/custom_callbacks.py``; a dotted module as its sub-directories), then on the
  import path. The attribute is an instance (LiteLLM's ``CustomLogger`` subclass: ``proxy_handler_instance =
  MyCustomHandler()``), a class (instantiated once, without arguments) or a function ``(kwargs, response_obj,
  start_time, end_time)``. A module that does not import, or an attribute it lacks, stops the start with a
  config error naming it (as LiteLLM fails to start).
- **Calls**: for an instance, ``async_log_success_event`` / ``async_log_failure_event`` when its class defines
  them (LiteLLM's proxy calls the async ones), else ``log_success_event`` / ``log_failure_event``; a function is
  called for the lists it is in. Coroutines are awaited on the loop; plain functions and methods run on one
  thread of the sink's own (user code that blocks holds no request and no other exporter). Each call has
  :data:`CALL_TIMEOUT` seconds; a call that raises or times out is counted as ``custom_callbacks_failed`` (and in
  ``litellm_callback_logging_failures_metric``), logged at most once a minute with its exception's type and
  text escaped, and the batch goes on. The sink's buffer is bounded like every exporter's: a callback slower
  than the traffic drops records, counted.
- **Arguments** (LiteLLM's ``model_call_details``): ``kwargs`` holds ``model`` (the model sent upstream),
  ``messages``, ``optional_params`` (the sampling parameters), ``litellm_params`` (``metadata``: the client's
  metadata with LiteLLM's ``user_api_key*``, ``model_group``, ``deployment`` and ``headers`` (the request's,
  credentials left out: ``capture``) keys; ``model_info``;
  ``api_base``; ``proxy_server_request``), ``standard_logging_object`` (LiteLLM's ``StandardLoggingPayload``,
  :mod:`relaygate.observe.standard`), ``response_cost``, ``litellm_call_id``, ``call_type``, ``stream``,
  ``cache_hit``, ``user``, ``start_time`` / ``end_time``, and on failure ``exception`` (an ``Exception`` carrying
  the error's text and status) and ``traceback_exception``. ``response_obj`` is the answer with both attribute and
  item access (``response_obj.choices[0].message.content``, ``response_obj["usage"]``, ``.model_dump()``) on
  success, None on failure. ``start_time`` and ``end_time`` are ``datetime``\\ s. Under
  ``turn_off_message_logging`` or the redaction header, messages and the answer's content are
  ``redacted-by-litellm``, as LiteLLM redacts for every logger.

Where relaygate differs: LiteLLM also runs a custom class's proxy hooks (``async_pre_call_hook`` and the like)
on the request path; relaygate calls only the logging methods (a hook is a request-path extension, which this
sink is not). A callback defining a hook that could refuse or change a request or its answer (a custom
guardrail, :data:`GUARD_HOOKS`) stops the start, as LiteLLM's ``guardrails`` do here, unless
``relaygate_settings.ignore_guardrails: true`` says to serve without it knowingly (then a warning names them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import importlib.util
import inspect
import logging
import os
import queue
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from relaygate.config.errors import ConfigError
from relaygate.config.observe import CUSTOM, ObserveSettings
from relaygate.core.errors import redact
from relaygate.logs import Every, escape_controls
from relaygate.observe.detail import Detail, detail_of
from relaygate.observe.standard import standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["CALL_TIMEOUT", "GUARD_HOOKS", "CustomCallbackSink", "CustomLogger", "Response", "load_callback",
           "make_custom_callbacks", "shim_litellm"]

log = logging.getLogger("relaygate.observe")

CALL_TIMEOUT = 30.0
"""Seconds one call of a custom callback may take."""
FAILED_EVENT = f"{CUSTOM}_failed"
_SOURCE = "litellm_settings"
GUARD_HOOKS = ("async_pre_call_hook", "async_moderation_hook", "async_post_call_success_hook",
               "async_post_call_streaming_hook", "async_post_call_streaming_iterator_hook",
               "async_pre_call_deployment_hook")
"""LiteLLM's proxy hooks that can refuse or change a request or its answer (a custom guardrail): not run here, so
a callback defining one stops the start unless ``relaygate_settings.ignore_guardrails`` acknowledges it."""
_OTHER_HOOKS = ("async_post_call_failure_hook", "async_pre_routing_hook", "async_logging_hook")
"""Proxy hooks that only see a request (or may reshape what is logged): not run either, named in a warning."""


class CustomLogger:
    """LiteLLM's ``CustomLogger`` base as a custom callback file imports it (``from
    litellm.integrations.custom_logger import CustomLogger``) when LiteLLM is not installed: every method a no-op,
    so a subclass overrides the ones it wants."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        pass

    def log_post_api_call(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass


def _completion_cost(completion_response: Any = None, *args: Any, **kwargs: Any) -> float:
    """``litellm.completion_cost(completion_response=response_obj)`` in LiteLLM's own custom callback example: the
    cost the gateway priced the answer at (its ``_hidden_params["response_cost"]``, as LiteLLM's responses carry
    it); anything else is a ``ValueError`` saying so."""
    hidden = getattr(completion_response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    raise ValueError("relaygate's litellm.completion_cost prices the response_obj a custom callback is given only")


def _missing(name: str) -> Any:
    raise AttributeError(f"litellm.{name} is not available: relaygate runs custom callbacks without LiteLLM and "
                         "provides litellm.integrations.custom_logger.CustomLogger and litellm.completion_cost only")


def shim_litellm() -> bool:
    """Make ``litellm.integrations.custom_logger.CustomLogger`` importable when LiteLLM is not installed (the
    package's other names raise an ``AttributeError`` saying so); True when the shim is in place."""
    if isinstance(sys.modules.get("litellm"), types.ModuleType) and getattr(sys.modules["litellm"], "_relaygate_shim",
                                                                           False):
        return True
    try:
        if importlib.util.find_spec("litellm") is not None:
            return False  # the real one: its CustomLogger is a base class like this one
    except (ImportError, ValueError):
        pass
    top = types.ModuleType("litellm", "relaygate's stand-in for LiteLLM's names a custom callback imports")
    top.__path__ = []  # a package
    top._relaygate_shim = True  # type: ignore[attr-defined]
    top.__getattr__ = _missing  # type: ignore[method-assign]
    top.completion_cost = _completion_cost  # type: ignore[attr-defined]
    integrations = types.ModuleType("litellm.integrations")
    integrations.__path__ = []
    custom_logger = types.ModuleType("litellm.integrations.custom_logger")
    custom_logger.CustomLogger = CustomLogger  # type: ignore[attr-defined]
    top.integrations = integrations  # type: ignore[attr-defined]
    integrations.custom_logger = custom_logger  # type: ignore[attr-defined]
    sys.modules.update({"litellm": top, "litellm.integrations": integrations,
                        "litellm.integrations.custom_logger": custom_logger})
    return True


_loaded: dict[tuple[str, str], Any] = {}
"""Callbacks already loaded in this process (a module is imported once: the workers forked after the check share
what it loaded)."""


def load_callback(path: str, base_dir: str = "", hooks_ok: bool = False) -> Any:
    """The object ``path`` (``module.attribute``) names, its module looked for beside the config first
    (module docstring); a class is instantiated once. ``ConfigError`` naming what failed, or naming the proxy
    hooks that could refuse or change requests (:data:`GUARD_HOOKS`) unless ``hooks_ok``."""
    key = (path, base_dir)
    if key in _loaded:
        obj = _loaded[key]
        _check_hooks(path, obj, hooks_ok)
        return obj
    module_name, _, attr = path.rpartition(".")
    shim_litellm()
    file = os.path.join(base_dir, *module_name.split(".")) + ".py" if base_dir else ""
    try:
        if file and os.path.isfile(file):
            spec = importlib.util.spec_from_file_location(module_name, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # the operator's module: any error in it stops the start, named
        raise ConfigError(_SOURCE, "callbacks", f"custom callback {path!r}: cannot import {module_name!r} "
                          f"({type(exc).__name__}: {escape_controls(str(exc))[:300]})") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigError(_SOURCE, "callbacks", f"custom callback {path!r}: module {module_name!r} has no "
                          f"attribute {attr!r}")
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(_SOURCE, "callbacks", f"custom callback {path!r}: the class cannot be made without "
                              f"arguments ({type(exc).__name__}: {escape_controls(str(exc))[:300]})") from None
    if not callable(obj) and _method(obj, True) is None and _method(obj, False) is None:
        raise ConfigError(_SOURCE, "callbacks", f"custom callback {path!r}: neither a function nor an object with "
                          "log_success_event / log_failure_event (or their async_ forms)")
    _check_hooks(path, obj, hooks_ok)
    _loaded[key] = obj
    return obj


def _check_hooks(path: str, obj: Any, hooks_ok: bool) -> None:
    guards = [h for h in GUARD_HOOKS if _overrides(obj, h)]
    if guards and not hooks_ok:
        raise ConfigError(_SOURCE, "callbacks", f"custom callback {path!r} defines {', '.join(guards)}: relaygate "
                          "runs a custom callback's logging methods only, so the requests and answers these hooks "
                          "would refuse or change would pass unchecked. Remove them, or set "
                          "relaygate_settings.ignore_guardrails: true to serve without them knowingly")
    hooks = guards + [h for h in _OTHER_HOOKS if _overrides(obj, h)]
    if hooks:
        log.warning("custom callback %s defines %s: relaygate calls a custom callback's logging methods only "
                    "(its proxy hooks do not run)", path, ", ".join(hooks))


def _overrides(obj: Any, name: str) -> bool:
    """Whether ``obj``'s class defines ``name`` itself (not LiteLLM's or this module's no-op base)."""
    for cls in type(obj).__mro__:
        if name in vars(cls):
            return cls.__name__ != "CustomLogger" and cls is not object
    return False


def _method(obj: Any, success: bool) -> Callable[..., Any] | None:
    """The method a custom callback object is told with (module docstring), or None."""
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj):
        return None
    which = "success" if success else "failure"
    for name in (f"async_log_{which}_event", f"log_{which}_event"):
        if _overrides(obj, name):
            return getattr(obj, name)  # type: ignore[no-any-return]
    return None


class Response(dict[str, Any]):
    """An answer as LiteLLM's callbacks read a ``ModelResponse``: item access, attribute access (nested),
    ``.get``, ``.model_dump()`` and ``.json()``; the top level's ``_hidden_params`` as LiteLLM's
    (``response_cost``, ``model_id``, ``api_base``, ``custom_llm_provider``)."""

    _hidden_params: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self[name])
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return _wrap(super().__getitem__(name))

    def get(self, name: str, default: Any = None) -> Any:
        return _wrap(super().get(name, default))

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return dict(self)

    def json(self, **_: Any) -> str:
        import orjson
        return orjson.dumps(dict(self), default=str).decode()


class _List(list[Any]):
    def __getitem__(self, i: Any) -> Any:
        return _wrap(super().__getitem__(i))

    def __iter__(self) -> Any:
        return (_wrap(x) for x in super().__iter__())


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Response):
        return Response(value)
    if isinstance(value, list) and not isinstance(value, _List):
        return _List(value)
    return value


class CallbackError(Exception):
    """The exception a failure's ``kwargs["exception"]`` carries: the error's text, with ``status_code`` and
    ``llm_provider`` as LiteLLM's exceptions have them."""

    def __init__(self, message: str, status_code: int, llm_provider: str) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.llm_provider = llm_provider


_EMPTY: dict[str, Any] = {}


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds)


def call_args(r: CompletionRecord, detail: Detail | None, redact_messages: bool = False
              ) -> tuple[dict[str, Any], Any, dt.datetime, dt.datetime]:
    """``(kwargs, response_obj, start_time, end_time)`` for one record (module docstring)."""
    ok = r.outcome is Outcome.OK
    payload = standard_payload(r, detail, redact_messages=redact_messages)
    body = detail.input if detail is not None and type(detail.input) is dict else _EMPTY
    redacted = redact_messages or (detail is not None and detail.redacted)
    start, end = _time(r.start_time), _time(r.start_time + r.latency)
    client = detail.metadata if detail is not None and type(detail.metadata) is dict else _EMPTY
    # the client's metadata, then what the proxy adds over it (LiteLLM's user_api_key* ...), as LiteLLM merges them
    meta = {**client, **payload["metadata"], "user_api_key": r.key_hash, "model_group": r.model_group,
            "deployment": r.upstream_model or r.model,
            "headers": dict(detail.headers) if detail is not None and detail.headers is not None else {}}
    request = ({"body": body if body is not _EMPTY else {}} if not redacted else {})
    kwargs: dict[str, Any] = {
        "model": r.upstream_model or r.model,
        "messages": payload.get("messages") if redacted or not isinstance(body.get("messages"), list)
        else body["messages"],
        "optional_params": payload["model_parameters"],
        "litellm_params": {"metadata": meta, "model_info": {"id": r.deployment_id},
                           "api_base": payload.get("api_base") or "", "custom_llm_provider": r.provider,
                           "proxy_server_request": request},
        "standard_logging_object": payload,
        "response_cost": payload.get("response_cost") or 0.0,
        "litellm_call_id": r.call_id,
        "call_type": payload.get("call_type"),
        "stream": r.stream,
        "cache_hit": r.cache_hit,
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
        "custom_llm_provider": r.provider,
        "start_time": start,
        "end_time": end,
    }
    response: Any = None
    if ok:
        answer = payload.get("response")
        if isinstance(answer, dict):
            response = Response(answer)
            response._hidden_params = {"response_cost": kwargs["response_cost"], "model_id": r.deployment_id,
                                       "api_base": kwargs["litellm_params"]["api_base"],
                                       "custom_llm_provider": r.provider}
            if type(dict.get(response, "usage")) is not dict:
                dict.__setitem__(response, "usage", {"prompt_tokens": r.prompt_tokens,
                                                     "completion_tokens": r.completion_tokens,
                                                     "total_tokens": r.prompt_tokens + r.completion_tokens})
        kwargs["complete_streaming_response"] = response if r.stream else None
    else:
        message = payload.get("error_str") or f"HTTP {r.status}"
        kwargs["exception"] = CallbackError(message, r.status, r.provider)
        kwargs["traceback_exception"] = message
    return kwargs, response, start, end


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if not fut.done():
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


class _Worker:
    """One daemon thread running the sync callbacks in turn: a callback that hangs holds the sink (whose bounded
    buffer then drops, counted), never the process's exit (a ``ThreadPoolExecutor``'s threads are joined then)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="relaygate-custom-callback", daemon=True).start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, fut, fn, args = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # the operator's code: reported to the awaiting sink
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(_settle, fut, result, error)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((loop, fut, fn, args))
        return fut

    def stop(self) -> None:
        self._queue.put(None)


class CustomCallbackSink:
    """The operator's callbacks, told about each finished request off the request path (module docstring)."""

    name = CUSTOM

    def __init__(self, settings: ObserveSettings, on_event: OnEvent | None = None, *,
                 loader: Callable[[str, str, bool], Any] = load_callback, call_timeout: float = CALL_TIMEOUT) -> None:
        ok = settings.custom_hooks_ok
        self.success = [(p, loader(p, settings.custom_dir, ok)) for p in settings.custom_success]
        self.failure = [(p, loader(p, settings.custom_dir, ok)) for p in settings.custom_failure]
        cb = settings.callback_settings.get(CUSTOM) or {}
        self.redact = settings.turn_off_message_logging or cb.get("message_logging", True) is False
        self.on_event = on_event
        self.timeout = call_timeout
        self.failed = 0
        self.called = 0
        self._worker: _Worker | None = None
        self._errlog = Every(60.0)

    def _count_failure(self, path: str, exc: BaseException | None) -> None:
        self.failed += 1
        if self.on_event is not None:
            self.on_event(FAILED_EVENT, 1)
        suppressed = self._errlog.ready()
        if suppressed is not None:
            why = "timed out" if exc is None else f"raised {type(exc).__name__}: {redact(str(exc))[:300]}"
            log.warning("custom callback %s %s (%d failure(s) not logged since the last)", path,
                        escape_controls(why), suppressed)

    async def _call(self, path: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            if inspect.iscoroutinefunction(fn):
                async with asyncio.timeout(self.timeout):  # no task per call (wait_for makes one)
                    await fn(*args)
            else:
                if self._worker is None:
                    self._worker = _Worker()
                result = await asyncio.wait_for(self._worker.submit(fn, args), self.timeout)
                if inspect.isawaitable(result):  # a plain function that returned a coroutine
                    async with asyncio.timeout(self.timeout):
                        await result
            self.called += 1
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self._count_failure(path, None)
        except BaseException as exc:  # the operator's code, whatever it raises (a sys.exit too): counted, not fatal
            self._count_failure(path, exc)

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        for r in batch:
            ok = r.outcome is Outcome.OK
            targets = self.success if ok else self.failure
            if not targets:
                continue
            args = call_args(r, detail_of(r), self.redact)
            for path, obj in targets:
                fn = _method(obj, ok)
                if fn is None:
                    if _method(obj, not ok) is not None or not callable(obj):
                        continue  # an object with the other event's method only
                    fn = obj  # a function
                await self._call(path, fn, args)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def discard(self) -> None:
        """Nothing to stop (``observe.check`` builds a sink to validate)."""


def make_custom_callbacks(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None
                          ) -> CustomCallbackSink:
    """The custom callbacks' sink (``observe._factory``'s signature); ``ConfigError`` as :func:`load_callback`."""
    sink = CustomCallbackSink(settings, on_event)
    names = [p for p, _ in sink.success] + [p for p, _ in sink.failure if all(p != q for q, _ in sink.success)]
    log.info("custom callbacks: %s", ", ".join(names))
    return sink
