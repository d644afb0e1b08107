"""Versioned schema migrations, numbered steps per dialect, applied under a lock.

``rg_schema_version`` holds one row per applied step. :func:`upgrade` takes a lock first (PostgreSQL: a
transaction-level advisory lock, so instances starting together apply each step once; SQLite: ``BEGIN
IMMEDIATE``), reads the version, applies the missing steps and records them, all in that one transaction
(both databases run DDL in transactions), so a failed step leaves the previous version intact. A database
whose version is newer than :data:`LATEST` is refused (:class:`SchemaMismatch`): an older relaygate must
not write a schema it does not know.

Each step's SQL is frozen once released: a change to the schema is a new step, never an edit. Step 1 is
written as column specs rendered per dialect (``t`` text, ``j`` JSON text / JSONB, ``f`` double, ``i``
bigint, ``b`` boolean, ``ts`` timestamp: ISO text in SQLite, ``timestamptz`` in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relaygate.store.daily import bounded_sql
from relaygate.store.errors import SchemaMismatch

ADVISORY_LOCK_ID = 0x7267_6462  # "rgdb": the PostgreSQL advisory lock of schema upgrades

_TYPES = {
    "sqlite": {"t": "TEXT", "j": "TEXT", "f": "REAL", "i": "INTEGER", "b": "INTEGER NOT NULL DEFAULT 0",
               "ts": "TEXT"},
    "postgres": {"t": "TEXT", "j": "JSONB", "f": "DOUBLE PRECISION", "i": "BIGINT",
                 "b": "BOOLEAN NOT NULL DEFAULT FALSE", "ts": "TIMESTAMPTZ"},
}

_AUDIT = "created_at:ts created_by:t updated_at:ts updated_by:t"
_V1_TABLES: dict[str, tuple[str, str]] = {
    # table: (columns, primary key)
    "rg_budgets": ("budget_id:t max_budget:f soft_budget:f max_parallel_requests:i tpm_limit:i rpm_limit:i "
                   f"model_max_budget:j budget_duration:t budget_reset_at:ts {_AUDIT}", "budget_id"),
    "rg_organizations": ("organization_id:t organization_alias:t budget_id:t metadata:j models:j spend:f "
                         f"model_spend:j {_AUDIT}", "organization_id"),
    "rg_organization_members": ("organization_id:t user_id:t user_role:t user_email:t spend:f budget_id:t "
                                "created_at:ts updated_at:ts", "organization_id, user_id"),
    "rg_teams": ("team_id:t team_alias:t organization_id:t admins:j members:j members_with_roles:j metadata:j "
                 "models:j blocked:b spend:f max_budget:f soft_budget:f budget_duration:t budget_reset_at:ts "
                 "model_max_budget:j model_spend:j max_parallel_requests:i tpm_limit:i rpm_limit:i "
                 "model_tpm_limit:j model_rpm_limit:j model_aliases:j router_settings:j "
                 f"team_member_permissions:j {_AUDIT}", "team_id"),
    "rg_team_members": ("team_id:t user_id:t role:t user_email:t spend:f budget_id:t created_at:ts updated_at:ts",
                        "team_id, user_id"),
    "rg_users": ("user_id:t user_alias:t user_email:t user_role:t team_id:t organization_id:t teams:j models:j "
                 "metadata:j blocked:b spend:f max_budget:f soft_budget:f budget_duration:t budget_reset_at:ts "
                 "model_max_budget:j model_spend:j max_parallel_requests:i tpm_limit:i rpm_limit:i "
                 "allowed_cache_controls:j created_at:ts updated_at:ts", "user_id"),
    "rg_customers": ("user_id:t alias:t blocked:b spend:f budget_id:t allowed_model_region:t default_model:t "
                     "metadata:j created_at:ts updated_at:ts", "user_id"),
    "rg_keys": ("token:t key_name:t key_alias:t expires:ts models:j aliases:j config:j user_id:t team_id:t "
                "organization_id:t budget_id:t metadata:j tags:j permissions:j blocked:b spend:f max_budget:f "
                "soft_budget:f budget_duration:t budget_reset_at:ts model_max_budget:j model_spend:j "
                "max_parallel_requests:i tpm_limit:i rpm_limit:i model_tpm_limit:j model_rpm_limit:j "
                f"allowed_cache_controls:j allowed_routes:j router_settings:j {_AUDIT}", "token"),
    "rg_models": (f"model_id:t model_name:t litellm_params:j model_info:j blocked:b {_AUDIT}", "model_id"),
}
_V1_INDEXES = (
    "CREATE UNIQUE INDEX rg_keys__key_alias__uniq ON rg_keys (key_alias)",
    "CREATE INDEX rg_keys__team_id ON rg_keys (team_id)",
    "CREATE INDEX rg_keys__user_id ON rg_keys (user_id)",
    "CREATE INDEX rg_keys__organization_id ON rg_keys (organization_id)",
    "CREATE UNIQUE INDEX rg_teams__team_alias__uniq ON rg_teams (team_alias)",
    "CREATE INDEX rg_teams__organization_id ON rg_teams (organization_id)",
    "CREATE INDEX rg_team_members__user_id ON rg_team_members (user_id)",
    "CREATE INDEX rg_organization_members__user_id ON rg_organization_members (user_id)",
    "CREATE INDEX rg_users__team_id ON rg_users (team_id)",
    "CREATE INDEX rg_models__model_name ON rg_models (model_name)",
)


def _v1(dialect: str) -> list[str]:
    out = _tables(dialect, _V1_TABLES)
    out.extend(_V1_INDEXES)
    big = "INTEGER" if dialect == "sqlite" else "BIGINT"
    out.append(f"CREATE TABLE rg_changes (id INTEGER PRIMARY KEY CHECK (id = 1), version {big} NOT NULL)")
    out.append("INSERT INTO rg_changes (id, version) VALUES (1, 0)")
    return out


_V2_TABLES: dict[str, tuple[str, str]] = {
    # spend logs: one row per request (LiteLLM_SpendLogs; ``user`` is ``user_id``, camelCase times snake_case)
    "rg_spend_logs": ("request_id:t call_type:t api_key:t key_alias:t spend:f spend_nanos:i total_tokens:i "
                      "prompt_tokens:i completion_tokens:i cache_read_tokens:i cache_write_tokens:i start_time:ts "
                      "end_time:ts completion_start_time:ts model:t model_group:t model_id:t custom_llm_provider:t "
                      "user_id:t team_id:t organization_id:t end_user:t request_tags:j status:t status_code:i "
                      "cache_hit:b metadata:j messages:j response:j", "request_id"),
    # spend counters per entity (key, user, team, organization, customer, tag, deployment, global)
    "rg_spend_totals": ("entity_type:t entity_id:t spend_nanos:i prompt_tokens:i completion_tokens:i requests:i "
                        "updated_at:ts", "entity_type, entity_id"),
}
_V2_INDEXES = (
    "CREATE INDEX rg_spend_logs__start_time ON rg_spend_logs (start_time)",
    "CREATE INDEX rg_spend_logs__api_key ON rg_spend_logs (api_key, start_time)",
    "CREATE INDEX rg_spend_logs__user_id ON rg_spend_logs (user_id, start_time)",
    "CREATE INDEX rg_spend_logs__team_id ON rg_spend_logs (team_id, start_time)",
)


def _tables(dialect: str, tables: dict[str, tuple[str, str]]) -> list[str]:
    types = _TYPES[dialect]
    out = []
    for table, (cols, pk) in tables.items():
        defs = []
        for spec in cols.split():
            name, kind = spec.split(":")
            null = " NOT NULL" if name in pk.split(", ") else ""
            defs.append(f"{name} {types[kind]}{null}")
        out.append(f"CREATE TABLE {table} ({', '.join(defs)}, PRIMARY KEY ({pk}))")
    return out


def postgres_casts(table: str) -> dict[str, str]:
    """``{column: PostgreSQL type}`` of a table created by these steps (what a text value is cast to), with the
    columns later steps added (:data:`_ADDED`)."""
    types = _TYPES["postgres"]
    for tables in (_V1_TABLES, _V2_TABLES, _V3_TABLES, _V5_TABLES, _V6_TABLES, _V9_TABLES, _V10_TABLES):
        if table in tables:
            specs = [*tables[table][0].split(), *(spec for t, spec in _ADDED if t == table)]
            return {name: types[kind].split(" NOT NULL")[0] for name, kind in (spec.split(":") for spec in specs)}
    raise KeyError(table)


_ADDED = (("rg_spend_logs", "requester_ip_address:t"), ("rg_spend_logs", "proxy_server_request:j"),
          ("rg_keys", "budget_fallbacks:j"))
"""Columns added to a table by ``ALTER TABLE`` (step 11 on): ``(table, name:kind)``."""


def _v11(dialect: str) -> list[str]:
    """Step 11: the client's address in the spend logs (LiteLLM's ``requester_ip_address``)."""
    return [f"ALTER TABLE rg_spend_logs ADD COLUMN requester_ip_address {_TYPES[dialect]['t']}"]


def _v12(dialect: str) -> list[str]:
    """Step 12: the request body in the spend logs (LiteLLM's ``proxy_server_request``, kept only with
    ``store_prompts_in_spend_logs``)."""
    return [f"ALTER TABLE rg_spend_logs ADD COLUMN proxy_server_request {_TYPES[dialect]['j']}"]


def _v13(dialect: str) -> list[str]:
    """Step 13: LiteLLM 1.110's ``budget_fallbacks`` of a key (the models tried when its own budget for the model
    asked for is spent, ``budgets.model_budgets``)."""
    return [f"ALTER TABLE rg_keys ADD COLUMN budget_fallbacks {_TYPES[dialect]['j']}"]


def _v2(dialect: str) -> list[str]:
    """Step 2: spend logs and spend counters (issue 13)."""
    return [*_tables(dialect, _V2_TABLES), *_V2_INDEXES]


_V3_TABLES: dict[str, tuple[str, str]] = {
    # tags as entities (LiteLLM_TagTable): spend, and a budget through budget_id
    "rg_tags": (f"tag_name:t description:t models:j model_info:j spend:f budget_id:t {_AUDIT}", "tag_name"),
}
_V3_INDEXES = (
    "CREATE INDEX rg_tags__budget_id ON rg_tags (budget_id)",
    "CREATE INDEX rg_team_members__budget_id ON rg_team_members (budget_id)",
)


def _v3(dialect: str) -> list[str]:
    """Step 3: tags (issue 13: tag budgets), and the index budget resets use to find a budget's members."""
    return [*_tables(dialect, _V3_TABLES), *_V3_INDEXES]


