"""The request pipeline: every LLM route, whatever its client API, runs through :meth:`Pipeline.run`.

The stages, top to bottom (each costs nothing when its feature is off)::

    headers    Overrides: x-litellm-call-id / -timeout / -num-retries, declared Content-Length  (pipeline.overrides)
    authenticate   runtime.principals: a cache hit is no await; a miss awaits the lookup   (auth.resolver);
               a JWT principal's allowed routes and end user (``Principal.jwt``, None for all others)
    parse      the frontend reads the body into the exchange: endpoint, body, view, model, stream, fallbacks
    resolve    runtime.router.resolve(model): the model group (the key's aliases, then the router's aliases and
               wildcards); unknown -> 400
    authorize  a virtual key's allow-list covers the model and every fallback it names    (auth.Principal)
    before_route   the runtime's hooks: budgets (relaygate.budgets, installed only with a store or a proxy-wide
               budget), a cache lookup; none by default. A hit pays the key's rate limits only (Router.admit_key:
               over them, the routed 429) and is sent whole (cache.stage)
    admit + attempt   Router.run: per target, pay the limits (admit), then the frontend's attempt function
               (pipeline.frontend: unary / stream / fan-out by the adapter's capabilities); retries,
               cooldowns and fallbacks as the router decides
    relay      a unary answer is sent whole; a stream's frames are relayed as they come  (pipeline.stream)
    price      where the usage is read: the attempt that answered, on its deployment's precomputed price table
               (relaygate.cost; frontend.price / price_stream); x-litellm-response-cost on unary answers
    complete   one CompletionRecord into the worker's bounded queue; sinks drain it off the request path

Errors in any stage reach the client in the frontend's shape (:meth:`Frontend.send_error`) with the call
id, are completed as records and logged once (rate limited, escaped); a client that goes away cancels
the work (``http.respond.DisconnectWatch``), closes the upstream and completes the exchange as ``499``.

The pipeline reads ``self.runtime`` once per request (``Exchange.rt``); a config reload assigns a new
snapshot here and requests in flight keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from relaygate import service_metrics
from relaygate.auth.access import check_fields, client_address, request_fields
from relaygate.auth.keys import KeyInfo
from relaygate.core import errors
from relaygate.core.baggage import add_mapped
from relaygate.core.body import restamp_model
from relaygate.core.errors import GatewayError, KeyLimitExceeded
from relaygate.core.tokens import MAX_TOKENS
from relaygate.cost import adjust, usd, zero_cost
from relaygate.http.body import ClientGone, body_ended_early
from relaygate.http.respond import DisconnectWatch, send_body
from relaygate.http.routes import Params
from relaygate.http.types import Headers, Receive, Scope, Send
from relaygate.logs import fail_log
from relaygate.observe.capture import Capture, traced
from relaygate.pipeline import batch, control, schema_check
from relaygate.pipeline.exchange import Exchange, add_upstream_headers
from relaygate.pipeline.frontend import Frontend, Spent
from relaygate.pipeline.overrides import Overrides, forwardable, forwards_for, new_call_id, organization
from relaygate.pipeline.stream import relay_stream
from relaygate.route_context import RouteContext
from relaygate.router import Lease, ModelGroup
from relaygate.routing_limits import KeyHold
from relaygate.runtime import Runtime
from relaygate.sinks import CompletionQueue, CompletionRecord, Outcome
from relaygate.sinks.prompts import Prompts, tenant_allows
from relaygate.sinks.record import CALL_TYPES, ERROR_MESSAGE_MAX, MAX_COST, bound_usage
from relaygate.upstream.base import Transport

log = logging.getLogger("relaygate")


class Pipeline:
    """One worker's pipeline: the runtime snapshot it serves, the transport, the completion queue."""

    def __init__(self, runtime: Runtime, transport: Transport, completions: CompletionQueue) -> None:
        self.runtime = runtime
        self.transport = transport
        self.completions = completions
        self.inflight = 0
        """Requests past authentication this worker serves now, counted only under
        ``global_max_parallel_requests`` (kept across reloads: the pipeline outlives its runtimes)."""
        self.hangs: dict[Exchange, bool] | None = None
        """The exchanges in flight, with ``llm_requests_hanging`` alerts on (``pipeline.hanging``); else None."""

    def _admit(self, ex: Exchange, cap: int) -> None:
        """LiteLLM's global parallel-request bound, after authentication (its pre-call hook's place)."""
        if self.inflight >= cap:
            raise KeyLimitExceeded(f"Max parallel request limit reached Hit Global Limit: Limit={cap}, current: "
                                   f"{self.inflight}", type="None", param="None", code="429",
                                   headers=[(b"retry-after", b"%d" % (60 - int(time.time()) % 60))])
        self.inflight += 1
        ex.admitted = True

    async def run(self, fe: Frontend, scope: Scope, receive: Receive, send: Send, params: Params,
                  path: str = "") -> None:
        ex = Exchange(fe.route, time.perf_counter(), self.runtime, path)
        ex.scope = scope
        hangs = self.hangs
        if hangs is not None:
            hangs[ex] = False
        rt = ex.rt
        cap = rt.max_parallel
        svc = service_metrics.active  # LiteLLM's service families: None unless prometheus_system is on
        stage: str | None = None
        started = 0.0
        try:
            headers = scope["headers"]
            over = ex.over = Overrides(headers, rt.max_body, rt.user_header, rt.tag_headers)
            if rt.forward_headers:  # forward_client_headers_to_llm_api (never the custom key header)
                over.forward = forwardable(headers, rt.principals.key_header)
            if rt.forward_org:  # forward_openai_org_id
                over.org = organization(headers)
            ex.call_id = over.call_id or new_call_id()
            principals = rt.principals
            if svc is not None:
                stage, started = "auth", time.perf_counter()
            who = ex.who = principals.resolve_cached(headers) or await principals.resolve(headers)
            if svc is not None:
                svc.ok("auth", time.perf_counter() - started)
                stage = None
            if who.jwt is not None:  # a JWT's allowed routes and end user (auth.jwt_routes); None for all others
                who.jwt.admit(ex, scope["path"])
            if who.routes is not None:  # a virtual key's allowed_routes (auth.key_routes); None for all others
                who.routes.check(scope["path"])
            if rt.tag_mapper is not None:  # request_tag_mappings: the baggage's tags after x-litellm-tags'
                over.tags = add_mapped(rt.tag_mapper, headers, over.tags)
            await fe.parse(ex, scope, receive, params)
            if rt.track_remaining:  # Prometheus on: LiteLLM's queue time (arrival to pre-call processing)
                ex.queued = time.perf_counter() - ex.t0
            if rt.model_override is not None:  # completion_model, embedding_model ... (LiteLLM's)
                ex.model = rt.model_override.get(ex.route, ex.model)
            if who.key is not None and who.key.enforced is not None:  # the key's metadata.enforced_params
                check_fields(request_fields(ex), who.key.enforced, "the key's metadata.enforced_params")
            if cap is not None:
                self._admit(ex, cap)
            if (rt.observer is not None or (who.key is not None and who.key.logging is not None)) and not (
                    who.key is not None and who.key.logging_off):  # a team with logging off: nothing captured
                targets = who.key.logging if who.key is not None else None
                if targets is not None and rt.ensure_targets is not None:
                    rt.ensure_targets(targets)
                ex.obs = Capture(rt.observer if rt.observer is not None else rt.key_observer, ex, headers, targets,
                                 who.key is not None and who.key.no_message_logging)
            if fe.batches and "," in ex.model and ex.model not in rt.router.groups:
                await batch.run(self, fe, send, ex)
                return
            key = who.key
            model = ex.model
            if key is not None and key.aliases:  # the key's (and its team's) model aliases, as LiteLLM's
                model = key.aliases.get(model, model)
            group = ex.group = rt.router.resolve(model, fe.router_route)
            if rt.forward_groups is not None and forwards_for(rt.forward_groups, model, group.name):
                over.forward = forwardable(headers, rt.principals.key_header)  # LiteLLM's model_group_settings
            if key is not None:
                who.check_model(model)  # the model served is the one the key must be allowed
                if ex.fallbacks:
                    who.check_models(ex.fallbacks)
            if svc is not None:
                stage, started = "proxy_pre_call", time.perf_counter()
            try:
                for hook in rt.before_route:
                    pending = hook(ex)
                    if pending is not None:
                        await pending
            except errors.GatewayError as refused:
                if refused.budget_fallback is None:
                    raise
                model, group = await self.budget_fallback(ex, fe, refused, refused.budget_fallback)
            cache = rt.cache
            stored = None
            if cache is not None and fe.route in cache.routes and (ex.control is None or not control.mocked(ex)):
                found = cache.find(ex)  # at once from this worker's memory, else an awaitable of it
                stored = found if found is None or type(found) is bytes else await found
            if svc is not None:
                svc.ok("proxy_pre_call", time.perf_counter() - started)
                stage = None
            if stored is not None and cache is not None:  # a hit: the key's limits, no deployment or upstream
                if key is None or not (key.buckets or key.model_buckets):
                    await cache.serve(ex, send, stored, self.hit_headers(ex, key, None))
                else:
                    await self.serve_limited(ex, send, stored, key)
                self.complete(ex, 200, Outcome.OK)
                return
            ctx = ex.ctx = RouteContext(stream=ex.stream, num_retries=over.num_retries, fallbacks=ex.fallbacks,
                                        timeout=over.timeout, key=key, messages=getattr(ex.view, "messages", None))
            if key is not None and key.router is not None:  # the key's router_settings, where the request has none
                kr = key.router
                if ctx.num_retries is None:
                    ctx.num_retries = kr.num_retries
                if ctx.timeout is None:
                    ctx.timeout = kr.timeout
                if ctx.fallbacks is None and model in kr.fallbacks:
                    ctx.fallbacks = [m for m in kr.fallbacks[model] if key.allows(m)]
            if ex.control is not None or over.tags is not None:
                ctx.tags = control.request_tags(over.tags, ex.control)
            if ex.control is not None or (key is not None and key.disable_fallbacks is not None):
                control.route_controls(ctx, ex.control, key)
            if fe.direct:
                await fe.answer(self.transport, ex, send)
                self.complete(ex, 200, Outcome.OK)
            elif ex.stream:
                await self.watched(receive, True, relay_stream(self, fe, send, ex, group), ex)
            else:
                await self.watched(receive, rt.watch_unary and not fe.body_pending(ex), self.relay_unary(fe, send, ex),
                                   ex)
        except GatewayError as exc:
            if stage is not None and svc is not None:
                svc.failed(stage, exc, CALL_TYPES.get(fe.route, fe.route))
            await self.fail(fe, send, ex, exc, scope)
        except ClientGone:
            await self.fail(fe, send, ex, body_ended_early(), scope)
        except Spent as spent:
            await self.fail(fe, send, ex, spent.error, scope)
        finally:
            if ex.admitted:
                self.inflight -= 1
            if ex.hold is not None and not ex.done:  # ended without a record (cancelled): nothing stays held
                ex.hold.release()
            if hangs is not None:
                hangs.pop(ex, None)

    async def budget_fallback(self, ex: Exchange, fe: Frontend, refused: GatewayError, model: str
                              ) -> tuple[str, ModelGroup]:
        """LiteLLM 1.110's ``budget_fallbacks``: the key's own budget for the model asked for is spent, and
        ``model`` (its chain's first within budget) serves the request instead when the key may call it (the
        key's aliases apply, as to the model asked for); else the refusal stands. The request now names it (its
        answer too, as LiteLLM rewrites the request's model) and the hooks run again for it (a refusal then is
        final). Returns the model served (aliased) and its group."""
        who = ex.who
        assert who is not None and who.key is not None
        target = who.key.aliases.get(model, model) if who.key.aliases else model
        try:
            who.check_model(target)
            group = ex.rt.router.resolve(target, fe.router_route)
        except errors.GatewayError:
            raise refused from None
        ex.model, ex.group = model, group
        for hook in ex.rt.before_route:
            pending = hook(ex)
            if pending is not None:
                await pending
        return target, group

    async def fail(self, fe: Frontend, send: Send, ex: Exchange, exc: GatewayError, scope: Scope) -> None:
        """An error answer: completed as a record, logged once, sent in the frontend's shape with the call id."""
        if not ex.call_id:
            ex.call_id = new_call_id()
        self.complete(ex, exc.status, Outcome.ERROR, error=exc)
        fail_log.warning("%s failed: %d %s (call_id=%s)", scope["path"], exc.status, exc.message,
                         ex.call_id.decode("latin-1"))
        if ex.rt.config.general.include_call_id_in_error_body:
            exc.body_call_id = ex.call_id.decode("latin-1")
        await fe.send_error(send, exc, ex.call_id)

    async def watched(self, receive: Receive, watch: bool, work: Awaitable[None], ex: Exchange) -> None:
        """Await ``work``; with ``watch``, a client disconnect cancels it (and so its upstream call).

        Granian swallows sends to a closed connection, so a disconnect is learnt from ``receive()``: the
        watch cancels this task, the upstream response is closed, which cancels that request too.
        """
        if not watch:
            await work
            return
        w = DisconnectWatch(receive)
        try:
            await work
        except asyncio.CancelledError:
            if not w.gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.complete(ex, 499, Outcome.CLIENT_GONE)  # a stream that sent frames completed itself
        finally:
            w.stop()

    async def relay_unary(self, fe: Frontend, send: Send, ex: Exchange) -> None:
        """Admit, attempt (through the router) and send a non-stream answer whole."""
        group, ctx = ex.group, ex.ctx
        assert group is not None and ctx is not None
        attempt = fe.unary(self.transport, ex)
        if ex.obs is not None and ex.obs.exports:
            attempt = traced(ex.obs, attempt)
        svc = service_metrics.active
        if svc is None:
            (data, up_headers), lease = await ex.rt.router.run(group, ctx, attempt)
        else:
            (data, up_headers), lease = await svc.time("router", CALL_TYPES.get(ex.route, ex.route),
                                                       ex.rt.router.run(group, ctx, attempt))
        if fe.restamp:
            data = restamp_model(data, ex.model)
        usage = fe.usage(ex, data)
        pt, ct = (usage[0], usage[1]) if usage else (0, 0)
        lease.finish(True, pt + ct, prompt=pt if usage else None)
        ex.lease, ex.prompt_tokens, ex.completion_tokens = lease, pt, ct
        pico = fe.price(ex, lease.target.dep, data)
        parts = None
        prices = ex.rt.prices
        if prices.adjusting:  # litellm_settings.cost_discount_config / cost_margin_config (cost.adjust)
            pico, parts = prices.charge(lease.target.dep, pico)
            ex.cost_parts = parts
        cost = ex.cost = usd(pico)
        if (ex.rt.check_schemas or ex.control is not None) and ex.route == "chat" and \
                schema_check.wanted(ex.rt.check_schemas, ex.control):  # enable_json_schema_validation
            schema_check.check(ex.body, data, ex.model)  # a mismatch fails the request, charged (schema_check)
        total = time.perf_counter() - ex.t0
        headers = self.headers(ex, lease, total)
        if cost or prices.priced(lease.target.dep):  # LiteLLM's str(float) of USD; none for a model
            headers.append((b"x-litellm-response-cost", str(cost).encode()))  # nobody priced (as LiteLLM 1.110)
            if parts is not None:
                headers += adjust.headers(parts)
        if up_headers:
            add_upstream_headers(headers, ex, up_headers, bool(lease.headers))
        ctype = fe.content_type(up_headers)
        headers.append((b"content-type", ctype))
        st = ex.cache
        sent = data if st is None or st.parts is None or len(st.parts.missing) == len(st.parts.keys) else \
            st.parts.merged(data)  # embeddings: the inputs the cache had, put back among the upstream's
        await send_body(send, 200, sent, headers)
        if st is not None:
            ex.rt.cache.keep(ex, data, ctype)
        if ex.obs is not None:
            ex.obs.output = sent
        self.complete(ex, 200, Outcome.OK, total)

    async def serve_limited(self, ex: Exchange, send: Send, stored: bytes, key: KeyInfo) -> None:
        """A hit for a key with rate limits: pays them as a routed request would (``Router.admit_key``; over
        them, the routed 429 before anything is sent, the request counted as neither hit nor miss), sends
        the hit and settles them with its usage."""
        rt, group = ex.rt, ex.group
        assert group is not None and rt.cache is not None
        try:
            hold = await rt.router.admit_key(group, key, getattr(ex.view, "messages", None))
        except GatewayError:
            ex.cache = None
            raise
        try:
            await rt.cache.serve(ex, send, stored, self.hit_headers(ex, key, hold))
        finally:
            if hold is not None:
                hold.finish(ex.prompt_tokens + ex.completion_tokens, ex.prompt_tokens)

    def hit_headers(self, ex: Exchange, key: KeyInfo | None, hold: KeyHold | None) -> Headers:
        """What a hit carries of a routed answer's ``x-litellm-*`` headers (:meth:`headers`) but those naming a
        deployment; the cache adds its own and the durations (``ResponseCache.serve``)."""
        headers = [*ex.rt.answer_headers, (b"x-litellm-attempted-retries", b"0"),
                   (b"x-litellm-attempted-fallbacks", b"0")]
        if hold is not None:
            headers.extend(hold.headers)
        if key is not None and key.headers:
            headers.extend(key.headers)
        headers.append((b"x-litellm-key-spend", key_spend(key, 0.0)))
        return headers

    def headers(self, ex: Exchange, lease: Lease, total: float) -> Headers:
        """The ``x-litellm-*`` headers of an answer (LiteLLM's names and formats)."""
        overhead = total - ex.wait
        ctx = ex.ctx
        assert ctx is not None
        key = ctx.key
        headers = [
            (b"x-litellm-call-id", ex.call_id),
            *lease.target.headers,
            *ex.rt.answer_headers,
            (b"x-litellm-response-duration-ms", b"%.3f" % (total * 1000.0)),
            (b"x-litellm-overhead-duration-ms", b"%.3f" % ((overhead if overhead > 0.0 else 0.0) * 1000.0)),
            (b"x-litellm-attempted-retries", b"%d" % ctx.attempted_retries),
            (b"x-litellm-attempted-fallbacks", b"%d" % ctx.attempted_fallbacks),
            *lease.headers,
        ]
        # LiteLLM's x-litellm-key-spend: the key's spend including this answer's cost (a unary answer's; a
        # stream's head goes out before its cost is known); the master key and keys not in the store count
        # from 0, as LiteLLM's. The key's headers carry its limits and x-litellm-key-max-budget
        # (auth.store_keys)
        if key is not None and key.headers:
            headers.extend(key.headers)
        headers.append((b"x-litellm-key-spend", key_spend(key, ex.cost)))
        return headers

    def complete(self, ex: Exchange, status: int, outcome: Outcome, latency: float | None = None,
                 error: GatewayError | None = None) -> None:
        """The exchange ended: one completion record into the queue (never awaits; a second call is a no-op)."""
        if ex.done:
            return
        ex.done = True
        ex.status = status
        total = time.perf_counter() - ex.t0 if latency is None else latency
        overhead = total - ex.wait
        lease, who, ctx, cached = ex.lease, ex.who, ex.ctx, ex.cache
        dep = lease.target.dep if lease is not None else None
        hit = cached is not None and cached.hit
        if not (0 <= ex.prompt_tokens < MAX_TOKENS and 0 <= ex.completion_tokens < MAX_TOKENS and 0.0 <= ex.cost <=
                MAX_COST and 0 <= ex.cached_tokens < MAX_TOKENS and 0 <= ex.cache_write_tokens < MAX_TOKENS):
            (ex.prompt_tokens, ex.completion_tokens, ex.cached_tokens, ex.cache_write_tokens), ex.cost = bound_usage(
                (ex.prompt_tokens, ex.completion_tokens, ex.cached_tokens, ex.cache_write_tokens), ex.cost,
                ex.group.name if ex.group is not None else "", dep.id if dep is not None else "")  # config names only
        record = CompletionRecord(
            ex.call_id.decode("latin-1"), ex.route, ex.stream, ex.model,
            dep.model_name if dep is not None else ex.group.name if ex.group is not None else "",
            dep.id if dep is not None else "",
            dep.provider if dep is not None else "", dep.upstream_model if dep is not None else "",
            who.key_hash if who is not None else None, who.key_alias if who is not None else None,
            who.team_id if who is not None else None, who.record_user if who is not None else None,
            status, outcome, ex.prompt_tokens, ex.completion_tokens, ex.cached_tokens, ex.cache_write_tokens, total,
            ex.ttft,
            overhead if overhead > 0.0 else 0.0, ex.cost, hit,
            ctx.attempted_retries if ctx is not None else 0, ctx.attempted_fallbacks if ctx is not None else 0,
            time.time() - total, (error.type or "") if error is not None else "")
        if ex.estimated:
            record.cost_estimated = True
        if ex.zero is not None:  # billable usage priced at 0 (cost.zero_cost): LiteLLM's warning, once a minute
            record.zero_cost = ex.zero
            zero_cost.warn(ex.zero, record.model_group, record.provider, ex.prompt_tokens, ex.completion_tokens)
        if ex.hold is not None:  # the budgets' reservation: released when the guard's sink counts this record
            record.hold = ex.hold.id
        if cached is not None and not hit:
            record.cache_miss = True
        if ctx is not None and ctx.failed:
            record.failed_attempts = tuple(ctx.failed)
        if ex.api_ttft is not None:
            record.api_ttft = ex.api_ttft
        if ex.path:
            record.request_route = ex.path
        if error is not None:
            if error.message:
                record.error_message = error.message[:ERROR_MESSAGE_MAX]
            if error.litellm_class:
                record.error_class = error.litellm_class
        if ex.remaining is not None:
            record.upstream_ratelimit = ex.remaining
        if ex.rt.track_remaining:  # Prometheus on: its token-detail families, labels and the limiter gauges
            record.usage_labels = ex.labels
            record.queue_time = ex.queued
            if lease is not None and lease.headers:
                record.key_ratelimit = lease.headers
        key_meta = None
        if who is not None:
            rows = who.key.records if who.key is not None else None
            if rows:  # the stored key's team and user rows: LiteLLM's team_alias and user_email labels
                if rows[1] is not None:
                    record.team_alias = rows[1].team_alias
                    if who.key is not None and who.key.logging_off:  # its team's logging is off
                        record.no_logging = True
                if rows[2] is not None:
                    record.user_email = rows[2].user_email
                org = rows[3] if len(rows) > 3 else None
                if org is not None:  # the key's organization (its own, else its team's): LiteLLM's org labels
                    record.org_id, record.org_alias = org.organization_id, org.organization_alias
                meta = rows[0].metadata
                if meta and "spend_logs_metadata" in meta:
                    key_meta = meta["spend_logs_metadata"]
                if meta and ex.rt.key_metadata:  # custom_prometheus_metadata_labels
                    record.key_metadata = meta
            if who.jwt is not None:  # a JWT's organization claim (auth.jwt_routes)
                record.org_id = who.jwt.org_id
        if ex.cost > 0.0 and ctx is not None and ctx.key is not None:
            ctx.key.spent += ex.cost
        how = ex.rt.requester_ip
        if how and ex.scope is not None:  # LiteLLM's requester_ip_address (2: the proxy's X-Forwarded-For hop)
            record.requester_ip = client_address(ex.scope, how == 2, ex.rt.trusted_proxies)
        over = ex.over
        if over is not None:  # what spend logs keep of the request (nothing to build for a plain one)
            end_user = over.end_user or getattr(ex.view, "user", None)
            if end_user and ex.rt.track_end_users:  # disable_end_user_cost_tracking: never
                record.end_user_id = end_user if isinstance(end_user, str) else None
            control = ex.control
            if over.user_agent is not None and ex.rt.ua_tags:  # its tags are made by the sinks (header_tags_of)
                record.user_agent = over.user_agent
            if over.header_tags:
                record.header_tags = tuple(over.header_tags)
            if control is not None or over.spend_meta is not None or (ctx is not None and ctx.tags):
                record.extra = {"tags": sorted(ctx.tags) if ctx is not None and ctx.tags else [],
                                "metadata": control.get("metadata") if control is not None else None,
                                "spend_logs_metadata": over.spend_meta}
        if isinstance(key_meta, dict) and key_meta:
            add_key_spend_metadata(record, key_meta)
        if ex.cost_parts is not None:  # a provider discount or margin: LiteLLM's cost_breakdown (cost.adjust)
            extra = record.extra if isinstance(record.extra, dict) else {"tags": [], "metadata": None,
                                                                          "spend_logs_metadata": None}
            extra["cost_breakdown"] = adjust.breakdown(ex.cost_parts)
            record.extra = extra
        cap = ex.obs
        if cap is not None:  # what exporters get beyond the record (observe.capture)
            extra = record.extra if isinstance(record.extra, dict) else {}
            detail = cap.finish(ex, error)
            if cap.exports:
                extra["observe"] = detail
            if ex.rt.store_prompts and (who is None or who.key is None or tenant_allows(*(
                    getattr(row, "metadata", None) for row in who.key.records[:2]))):  # sinks.prompts
                extra["prompts"] = Prompts(cap.body, cap.answer, detail.redacted, ex.route)
            record.extra = extra
        self.completions.put(record)


