"""Typed records of the store: one msgspec Struct per entity, shaped after LiteLLM's Prisma schema.

The field names are LiteLLM's (``LiteLLM_VerificationToken``, ``LiteLLM_TeamTable`` ...), so the
management API can answer in LiteLLM's shapes by encoding a record. Lists and mappings are JSON columns
(JSON text in SQLite, JSONB in PostgreSQL); timestamps are timezone-aware UTC datetimes. ``created_at`` and
``updated_at`` are set by the store. A key is stored only as ``token``: the SHA-256 hex of the key
(:func:`hash_token`, LiteLLM's ``hashed_token``), with ``key_name`` its display form (:func:`key_name`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


def hash_token(key: str) -> str:
    """LiteLLM's ``hashed_token``: the SHA-256 hex digest of the key as the client sends it."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_name(key: str) -> str:
    """The display form LiteLLM stores as ``key_name``: ``sk-...`` and the key's last four characters."""
    return f"sk-...{key[-4:]}"


class _Spending(msgspec.Struct, kw_only=True):
    """The spend, budget and limit fields keys and teams share (LiteLLM's tables repeat them)."""

    spend: float = 0.0
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    budget_limits: list[dict[str, Any]] = []
    """LiteLLM 1.110's concurrent budget windows: ``[{"budget_duration": "1d", "max_budget": 10.0, "reset_at":
    <first reset>}, ...]`` (``budgets.windows``)."""
    model_max_budget: dict[str, Any] = {}
    model_spend: dict[str, float] = {}
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    model_tpm_limit: dict[str, int] = {}
    model_rpm_limit: dict[str, int] = {}


class Budget(msgspec.Struct, kw_only=True):
    """A reusable budget and limit set (``LiteLLM_BudgetTable``), referenced by ``budget_id``."""

    budget_id: str
    max_budget: float | None = None
    soft_budget: float | None = None
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    model_max_budget: dict[str, Any] = {}
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class Organization(msgspec.Struct, kw_only=True):
    """``LiteLLM_OrganizationTable``: teams and users belong to one; its budget is a :class:`Budget`."""

    organization_id: str
    organization_alias: str | None = None
    budget_id: str | None = None
    metadata: dict[str, Any] = {}
    models: list[str] = []
    spend: float = 0.0
    model_spend: dict[str, float] = {}
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class OrganizationMember(msgspec.Struct, kw_only=True):
    """``LiteLLM_OrganizationMembership``: a user's role (and budget) in an organization."""

    organization_id: str
    user_id: str
    user_role: str | None = None
    user_email: str | None = None
    spend: float = 0.0
    budget_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Team(_Spending, kw_only=True):
    """``LiteLLM_TeamTable``. ``members_with_roles`` mirrors the team's :class:`TeamMember` rows (the store
    keeps both in one transaction) so a team reads as one row."""

    team_id: str
    team_alias: str | None = None
    organization_id: str | None = None
    admins: list[str] = []
    members: list[str] = []
    members_with_roles: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    models: list[str] = []
    blocked: bool = False
    model_aliases: dict[str, str] = {}
    router_settings: dict[str, Any] = {}
    team_member_permissions: list[str] = []
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class TeamMember(msgspec.Struct, kw_only=True):
    """``LiteLLM_TeamMembership`` with the member's role: ``admin`` or ``user`` (LiteLLM's team roles)."""

    team_id: str
    user_id: str
    role: str = "user"
    user_email: str | None = None
    spend: float = 0.0
    budget_id: str | None = None
    """The member's own budget (``max_budget_in_team`` lives in that :class:`Budget`)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class User(msgspec.Struct, kw_only=True):
    """``LiteLLM_UserTable``; ``user_role`` is LiteLLM's: ``proxy_admin``, ``proxy_admin_viewer``,
    ``internal_user``, ``internal_user_viewer``. ``teams`` follows the team memberships."""

    user_id: str
    user_alias: str | None = None
    user_email: str | None = None
    user_role: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    teams: list[str] = []
    models: list[str] = []
    metadata: dict[str, Any] = {}
    blocked: bool = False
    spend: float = 0.0
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    model_max_budget: dict[str, Any] = {}
    model_spend: dict[str, float] = {}
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    allowed_cache_controls: list[str] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UISession(msgspec.Struct, kw_only=True):
    """One admin-UI session (``rg_ui_sessions``, migration step 6): only the SHA-256 of the cookie's session id
    is stored; ``role`` is the role at sign-in (a user's current role is read again from its user row)."""

    session_hash: str
    user_id: str | None = None
    role: str
    csrf_token: str
    via: str
    """``master`` (UI_USERNAME / master key), ``password`` (a user's own password) or ``sso``."""
    bound_to: str | None = None
    """For ``master`` sessions, a fingerprint of the admin password they were signed in with (``UI_PASSWORD``
    or the master key): changing it ends them."""
    created_at: datetime | None = None
    expires_at: datetime
    last_seen: datetime | None = None


class UserPassword(msgspec.Struct, kw_only=True):
    """A user's UI password (``rg_user_passwords``, step 6): a salted scrypt hash with its parameters, kept
    apart from ``rg_users`` so that no answer built from a user row can ever carry it."""

    user_id: str
    password_hash: str
    updated_at: datetime | None = None


class Customer(msgspec.Struct, kw_only=True):
    """An end user (``LiteLLM_EndUserTable``): the ``user`` field of a request or its customer header."""

    user_id: str
    alias: str | None = None
    blocked: bool = False
    spend: float = 0.0
    budget_id: str | None = None
    allowed_model_region: str | None = None
    default_model: str | None = None
    metadata: dict[str, Any] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Key(_Spending, kw_only=True):
    """A virtual key (``LiteLLM_VerificationToken``); ``token`` is the SHA-256 hex of the key, never the key."""

    token: str
    key_name: str | None = None
    key_alias: str | None = None
    expires: datetime | None = None
    models: list[str] = []
    aliases: dict[str, str] = {}
    config: dict[str, Any] = {}
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    budget_id: str | None = None
    metadata: dict[str, Any] = {}
    tags: list[str] = []
    permissions: dict[str, Any] = {}
    blocked: bool = False
    allowed_cache_controls: list[str] = []
    allowed_routes: list[str] = []
    router_settings: dict[str, Any] = {}
    """Per-key router options (fallbacks, num_retries, timeout), as LiteLLM's ``router_settings``."""
    budget_fallbacks: dict[str, list[str]] = {}
    """LiteLLM 1.110's: per model, the models tried in order when the key's own ``model_max_budget`` for it is
    spent (``budgets.model_budgets.within_budget``)."""
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class Tag(msgspec.Struct, kw_only=True):
    """``LiteLLM_TagTable``: a request tag made an entity, with its spend and (through ``budget_id``) a budget.

    ``models`` are the model ids or names the tag is for; ``model_info`` maps a model id to its name."""

    tag_name: str
    description: str | None = None
    models: list[str] = []
    model_info: dict[str, Any] = {}
    spend: float = 0.0
    budget_id: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class ModelRow(msgspec.Struct, kw_only=True):
    """A deployment added by API (``LiteLLM_ProxyModelTable``): one ``model_list`` entry."""

    model_id: str
    model_name: str
    litellm_params: dict[str, Any] = {}
    model_info: dict[str, Any] = {}
    blocked: bool = False
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class Page(msgspec.Struct, Generic[T]):
    """One page of a listing: ``items``, the ``total`` matching rows, the 1-based ``page`` and its size."""

    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.page_size) if self.page_size else 0