_V4 = [
    "DROP INDEX rg_spend_logs__api_key",
    "DROP INDEX rg_spend_logs__user_id",
    "DROP INDEX rg_spend_logs__team_id",
    "DROP INDEX rg_spend_logs__start_time",
    "CREATE INDEX rg_spend_logs__time ON rg_spend_logs (start_time, api_key, user_id, team_id)",
]
"""Step 4: step 2's four spend-log indexes become one. ``(api_key, start_time)`` put each row at its key's
place in the index, a random page per row once there are many keys: 18 µs of a SQLite insert's 31 (500
keys, 40k rows). Led by the time, the one index grows at its end; a query for a key, user or team over a
date range scans that range's entries and compares the id inside the index, reading only matching rows.
On a large table the upgrade takes as long as building one index over it."""


_OWNER = "api_key:t team_id:t user_id:t"
"""Who created a stored object: the caller's ``Principal.key_hash`` (SHA-256 of the key, the master key's
too; NULL for an open gateway's anonymous caller), its team and user. Only that key, or another key of that
team, reads or deletes it (issue 14)."""
_V5_TABLES: dict[str, tuple[str, str]] = {
    # Responses API conversation state (issue 14): one row per stored response; ``input`` holds the items
    # this turn added (the instructions are not carried to the next turn, as OpenAI), ``response`` the
    # response object returned; ``upstream_id`` the id an upstream that stored it gave it
    "rg_responses": (f"response_id:t {_OWNER} model:t deployment_id:t upstream_id:t previous_response_id:t "
                     "status:t background:b input:j response:j created_at:ts updated_at:ts expires_at:ts",
                     "response_id"),
    # files and batches held by an upstream (issue 14): the id given to the client, the upstream's own id and
    # the deployment that holds it, so later calls reach the same deployment; ``kind`` is file or batch
    "rg_files": (f"object_id:t kind:t {_OWNER} upstream_id:t deployment_id:t model:t custom_llm_provider:t "
                 "purpose:t filename:t bytes:i status:t metadata:j created_at:ts updated_at:ts expires_at:ts",
                 "object_id"),
}
_V5_INDEXES = (
    "CREATE INDEX rg_responses__expires_at ON rg_responses (expires_at)",
    "CREATE INDEX rg_files__api_key ON rg_files (api_key, kind, created_at)",
    "CREATE INDEX rg_files__team_id ON rg_files (team_id, kind, created_at)",
    "CREATE INDEX rg_files__expires_at ON rg_files (expires_at)",
)