def add_key_spend_metadata(record: CompletionRecord, key_meta: dict[str, object]) -> None:
    """A key's ``metadata.spend_logs_metadata`` into the record's, as LiteLLM's ``add_key_level_controls``:
    merged into the request's own (the request's values win), or in its place when the request sent none (or
    sent something else than an object); the request's body ``metadata.spend_logs_metadata`` counts as sent."""
    extra = record.extra if isinstance(record.extra, dict) else {"tags": [], "metadata": None,
                                                                  "spend_logs_metadata": None}
    sent = extra.get("spend_logs_metadata")
    if sent is None and isinstance(extra.get("metadata"), dict):
        sent = extra["metadata"].get("spend_logs_metadata")
    extra["spend_logs_metadata"] = {**key_meta, **sent} if isinstance(sent, dict) else dict(key_meta)
    record.extra = extra


def key_spend(key: KeyInfo | None, cost: float) -> bytes:
    """``x-litellm-key-spend``: the key's spend so far (its row's and what this worker saw since) plus
    ``cost``; the master key and keys not in the store count from 0, as LiteLLM's."""
    spend = cost
    if key is not None and key.records:
        spend += (key.records[0].spend or 0.0) + key.spent
    return str(spend).encode() if spend > 0.0 else b"0.0"


def require_model(model: object, message: str = "Invalid request body: Object missing required field `model`"
                  ) -> str:
    """The request's model name, or the 400 every frontend answers when it is missing."""
    if not isinstance(model, str) or not model:
        raise errors.BadRequest(message, param="model")
    return model


__all__ = ["Pipeline", "key_spend", "require_model"]
