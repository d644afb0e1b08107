"""JWT route permissions: LiteLLM's ``admin_allowed_routes`` / ``team_allowed_routes`` and its route groups.

What it owns: the route groups LiteLLM names in those lists (``LiteLLMRoutes``: ``openai_routes``,
``info_routes``, ``management_routes``, ``spend_tracking_routes``, ``global_spend_tracking_routes``,
``llm_api_routes``, ``mcp_routes`` ...; the member paths of LiteLLM 1.110), the defaults, deciding whether a
request path is in an allowed list (:class:`RouteSet`), and what a JWT principal carries beyond a key
(:class:`JWTAccess`: its route set, its organization and end user from ``org_id_jwt_field`` /
``end_user_id_jwt_field``). Sans IO: paths in, verdicts and errors out.

Matching, as LiteLLM's ``_allowed_routes_check``: an entry that names a group allows every path of the group,
each member a Starlette path template (``{param}`` one segment, ``{param:path}`` anything); any other entry is
a literal path, or a prefix when it ends with ``*`` (``/internal/*``). A path with a trailing slash is matched
without it (this gateway serves both spellings). Verdicts are memoised per set (bounded), so a JWT caller pays a
dict lookup per request after its first call to a path.

Invariants: every principal that is not a JWT has ``Principal.jwt is None``, so the request path pays one
attribute test for this feature; a JWT principal outside its set gets LiteLLM's 401 ``Authentication Error,
Admin not allowed to access this route. Route=..., Allowed Routes=[...]`` (``Team`` for team tokens), the
allowed routes listed with each group expanded, as LiteLLM's ``get_actual_routes``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from relaygate.auth.store_keys import customer_blocked
from relaygate.core import errors

__all__ = ["ADMIN_DEFAULT", "GROUPS", "JWTAccess", "RouteSet", "TEAM_DEFAULT", "TEAM_WHEN_NULL", "expand"]


def _v(*paths: str) -> tuple[str, ...]:
    """Each path as is and under ``/v1``."""
    return tuple(p for path in paths for p in (path, "/v1" + path))


def _ov(*paths: str) -> tuple[str, ...]:
    """Each path as is, under ``/v1`` and under ``/openai/v1``."""
    return tuple(p for path in paths for p in (path, "/v1" + path, "/openai/v1" + path))


def _deployment(tail: str) -> tuple[str, ...]:
    return (f"/engines/{{model}}{tail}", f"/openai/deployments/{{model}}{tail}", tail, "/v1" + tail)


MODEL_LIST = ("/models", "/v1/models", "/claude_code_gateway/v1/models")

OPENAI = (
    *_deployment("/chat/completions"), "/cursor/chat/completions", "/cursor/models", "/cursor/v1/models",
    *_deployment("/completions"), *_deployment("/embeddings"),
    *_v("/images/generations", "/images/edits", "/videos", "/videos/{video_id}", "/videos/{video_id}/content",
        "/videos/{video_id}/remix", "/audio/transcriptions", "/audio/speech", "/moderations"),
    *("/v1/batches", "/batches", "/v1/batches/{batch_id}", "/batches/{batch_id}", "/v1/batches/{batch_id}/cancel",
      "/batches/{batch_id}/cancel"),
    *("/v1/files", "/files", "/v1/files/{file_id}", "/files/{file_id}", "/v1/files/{file_id}/content",
      "/files/{file_id}/content"),
    *_v("/fine_tuning/jobs", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel", "/assistants"),
    "/v1/assistants/{assistant_id}", "/assistants/{assistant_id}",
    *_v("/threads", "/threads/{thread_id}", "/threads/{thread_id}/messages", "/threads/{thread_id}/runs"),
    *MODEL_LIST, "/utils/token_counter", "/utils/model_info", "/utils/transform_request",
    "/rerank", "/v1/rerank", "/v2/rerank",
    *_ov("/realtime", "/live/sessions"), "/realtime?{model}", "/v1/realtime?{model}", "/openai/v1/realtime?{model}",
    *_v("/realtime/translations"),
    *_ov("/realtime/client_secrets", "/realtime/calls", "/realtime/transcription_sessions"),
    *_v("/realtime/translations/client_secrets", "/realtime/translations/calls"),
    *_ov("/responses", "/responses/{response_id}", "/responses/{response_id}/input_items",
         "/responses/{response_id}/cancel", "/responses/input_tokens"),
    *_v("/vector_stores", "/vector_stores/{vector_store_id}", "/vector_stores/{vector_store_id}/search",
        "/vector_stores/{vector_store_id}/files", "/vector_stores/{vector_store_id}/files/{file_id}",
        "/vector_stores/{vector_store_id}/files/{file_id}/content", "/vector_store/list",
        "/search", "/search/{search_tool_name}", "/decisions", "/systemone", "/extraction", "/ocr",
        "/containers", "/containers/*"),
)

MAPPED_PASS_THROUGH = (
    "/backend-api/codex", "/bedrock", "/comprehendmedical", "/azure_speech", "/transcribe", "/vertex-ai",
    "/vertex_ai", "/cohere", "/cursor", "/gemini", "/anthropic", "/langfuse", "/azure", "/azure_ai", "/openai",
    "/openai_passthrough", "/assemblyai", "/eu.assemblyai", "/tinyfish", "/vllm", "/mistral", "/typesafe", "/laya",
    "/bespoke", "/openrouter", "/milvus", "/gigachat", "/watsonx", "/nvidia_nim", "/deepgram", "/fal_ai",
)
TRACE_TELEMETRY = ("/v1/traces", "/v1/logs", "/v1/traces/query", "/v1/traces/query/help", "/v1/traces/{trace_id}",
                   "/v1/traces/{trace_id}/spans/{span_id}", "/v1/traces/{trace_id}/spans/{span_id}/error")
SKILL_HUB = tuple(f"/skill-hub/{p}" for p in (
    "skills", "skills/upload", "skills/import", "skills/{name}", "skills/{name}/archive", "skills/{name}/content",
    "skills/{plugin_name}/downloads", "skills/{name}/versions", "skills/{name}/versions/{version_id}",
    "skills/{name}/versions/{version_id}/archive", "skills/{name}/publish", "skills/{name}/unpublish",
    "skills/{name}/upload", "submissions", "submissions/{submission_id}", "submissions/{submission_id}/archive",
    "submissions/{submission_id}/approve", "submissions/{submission_id}/reject", "submissions/{submission_id}/scan"))
NATIVE = ("/rag/ingest", "/v1/rag/ingest", "/rag/query", "/v1/rag/query", *TRACE_TELEMETRY)
ANTHROPIC = (
    "/v1/messages", "/v1/messages/count_tokens", "/claude_code_gateway/v1/messages",
    "/claude_code_gateway/v1/messages/count_tokens", "/v1/skills", "/v1/skills/{skill_id}",
    "/claude-code/marketplace.json", "/claude-code/plugins", "/claude-code/plugins/upload",
    "/claude-code/plugins/{plugin_name}/archive/{digest}.zip", "/claude-code/plugins/{plugin_name}/downloads",
    "/claude-code/plugins/{plugin_name}",
)
MCP_INFERENCE = ("/mcp", "/mcp/", "/mcp/sse/", "/mcp/sse/messages", "/mcp/sse/messages/", "/mcp/proxy",
                 "/mcp/{subpath}", "/mcp/tools", "/mcp/tools/list", "/mcp/tools/call", "/mcp-rest/tools/list",
                 "/mcp-rest/tools/call", "/v1/mcp/tools", "/introspect", "/token")
MCP_MANAGEMENT = ("/v1/mcp/server", "/v1/mcp/server/{path:path}", "/v1/mcp/sessions")
AGENT_INFERENCE = ("/agents", "/a2a/{agent_id}", "/a2a/{agent_id}/message/send", "/v1/a2a/{agent_id}/message/send",
                   "/a2a/{agent_id}/message/stream", "/v1/a2a/{agent_id}/message/stream",
                   "/a2a/{agent_id}/.well-known/agent-card.json")
AGENT_MANAGEMENT = ("/v1/agents", "/v1/agents/{agent_id}", "/v1/agents/make_public",
                    "/v1/agents/{agent_id}/make_public", "/v1/agents/{agent_id}/kill_switch")
GOOGLE = (
    *(f"{base}/{{model_name:path}}:{m}" for base in ("/v1beta/models", "/models")
      for m in ("countTokens", "generateContent", "streamGenerateContent")),
    *(f"{base}{p}" for p in ("/interactions", "/interactions/{interaction_id}", "/interactions/{interaction_id}/cancel")
      for base in ("", "/v1beta")),
    "/v1beta/agents", "/v1beta/agents/{name}", "/v1beta/agents/{name}/versions",
)
GUARDRAIL = ("/guardrails/apply_guardrail",)
MODEL_INFO = ("/model/info", "/v1/model/info", "/model_group/info")
INFO = (
    "/key/info", "/key/health", "/team/info", "/team/list", "/v2/team/list", "/organization/list", "/team/available",
    "/team/metadata_schema", "/user/info", "/v2/user/info", "/management/v1/users/me", "/model/info",
    "/v1/model/info", "/v2/model/info", "/v2/key/info", "/model_group/info", "/health", "/health/services",
    "/key/list", "/user/filter/ui", *MODEL_LIST, "/sso/get/ui_settings", "/get/user_banner",
    "/get/latest_release_info",
)
MASTER_KEY_ONLY = ("/global/spend/reset", "/memory-usage-in-mem-cache", "/memory-usage-in-mem-cache-items")
_TEAM_DAILY = ("/team/daily/activity", "/team/daily/activity/aggregated", "/team/daily/activity/aggregated/keys",
               "/team/daily/activity/aggregated/search", "/team/daily/activity/aggregated/model_top_keys",
               "/team/daily/activity/export")
KEY_MANAGEMENT = (
    "/key/generate", "/key/update", "/key/delete", "/key/info", "/key/regenerate", "/key/service-account/generate",
    "/key/{key_id}/regenerate", "/key/list", "/key/block", "/key/unblock", "/key/bulk_update",
    "/team/key/bulk_update", *_TEAM_DAILY, "/spend/logs", "/spend/logs/v2", "/key/{key_id}/reset_spend",
    "/key/aliases", "/key/access_group_assignment", "/auto_router/manage",
)
MANAGEMENT = (
    "/user/new", "/management/v1/users/bulk", "/user/update", "/user/bulk_update", "/user/delete",
    "/management/v1/users/bulk_delete", "/user/info", "/user/list",
    *(f"/user/daily/activity{t}" for t in ("", "/aggregated", "/aggregated/keys", "/aggregated/search",
                                           "/aggregated/model_top_keys", "/export",
                                           "/aggregated/cache_leakage_keys", "/aggregated/users")),
    "/team/new", "/team/update", "/team/{team_id}", "/team/delete", "/team/list", "/v2/team/list", "/team/info",
    "/team/block", "/team/unblock", "/team/available", "/team/metadata_schema", "/team/permissions_list",
    "/team/permissions_update", "/team/permissions_bulk_update", *_TEAM_DAILY, "/team/spend/by_user",
    "/gateway/daily/activity", "/subscription_accounts/usage", "/subscription_accounts/new",
    "/subscription_accounts/update", "/subscription_accounts/delete",
    "/model/new", "/model/update", "/model/delete", "/model/info", "/model/{model_id}/kubernetes_pods",
    *(f"/jwt/key/mapping/{op}" for op in ("new", "update", "delete", "list", "info")),
    *KEY_MANAGEMENT, *MCP_MANAGEMENT, *AGENT_MANAGEMENT, *SKILL_HUB,
)
SPEND_TRACKING = (
    "/spend/keys", "/spend/users", "/spend/tags", "/spend/calculate", "/spend/logs", "/spend/logs/v2",
    "/spend/logs/ui", "/spend/logs/ui/{request_id}", "/spend/logs/session/ui", "/key/spend/report",
    "/user/spend/report", "/team/spend/report", "/organization/spend/report", "/management/v1/spend_logs/end_users",
    "/management/v1/spend_logs/users", "/cost/estimate",
)
GLOBAL_SPEND_TRACKING = (
    "/global/spend/logs", "/global/spend", "/global/spend/keys", "/global/spend/teams", "/global/spend/end_users",
    "/global/spend/models", "/global/predict/spend/logs", "/global/spend/report", "/global/spend/provider",
    "/global/spend/tags", "/global/spend/all_tag_names", "/spend/capture_rate",
)
PUBLIC = (
    "/routes", "/", "/health/liveliness", "/health/liveness", "/test", "/config/yaml",
    "/litellm/.well-known/litellm-ui-config", "/.well-known/litellm-ui-config", "/public/model_hub",
    "/public/v1/model_hub", "/public/v1/model_hub/providers", "/public/v1/model_hub/modes",
    "/public/v1/model_hub/features", "/public/model_hub/info", "/public/agent_hub", "/public/mcp_hub",
    "/public/skill_hub", "/public/litellm_model_cost_map", "/moyai/connect/exchange",
)
UI = (
    "/sso", "/sso/get/ui_settings", "/get/ui_settings", "/login", "/key/info", "/config", "/spend", "/model/info",
    "/v2/model/info", "/v2/key/info", *MODEL_LIST, "/global/spend", "/global/spend/logs", "/global/spend/keys",
    "/global/spend/models", "/global/spend/tags", "/global/predict/spend/logs", "/global/activity",
    "/gateway/daily/activity", "/health/services", *INFO,
)

GROUPS: dict[str, tuple[str, ...]] = {
    "openai_routes": OPENAI,
    "mapped_pass_through_routes": MAPPED_PASS_THROUGH,
    "passthrough_routes_wildcard": tuple(f"{r}/*" for r in MAPPED_PASS_THROUGH),
    "trace_telemetry_routes": TRACE_TELEMETRY,
    "skill_hub_routes": SKILL_HUB,
    "litellm_native_routes": NATIVE,
    "anthropic_routes": ANTHROPIC,
    "mcp_inference_routes": MCP_INFERENCE,
    "mcp_management_routes": MCP_MANAGEMENT,
    "mcp_routes": MCP_INFERENCE + MCP_MANAGEMENT,
    "agent_inference_routes": AGENT_INFERENCE,
    "agent_management_routes": AGENT_MANAGEMENT,
    "agent_routes": AGENT_INFERENCE + AGENT_MANAGEMENT,
    "google_routes": GOOGLE,
    "apply_guardrail_routes": GUARDRAIL,
    "model_info_routes": MODEL_INFO,
    "llm_api_routes": (OPENAI + ANTHROPIC + GOOGLE + MAPPED_PASS_THROUGH
                       + tuple(f"{r}/*" for r in MAPPED_PASS_THROUGH) + GUARDRAIL + MCP_INFERENCE + NATIVE
                       + AGENT_INFERENCE + MODEL_INFO),
    "info_routes": INFO,
    "master_key_only_routes": MASTER_KEY_ONLY,
    "key_management_routes": KEY_MANAGEMENT,
    "management_routes": MANAGEMENT,
    "spend_tracking_routes": SPEND_TRACKING,
    "global_spend_tracking_routes": GLOBAL_SPEND_TRACKING,
    "public_routes": PUBLIC,
    "ui_routes": UI,
}
"""LiteLLM's route groups (``LiteLLMRoutes`` members a JWT's allowed-route list may name) -> member templates."""

ADMIN_DEFAULT = ("management_routes", "spend_tracking_routes", "global_spend_tracking_routes", "info_routes")
"""``admin_allowed_routes`` when not set: an admin-scope JWT manages the proxy but calls no LLM route."""
TEAM_DEFAULT = ("openai_routes", "info_routes", "mcp_routes", "/v1/messages", "/v1/messages/count_tokens",
                "/rag/ingest", "/v1/rag/ingest", "/rag/query", "/v1/rag/query")
"""``team_allowed_routes`` when not set: a team JWT calls the LLM routes and reads, and manages nothing."""
TEAM_WHEN_NULL = ("openai_routes", "info_routes")
"""``team_allowed_routes: null``: LiteLLM's fallback for a team (``allowed_routes_check``)."""