def _v5(dialect: str) -> list[str]:
    """Step 5: Responses API conversation state, and the files and batches the gateway relayed (issue 14)."""
    return [*_tables(dialect, _V5_TABLES), *_V5_INDEXES]


_V6_TABLES: dict[str, tuple[str, str]] = {
    # the admin UI's sessions (issue 17): the SHA-256 of the cookie's session id, never the id itself
    "rg_ui_sessions": ("session_hash:t user_id:t role:t csrf_token:t via:t bound_to:t created_at:ts "
                       "expires_at:ts last_seen:ts", "session_hash"),
    # users' UI passwords (LiteLLM's ``password`` of /user/new): a salted scrypt hash with its parameters
    "rg_user_passwords": ("user_id:t password_hash:t updated_at:ts", "user_id"),
}
_V6_INDEXES = (
    "CREATE INDEX rg_ui_sessions__expires_at ON rg_ui_sessions (expires_at)",
    "CREATE INDEX rg_ui_sessions__user_id ON rg_ui_sessions (user_id)",
    "CREATE INDEX rg_users__user_email ON rg_users (user_email)",
)


def _v6(dialect: str) -> list[str]:
    """Step 6: the admin UI's sessions and users' passwords (issue 17), and users found by e-mail at sign-in."""
    return [*_tables(dialect, _V6_TABLES), *_V6_INDEXES]


