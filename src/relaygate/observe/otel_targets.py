"""A key's or team's own destination for an OpenTelemetry callback: one child sink per destination, bounded.

What it owns: :class:`TargetedOtel`, the base of the OTLP sinks whose callback a key's or team's
``metadata.logging`` entry may aim at credentials of its own (``langfuse_otel``: ``langfuse_public_key``,
``langfuse_secret_key``, ``langfuse_host``; ``arize``: ``arize_api_key``, ``arize_space_key`` /
``arize_space_id``). LiteLLM builds a tracer per such set of credentials and sends that key's requests there
*instead of* to the configured destination; so does this:

- **Routing.** :meth:`TargetedOtel.handle` takes each record whose key or team names this callback (for the
  record's outcome) with a destination of its own (:meth:`destination`) out of the batch and hands it to that
  destination's child sink; the rest go where the configured callback sends them. A key's entry without usable
  credentials falls back to the configured destination, as LiteLLM's does; in a sink started for keys only
  without configured credentials (:attr:`TargetedOtel.fallback`) there is none, and its records are dropped,
  counted and logged.
- **Children** are sinks of the same class (:meth:`lane`), each with its own exporter, batch processor
  (thread) and bounded queue, started on the first record for their destination, flushed and closed with the
  parent, their drops counted under the parent's event. At most :attr:`TargetedOtel.lanes_max` (16) exist:
  the records of a further destination are dropped, counted and logged (a worker must not grow a thread per
  key owner's whim).
- **Credentials** come only from the entry (``os.environ/`` references in it are the proxy admin's to write:
  ``management.common``); a key's destination never gets the environment's credentials, and a value with a
  control character (a CR LF would split the request's headers) makes the entry unusable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import LoggingTarget, detail_of
from relaygate.observe.otel import OtelSink, OtlpSettings
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["TargetedOtel", "clean", "header_safe"]

log = logging.getLogger("relaygate.observe")


def clean(value: Any) -> str | None:
    """A credential from a key's entry: stripped text without control characters, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return None if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) else value


def header_safe(name: str, value: str) -> str:
    """``value`` of the variable ``name``, a credential sent as a header by an OTLP exporter (Arize, Phoenix, the
    presets): a control character (a CR LF would split the export request) is refused."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError("environment", name, "contains a control character")
    return value


class TargetedOtel(OtelSink):
    """An OTLP sink whose records a key or team may send to a destination of its own (module docstring)."""

    lanes_max = 16

    def __init__(self, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None,
                 **kw: Any) -> None:
        super().__init__(settings, cfg, on_event, **kw)
        self.settings = settings
        self._lanes: dict[tuple[str, ...], OtelSink] = {}
        self.is_lane = False
        """A child: exports every record it is handed, routes none."""
        self.fallback: str | None = None
        """Why the records of a key's entry without a destination of its own are dropped (counted): a sink
        started for keys only (``observe.Exporters.ensure_targets``) with no configured credentials to fall back
        on. None: they go to the configured destination."""

    # -- what a subclass says ----------------------------------------------------------------------------

    def destination(self, target: LoggingTarget) -> tuple[str, ...] | None:
        """The destination a key's entry names (hashable, credentials included), None: none of its own."""
        return None

    def lane(self, destination: tuple[str, ...]) -> OtelSink:
        """A new child sink exporting to ``destination``."""
        raise NotImplementedError

    # -- routing -----------------------------------------------------------------------------------------

    def _target(self, record: CompletionRecord) -> LoggingTarget | None:
        detail = detail_of(record)
        if detail is None or not detail.logging or record.no_logging:
            return None
        kind = "success" if record.outcome is Outcome.OK else "failure"
        return next((t for t in detail.logging if t.callback_name.lower() in self.names and kind in t.callback_type),
                    None)

    def wanted(self, record: CompletionRecord) -> bool:
        if self.is_lane:
            return not record.no_logging
        return super().wanted(record)

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        if self.is_lane or self._closed:
            await super().handle(batch)
            return
        own: list[CompletionRecord] = []
        bare = 0
        routed: dict[tuple[str, ...], list[CompletionRecord]] = {}
        for record in batch:
            target = self._target(record)
            dest = self.destination(target) if target is not None else None
            if dest is not None:
                routed.setdefault(dest, []).append(record)
            elif target is not None and self.fallback is not None:
                bare += self.spans_of(detail_of(record))
            else:
                own.append(record)
        if bare:
            self._drop(bare, self.fallback or "")
        for dest, records in routed.items():
            child = self._lanes.get(dest)
            if child is None:
                why = None
                if len(self._lanes) >= self.lanes_max:
                    why = f"more than {self.lanes_max} key destinations"
                else:
                    try:
                        child = self._lanes[dest] = self.lane(dest)
                    except Exception as exc:  # a key's entry must never break the configured callback
                        why = f"a key's destination cannot be used ({type(exc).__name__})"
                if child is None:
                    self._drop(sum(self.spans_of(detail_of(r)) for r in records), why or "")
                    continue
            await child.handle(records)
        if own:
            await super().handle(own)

    def _child(self, child: OtelSink) -> OtelSink:
        """``child`` made a lane of this sink: it exports what it is handed, its drops counted as this one's."""
        child.is_lane = True  # type: ignore[attr-defined]
        child.success = child.failure = True
        return child

    async def flush(self, timeout: float = 10.0) -> bool:
        done = await super().flush(timeout)
        for child in list(self._lanes.values()):
            done = await child.flush(timeout) and done
        return done

    async def aclose(self, timeout: float = 5.0) -> None:
        await super().aclose(timeout)
        for child in list(self._lanes.values()):
            await child.aclose(timeout)

    def discard(self) -> None:
        super().discard()
        for child in list(self._lanes.values()):
            child.discard()