_PUBLIC = frozenset(PUBLIC)
"""LiteLLM's public routes (``/routes`` ...): it authenticates nobody there, so no JWT route list applies."""

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")
_MEMO_MAX = 4096


def _template(template: str) -> re.Pattern[str] | str:
    """A Starlette path template as a regex (``{x}`` one segment, ``{x:path}`` anything), or the path itself
    when it has no parameter."""
    if "{" not in template:
        return template
    out, pos = ["^"], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(".*" if m.group(2) == "path" else "[^/]+")
        pos = m.end()
    out.append(re.escape(template[pos:]) + "$")
    return re.compile("".join(out))


def expand(entries: Iterable[str]) -> list[str]:
    """The routes ``entries`` allow, each group replaced by its members (LiteLLM's ``get_actual_routes``)."""
    out: list[str] = []
    for e in entries:
        out.extend(GROUPS.get(e, (e,)))
    return out


class RouteSet:
    """An allowed-route list (group names, literal paths, ``prefix*`` entries), compiled once."""

    __slots__ = ("entries", "literal", "patterns", "prefixes", "memo")

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = tuple(entries)
        literal: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        prefixes: list[str] = []
        for e in self.entries:
            members = GROUPS.get(e)
            if members is None:  # a route of its own: exact, or a prefix when it ends with '*'
                if e.endswith("*"):
                    prefixes.append(e[:-1])
                else:
                    literal.add(e)
                continue
            for template in members:
                compiled = _template(template)
                if isinstance(compiled, str):
                    literal.add(compiled)
                else:
                    patterns.append(compiled)
        self.literal = frozenset(literal)
        self.patterns = tuple(patterns)
        self.prefixes = tuple(prefixes)
        self.memo: dict[str, bool] = {}

    def allows(self, path: str) -> bool:
        """Whether ``path`` (the request's, a trailing slash ignored) is in the set."""
        verdict = self.memo.get(path)
        if verdict is None:
            verdict = self._match(path[:-1] if len(path) > 1 and path.endswith("/") else path)
            memo = self.memo
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[path] = verdict
        return verdict

    def _match(self, path: str) -> bool:
        if path in self.literal:
            return True
        if any(path.startswith(p) for p in self.prefixes):
            return True
        return any(p.match(path) for p in self.patterns)

    def __repr__(self) -> str:
        return f"RouteSet({list(self.entries)!r})"