def _v7(dialect: str) -> list[str]:
    """Step 7: a finished batch's cost is logged once (issue 13): ``rg_files.costed_at`` says when a worker
    claimed it (``store.files.claim_cost``)."""
    return [f"ALTER TABLE rg_files ADD COLUMN costed_at {_TYPES[dialect]['ts']}"]


def _v8(dialect: str) -> list[str]:
    """Step 8: LiteLLM 1.110's concurrent budget windows of keys and teams (``budget_limits``, issue 13)."""
    return [f"ALTER TABLE {table} ADD COLUMN budget_limits {_TYPES[dialect]['j']}" for table in ("rg_keys", "rg_teams")]


_V9_TABLES: dict[str, tuple[str, str]] = {
    # settings changed through the API (LiteLLM's LiteLLM_Config rows of its litellm_settings): the JSON of
    # one setting's value per row, over the config file's (``store.settings``)
    "rg_config": ("param_name:t param_value:t updated_at:ts updated_by:t", "param_name"),
}


def _v9(dialect: str) -> list[str]:
    """Step 9: the cost tracking settings the API changes (``PATCH /config/cost_discount_config`` ...)."""
    return _tables(dialect, _V9_TABLES)


_V10_TABLES: dict[str, tuple[str, str]] = {
    # spend per UTC day, entity and what it was spent on (LiteLLM's LiteLLM_DailyUserSpend, DailyTeamSpend,
    # DailyTagSpend, DailyOrganizationSpend and DailyEndUserSpend in one table; ``store.daily``): the daily
    # activity routes read it, so they outlive the spend logs (``disable_spend_logs``, retention)
    "rg_daily_spend": ("day:t entity_type:t entity_id:t api_key:t model_group:t model:t provider:t spend_nanos:i "
                       "prompt_tokens:i completion_tokens:i cache_read_tokens:i cache_write_tokens:i requests:i "
                       "failed:i updated_at:ts",
                       "day, entity_type, entity_id, api_key, model_group, model, provider"),
}
_DAILY_ENTITIES = {"user": "s.user_id", "team": "s.team_id", "organization": "s.organization_id",
                   "customer": "s.end_user", "tag": ""}