class SpendLog(msgspec.Struct, kw_only=True, gc=False):
    """One request's spend row (``LiteLLM_SpendLogs``, successes and failures alike).

    ``spend`` is LiteLLM's float (USD); ``spend_nanos`` the same cost in exact integer nano-USD
    (``round(cost * 1e9)``), which the counters sum. ``api_key`` is the key's SHA-256 hex; ``user_id`` is
    LiteLLM's ``user`` column and ``start_time`` / ``end_time`` its ``startTime`` / ``endTime``."""

    request_id: str
    call_type: str = ""
    api_key: str | None = None
    key_alias: str | None = None
    spend: float = 0.0
    spend_nanos: int = 0
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    completion_start_time: datetime | None = None
    model: str = ""
    model_group: str = ""
    model_id: str = ""
    custom_llm_provider: str = ""
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    request_tags: list[str] = []
    status: str = "success"
    status_code: int = 200
    cache_hit: bool = False
    metadata: dict[str, Any] = {}
    messages: list[Any] = []
    """Empty, as LiteLLM's column outside realtime calls (the request is in :attr:`proxy_server_request`); rows
    imported from LiteLLM keep theirs."""
    response: dict[str, Any] = {}
    """The answer, only with ``store_prompts_in_spend_logs`` (``sinks.prompts``)."""
    requester_ip_address: str | None = None
    """The client's address (LiteLLM's column; none with ``disable_requester_ip_address_logging``)."""
    proxy_server_request: dict[str, Any] = {}
    """The request body, only with ``store_prompts_in_spend_logs`` (credentials masked, long strings cut:
    ``sinks.prompts``)."""