class JWTAccess:
    """What a JWT principal carries beyond a key (``Principal.jwt``; None for every other principal): the
    routes it may call (None: no JWT route list applies, as for a token that maps to a user only), whose list
    that is (``Admin`` / ``Team``, for the refusal), and its organization and end user claims."""

    __slots__ = ("routes", "holder", "org_id", "end_user_id")

    def __init__(self, routes: RouteSet | None, holder: str, org_id: str | None = None,
                 end_user_id: str | None = None) -> None:
        self.routes = routes
        self.holder = holder
        self.org_id = org_id
        """``org_id_jwt_field``'s organization (checked to exist when the token was mapped); spend is
        attributed to it."""
        self.end_user_id = end_user_id
        """``end_user_id_jwt_field``'s end user: the customer of every request made with the token."""

    def check(self, path: str) -> None:
        """LiteLLM's 401 when ``path`` is outside the token's allowed routes (its public routes excepted)."""
        routes = self.routes
        if routes is not None and not routes.allows(path) and path not in _PUBLIC:
            raise errors.AuthError(
                f"Authentication Error, {self.holder} not allowed to access this route. Route={path}, "
                f"Allowed Routes={expand(routes.entries)}", param="None")

    def admit(self, ex: Any, path: str) -> None:
        """The pipeline's authenticate stage for a JWT principal: the route check, then the token's end user
        as the request's customer (over the body's ``user`` and the customer headers, as LiteLLM's
        ``user_api_key_end_user_id``), refused when that customer is blocked."""
        self.check(path)
        end_user = self.end_user_id
        if end_user is not None:
            ex.over.end_user = end_user
            blocked = ex.rt.principals.blocked_customers
            if blocked and end_user in blocked:
                raise customer_blocked(end_user)

    def __repr__(self) -> str:
        return f"JWTAccess({self.holder}, routes={self.routes!r}, org={self.org_id!r}, end_user={self.end_user_id!r})"