def _v10(dialect: str) -> list[str]:
    """Step 10: the daily spend rollup (issue 13), filled from the spend logs already stored (one ``INSERT ...
    SELECT`` per entity kind: on a large table the upgrade takes as long as a scan of it per kind)."""
    if dialect == "sqlite":
        day, now = "substr(s.start_time, 1, 10)", "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')"
        tag_src, tag = "rg_spend_logs s, json_each(s.request_tags) AS tg", "tg.value"
    else:
        day, now = "to_char(s.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')", "now()"
        tag_src, tag = ("rg_spend_logs s CROSS JOIN LATERAL jsonb_array_elements_text(s.request_tags) AS tg(tag)",
                        "tg.tag")
    out = _tables(dialect, _V10_TABLES)
    for kind, col in _DAILY_ENTITIES.items():
        src, raw = (tag_src, tag) if kind == "tag" else ("rg_spend_logs s", col)
        ident = bounded_sql(dialect, raw)  # as the spend writer keys it (an id of kilobytes by its digest)
        out.append(
            "INSERT INTO rg_daily_spend (day, entity_type, entity_id, api_key, model_group, model, provider, "
            "spend_nanos, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, requests, "
            f"failed, updated_at) SELECT {day}, '{kind}', {ident}, COALESCE(s.api_key, ''), "
            "COALESCE(s.model_group, ''), COALESCE(s.model, ''), COALESCE(s.custom_llm_provider, ''), "
            "SUM(COALESCE(s.spend_nanos, 0)), SUM(COALESCE(s.prompt_tokens, 0)), "
            "SUM(COALESCE(s.completion_tokens, 0)), SUM(COALESCE(s.cache_read_tokens, 0)), "
            "SUM(COALESCE(s.cache_write_tokens, 0)), COUNT(*), "
            f"SUM(CASE WHEN s.status = 'failure' THEN 1 ELSE 0 END), {now} FROM {src} "
            f"WHERE {raw} IS NOT NULL AND {raw} <> '' GROUP BY 1, 3, 4, 5, 6, 7")
    return out


_V14_TABLES: dict[str, tuple[str, str]] = {
    # deployment health checks (LiteLLM's LiteLLM_HealthCheckTable): a row per ``/health`` call that named a
    # model, and per deployment of a background round whose status changed or was last written an hour ago
    "rg_health_checks": ("health_check_id:t model_name:t model_id:t status:t healthy_count:i unhealthy_count:i "
                         "error_message:t response_time_ms:f details:j checked_by:t checked_at:ts",
                         "health_check_id"),
}
_V14_INDEXES = (
    "CREATE INDEX rg_health_checks__model ON rg_health_checks (model_name, checked_at)",
    "CREATE INDEX rg_health_checks__checked_at ON rg_health_checks (checked_at)",
)


def _v14(dialect: str) -> list[str]:
    """Step 14: the health check history (``GET /health/history``, ``/health/latest``; issue 16)."""
    return [*_tables(dialect, _V14_TABLES), *_V14_INDEXES]


