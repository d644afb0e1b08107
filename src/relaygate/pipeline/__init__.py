"""The request pipeline: one sequence of stages for every LLM route (``core.Pipeline``), the per-request
state it carries (``exchange.Exchange``), the interface a client API implements to plug in
(``frontend.Frontend``), the attempt strategies (``attempts``), the stream relay (``stream``) and the
per-request overrides (``overrides``)."""

from relaygate.pipeline.core import Pipeline, require_model
from relaygate.pipeline.exchange import Exchange, StreamStart
from relaygate.pipeline.frontend import Frontend

__all__ = ["Exchange", "Frontend", "Pipeline", "StreamStart", "require_model"]