_V15_TABLES: dict[str, tuple[str, str]] = {
    # reusable provider credentials made through the API (LiteLLM's LiteLLM_CredentialsTable): every string value
    # sealed as stored models' credentials are; a stored model names one with litellm_credential_name
    "rg_credentials": ("credential_name:t display_name:t credential_values:j credential_info:j created_at:ts "
                       "created_by:t updated_at:ts updated_by:t", "credential_name"),
}


def _v15(dialect: str) -> list[str]:
    """Step 15: stored credentials (``/credentials``, ``store.credentials``)."""
    return _tables(dialect, _V15_TABLES)


_V16_TABLES: dict[str, tuple[str, str]] = {
    # regenerated keys kept valid for a grace period (LiteLLM's LiteLLM_DeprecatedVerificationToken): the old
    # key's hash, the key it now stands for, and when it stops working
    "rg_deprecated_keys": ("token:t active_token:t revoke_at:ts created_at:ts", "token"),
}


def _v16(dialect: str) -> list[str]:
    """Step 16: regenerated keys' grace periods (``store.deprecated_keys``)."""
    return [*_tables(dialect, _V16_TABLES),
            "CREATE INDEX rg_deprecated_keys__active ON rg_deprecated_keys (active_token)"]


MIGRATIONS: dict[str, list[list[str]]] = {
    # dialect -> steps; step N (1-based) is MIGRATIONS[dialect][N - 1]
    "sqlite": [_v1("sqlite"), _v2("sqlite"), _v3("sqlite"), _V4, _v5("sqlite"), _v6("sqlite"), _v7("sqlite"),
               _v8("sqlite"), _v9("sqlite"), _v10("sqlite"), _v11("sqlite"), _v12("sqlite"), _v13("sqlite"),
               _v14("sqlite"), _v15("sqlite"), _v16("sqlite")],
    "postgres": [_v1("postgres"), _v2("postgres"), _v3("postgres"), _V4, _v5("postgres"), _v6("postgres"),
                 _v7("postgres"), _v8("postgres"), _v9("postgres"), _v10("postgres"), _v11("postgres"),
                 _v12("postgres"), _v13("postgres"), _v14("postgres"),
                 _v15("postgres"), _v16("postgres")],
}
LATEST = len(MIGRATIONS["sqlite"])
assert all(len(steps) == LATEST for steps in MIGRATIONS.values())

_VERSION_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS rg_schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS rg_schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
}

Execute = Callable[[str, Sequence[Any]], Awaitable[Any]]
Fetch = Callable[[str, Sequence[Any]], Awaitable[list[dict[str, Any]]]]


async def upgrade(dialect: str, execute: Execute, fetch: Fetch) -> tuple[int, int]:
    """Apply the missing steps inside the caller's transaction (already locked: see the module docstring);
    returns (version before, version after)."""
    if dialect == "postgres":
        await execute("SELECT pg_advisory_xact_lock(?)", [ADVISORY_LOCK_ID])
    await execute(_VERSION_TABLE[dialect], [])
    before = await current_version(fetch)
    check_version(before)
    for n in range(before + 1, LATEST + 1):
        for sql in MIGRATIONS[dialect][n - 1]:
            await execute(sql, [])
        if dialect == "sqlite":
            await execute("INSERT INTO rg_schema_version (version, applied_at) VALUES (?, datetime('now'))", [n])
        else:
            await execute("INSERT INTO rg_schema_version (version) VALUES (?)", [n])
    return before, LATEST


async def current_version(fetch: Fetch) -> int:
    rows = await fetch("SELECT MAX(version) AS v FROM rg_schema_version", [])
    return int(rows[0]["v"] or 0) if rows else 0


def check_version(version: int, *, need_latest: bool = False) -> None:
    """Refuse a schema this relaygate does not know (newer), or with ``need_latest`` one not upgraded yet."""
    if version > LATEST:
        raise SchemaMismatch(f"the database schema is at version {version}, newer than this relaygate knows "
                             f"({LATEST}): upgrade relaygate, or use a database of this version")
    if need_latest and version < LATEST:
        raise SchemaMismatch(f"the database schema is at version {version}, this relaygate needs {LATEST}: "
                             "run `relaygate db upgrade`")
