"""Every management route x every role (LiteLLM's rules): the proxy admin (master key), proxy_admin_viewer,
internal_user (its own objects), an internal user that is a team ``admin``, internal_user_viewer.

Each row of :data:`CASES` builds a fresh target with the master key (so one case never changes another's),
makes the call as the role's own key and expects the status in :data:`ROLES` order; a refused call must
leave nothing written (checked through the store's change counter).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relaygate.store import hash_token
from tests.management.conftest import MASTER, Env, run

ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "team_admin", "internal_user_viewer")
#: the user each role calls as (the master key has none)
USER_OF = {"proxy_admin_viewer": "viewer", "internal_user": "alice", "team_admin": "tadmin",
           "internal_user_viewer": "ivy"}
_n = itertools.count()

Call = tuple[str, str, dict[str, Any] | None]


class World:
    def __init__(self, env: Env, role: str) -> None:
        self.env = env
        self.role = role
        self.keys: dict[str, str] = {}

    @property
    def me(self) -> str:
        return USER_OF.get(self.role, "other")

    async def key(self, user: str, **fields: Any) -> str:
        return str((await self.env.ok("POST", "/key/generate", {"user_id": user, **fields}))["key"])

    async def own(self) -> str:
        return await self.key(self.me)

    async def others(self) -> str:
        return await self.key("other")

    async def team_key(self) -> str:
        return await self.key("tuser", team_id="tm")


async def world(env: Env, role: str) -> World:
    w = World(env, role)
    await env.ok("POST", "/team/new", {"team_id": "tm", "models": ["gpt-a", "gpt-b"], "max_budget": 100,
                                       "members_with_roles": [{"role": "admin", "user_id": "tadmin"},
                                                              {"role": "user", "user_id": "tuser"}]})
    for user, user_role in (("viewer", "proxy_admin_viewer"), ("alice", "internal_user"),
                            ("ivy", "internal_user_viewer"), ("other", "internal_user")):
        await env.ok("POST", "/user/new", {"user_id": user, "user_role": user_role, "models": ["gpt-a", "gpt-b"],
                                           "auto_create_key": False})
    for user in USER_OF.values():
        w.keys[user] = await w.key(user)
    return w


def fresh() -> str:
    return f"x{next(_n)}"


Case = Callable[[World], Awaitable[Call]]


async def _gen_self(w: World) -> Call:
    return "POST", "/key/generate", {}


async def _gen_other(w: World) -> Call:
    return "POST", "/key/generate", {"user_id": "other"}


async def _gen_team(w: World) -> Call:
    return "POST", "/key/generate", {"team_id": "tm", "user_id": "tuser"}


async def _update_own(w: World) -> Call:
    return "POST", "/key/update", {"key": await w.own(), "metadata": {"a": 1}}


async def _update_other(w: World) -> Call:
    return "POST", "/key/update", {"key": await w.others(), "metadata": {"a": 1}}


async def _update_team(w: World) -> Call:
    return "POST", "/key/update", {"key": await w.team_key(), "metadata": {"a": 1}}


async def _info_own(w: World) -> Call:
    return "GET", f"/key/info?key={await w.own()}", None


async def _info_other(w: World) -> Call:
    return "GET", f"/key/info?key={hash_token(await w.others())}", None


async def _info_team(w: World) -> Call:
    return "GET", f"/key/info?key={await w.team_key()}", None


async def _list(w: World) -> Call:
    return "GET", "/key/list", None


async def _list_other(w: World) -> Call:
    return "GET", "/key/list?user_id=other", None


async def _list_team(w: World) -> Call:
    return "GET", "/key/list?team_id=tm", None


async def _delete_own(w: World) -> Call:
    return "POST", "/key/delete", {"keys": [await w.own()]}


async def _delete_other(w: World) -> Call:
    return "POST", "/key/delete", {"keys": [await w.others()]}


async def _delete_team(w: World) -> Call:
    alias = fresh()
    await w.key("tuser", team_id="tm", key_alias=alias)
    return "POST", "/key/delete", {"key_aliases": [alias]}


async def _regen_own(w: World) -> Call:
    return "POST", "/key/regenerate", {"key": await w.own()}


async def _regen_other(w: World) -> Call:
    return "POST", f"/key/{await w.others()}/regenerate", {}


async def _regen_team(w: World) -> Call:
    return "POST", f"/key/{await w.team_key()}/regenerate", {}


async def _block_own(w: World) -> Call:
    return "POST", "/key/block", {"key": await w.own()}


async def _block_team(w: World) -> Call:
    return "POST", "/key/block", {"key": await w.team_key()}


async def _unblock_team(w: World) -> Call:
    return "POST", "/key/unblock", {"key": await w.team_key()}


async def _reset_own(w: World) -> Call:
    return "POST", f"/key/{await w.own()}/reset_spend", {"reset_to": 0}


async def _reset_team(w: World) -> Call:
    return "POST", f"/key/{await w.team_key()}/reset_spend", {"reset_to": 0}


async def _aliases(w: World) -> Call:
    return "GET", "/key/aliases?search=x", None


async def _bulk_update(w: World) -> Call:
    return "POST", "/key/bulk_update", {"keys": [{"key": await w.own(), "metadata": {"b": 1}}]}


async def _info_v2(w: World) -> Call:
    return "POST", "/v2/key/info", {"keys": [await w.own(), await w.others()]}


async def _user_bulk(w: World) -> Call:
    return "POST", "/user/bulk_update", {"users": [{"user_id": "other", "metadata": {"n": fresh()}}]}


async def _service_account(w: World) -> Call:
    return "POST", "/key/service-account/generate", {"team_id": "tm"}


async def _global_reset(w: World) -> Call:
    return "POST", "/global/spend/reset", None


async def _health(w: World) -> Call:
    return "POST", "/key/health", None


async def _user_new(w: World) -> Call:
    return "POST", "/user/new", {"user_id": fresh()}


async def _user_info_other(w: World) -> Call:
    return "GET", "/user/info?user_id=other", None


async def _user_info_self(w: World) -> Call:
    return "GET", f"/user/info?user_id={w.me}", None


async def _user_update(w: World) -> Call:
    return "POST", "/user/update", {"user_id": "other", "max_budget": 1}


async def _user_delete(w: World) -> Call:
    user = fresh()
    await w.env.ok("POST", "/user/new", {"user_id": user})
    return "POST", "/user/delete", {"user_ids": [user]}


async def _user_list(w: World) -> Call:
    return "GET", "/user/list", None


async def _team_new(w: World) -> Call:
    return "POST", "/team/new", {"team_id": fresh()}


async def _team_info(w: World) -> Call:
    return "GET", "/team/info?team_id=tm", None


async def _team_update(w: World) -> Call:
    return "POST", "/team/update", {"team_id": "tm", "metadata": {"n": fresh()}}


async def _team_callback_add(w: World) -> Call:
    return "POST", "/team/tm/callback", {"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk"}}


async def _team_callback_get(w: World) -> Call:
    return "GET", "/team/tm/callback", None


async def _team_callback_delete(w: World) -> Call:
    await w.env.ok("POST", "/team/tm/callback", {"callback_name": "otel", "callback_vars": {}})
    return "DELETE", "/team/tm/callback/otel", None


async def _team_disable_logging(w: World) -> Call:
    return "POST", "/team/tm/disable_logging", None


async def _team_update_models(w: World) -> Call:
    return "POST", "/team/update", {"team_id": "tm", "models": ["gpt-a", "gpt-b", "gpt-c"]}


async def _team_delete(w: World) -> Call:
    team = fresh()
    await w.env.ok("POST", "/team/new", {"team_id": team})
    return "POST", "/team/delete", {"team_ids": [team]}


async def _team_list(w: World) -> Call:
    return "GET", "/team/list", None


async def _team_block(w: World) -> Call:
    return "POST", "/team/block", {"team_id": "tm"}


async def _team_unblock(w: World) -> Call:
    return "POST", "/team/unblock", {"team_id": "tm"}


async def _member_add(w: World) -> Call:
    return "POST", "/team/member_add", {"team_id": "tm", "member": {"role": "user", "user_id": fresh()}}


async def _member_add_over_budget(w: World) -> Call:
    return "POST", "/team/member_add", {"team_id": "tm", "member": {"user_id": fresh()}, "max_budget_in_team": 500}


async def _member_delete(w: World) -> Call:
    user = fresh()
    await w.env.ok("POST", "/team/member_add", {"team_id": "tm", "member": {"role": "user", "user_id": user}})
    return "POST", "/team/member_delete", {"team_id": "tm", "user_id": user}


async def _member_update(w: World) -> Call:
    return "POST", "/team/member_update", {"team_id": "tm", "user_id": "tuser", "role": "user"}


async def _org(w: World) -> str:
    org = fresh()
    await w.env.ok("POST", "/organization/new", {"organization_id": org, "organization_alias": org})
    await w.env.ok("POST", "/organization/member_add", {"organization_id": org, "member": {"user_id": "other"}})
    return org


async def _org_new(w: World) -> Call:
    return "POST", "/organization/new", {"organization_alias": fresh()}


async def _org_info(w: World) -> Call:
    return "GET", f"/organization/info?organization_id={await _org(w)}", None


async def _org_update(w: World) -> Call:
    return "PATCH", "/organization/update", {"organization_id": await _org(w), "max_budget": 3}


async def _org_delete(w: World) -> Call:
    return "DELETE", "/organization/delete", {"organization_ids": [await _org(w)]}


async def _org_list(w: World) -> Call:
    await _org(w)
    return "GET", "/organization/list", None


async def _org_member_add(w: World) -> Call:
    return "POST", "/organization/member_add", {"organization_id": await _org(w), "member": {"user_id": fresh()}}


async def _org_member_update(w: World) -> Call:
    return "PATCH", "/organization/member_update", {"organization_id": await _org(w), "user_id": "other",
                                                    "role": "internal_user_viewer"}


async def _org_member_delete(w: World) -> Call:
    return "DELETE", "/organization/member_delete", {"organization_id": await _org(w), "user_id": "other"}


async def _customer(w: World) -> str:
    c = fresh()
    await w.env.ok("POST", "/customer/new", {"user_id": c})
    return c


def _customer_cases(prefix: str) -> dict[str, tuple[Case, tuple[int, int, int, int, int]]]:
    async def new(w: World) -> Call:
        return "POST", f"/{prefix}/new", {"user_id": fresh()}

    async def info(w: World) -> Call:
        return "GET", f"/{prefix}/info?end_user_id={await _customer(w)}", None

    async def update(w: World) -> Call:
        return "POST", f"/{prefix}/update", {"user_id": await _customer(w), "alias": "a"}

    async def delete(w: World) -> Call:
        return "POST", f"/{prefix}/delete", {"user_ids": [await _customer(w)]}

    async def list_(w: World) -> Call:
        return "GET", f"/{prefix}/list", None

    async def block(w: World) -> Call:
        return "POST", f"/{prefix}/block", {"user_ids": [await _customer(w)]}

    async def unblock(w: World) -> Call:
        return "POST", f"/{prefix}/unblock", {"user_ids": [await _customer(w)]}

    admin, read = (200, 401, 401, 401, 401), (200, 200, 401, 401, 401)
    return {f"{prefix}/new": (new, admin), f"{prefix}/info": (info, read), f"{prefix}/update": (update, admin),
            f"{prefix}/delete": (delete, admin), f"{prefix}/list": (list_, read), f"{prefix}/block": (block, admin),
            f"{prefix}/unblock": (unblock, admin)}


async def _budget(w: World) -> str:
    return str((await w.env.ok("POST", "/budget/new", {"max_budget": 1}))["budget_id"])


async def _budget_new(w: World) -> Call:
    return "POST", "/budget/new", {"max_budget": 2}


async def _budget_update(w: World) -> Call:
    return "POST", "/budget/update", {"budget_id": await _budget(w), "max_budget": 2}


async def _budget_info(w: World) -> Call:
    return "POST", "/budget/info", {"budgets": [await _budget(w)]}


async def _budget_list(w: World) -> Call:
    return "GET", "/budget/list", None


async def _budget_delete(w: World) -> Call:
    return "POST", "/budget/delete", {"id": await _budget(w)}


_DB_MODEL = {"model_name": "db-m", "litellm_params": {"model": "mock/echo"}}


async def _model(w: World) -> str:
    return str((await w.env.ok("POST", "/model/new", _DB_MODEL))["model_id"])


async def _model_new(w: World) -> Call:
    return "POST", "/model/new", _DB_MODEL


async def _model_update(w: World) -> Call:
    return "POST", "/model/update", {"model_name": "db-n", "model_info": {"id": await _model(w)}}


async def _model_patch(w: World) -> Call:
    return "PATCH", f"/model/{await _model(w)}/update", {"model_name": "db-n"}


async def _model_delete(w: World) -> Call:
    return "POST", "/model/delete", {"id": await _model(w)}


async def _model_block(w: World) -> Call:
    return "POST", "/model/block", {"model_id": await _model(w)}


async def _model_unblock(w: World) -> Call:
    return "POST", "/model/unblock", {"model_id": await _model(w)}


async def _config_field_delete(w: World) -> Call:
    await w.env.ok("POST", "/config/field/update", {"field_name": "model_list_healthy_only", "field_value": True,
                                                    "config_type": "general_settings"})
    return "POST", "/config/field/delete", {"field_name": "model_list_healthy_only", "config_type": "general_settings"}


async def _call(method: str, path: str) -> Call:
    return method, path, None


async def _json(method: str, path: str, body: dict[str, Any]) -> Call:
    return method, path, body


async def _group(w: World) -> str:
    """A fresh access group on a fresh stored model."""
    await _model(w)
    name = f"grp-{next(_n)}"
    await w.env.ok("POST", "/access_group/new", {"access_group": name, "model_names": ["db-m"]})
    return name


async def _group_new(w: World) -> Call:
    await _model(w)
    return "POST", "/access_group/new", {"access_group": f"grp-{next(_n)}", "model_names": ["db-m"]}


async def _group_info(w: World) -> Call:
    return "GET", f"/access_group/{await _group(w)}/info", None


async def _group_update(w: World) -> Call:
    return "PUT", f"/access_group/{await _group(w)}/update", {"model_names": ["db-m"]}


async def _group_delete(w: World) -> Call:
    return "DELETE", f"/access_group/{await _group(w)}/delete", None


async def _member_reset_spend(w: World) -> Call:
    return "POST", "/team/tm/member/tuser/reset_spend", {"reset_to": 0}


async def _member_reset_budget(w: World) -> Call:
    return "POST", "/team/tm/member/tuser/reset_budget", None


async def _members_me(w: World) -> Call:
    return "GET", "/team/tm/members/me", None


async def _spend_by_user(w: World) -> Call:
    return "GET", "/team/spend/by_user?team_ids=tm&start_date=2026-01-01&end_date=2026-01-02", None


_DAYS = "start_date=2026-01-01&end_date=2026-01-02"


async def _org_report(w: World) -> Call:
    return "GET", f"/organization/spend/report?organization_id={await _org(w)}&{_DAYS}", None


#: route case -> expected status for (proxy_admin, proxy_admin_viewer, internal_user, team_admin, internal_user_viewer)
def _team_models(op: str) -> Case:
    async def case(w: World) -> Call:
        return "POST", f"/team/model/{op}", {"team_id": "tm", "models": ["gpt-b"]}

    return case


def _daily(kind: str, extra: str, tail: str = "") -> Case:
    async def case(w: World) -> Call:
        return "GET", f"/{kind}/daily/activity{tail}?start_date=2026-01-01&end_date=2026-01-31{extra}", None

    return case


CASES: dict[str, tuple[Case, tuple[int, int, int, int, int]]] = {
    "key/generate self": (_gen_self, (200, 401, 200, 200, 401)),
    "key/generate for another user": (_gen_other, (200, 401, 403, 403, 401)),
    "key/generate team key": (_gen_team, (200, 401, 400, 200, 401)),
    "key/update own": (_update_own, (200, 401, 200, 200, 401)),
    "key/update another's": (_update_other, (200, 401, 403, 403, 401)),
    "key/update team key": (_update_team, (200, 401, 403, 200, 401)),
    "key/info own": (_info_own, (200, 200, 200, 200, 200)),
    "key/info another's": (_info_other, (200, 200, 403, 403, 403)),
    "key/info team key": (_info_team, (200, 200, 403, 200, 403)),
    "key/list": (_list, (200, 200, 200, 200, 200)),
    "key/list another user's": (_list_other, (200, 200, 403, 403, 403)),
    "key/list team's": (_list_team, (200, 200, 403, 200, 403)),
    "key/delete own": (_delete_own, (200, 401, 200, 200, 401)),
    "key/delete another's": (_delete_other, (200, 401, 403, 403, 401)),
    "key/delete team key by alias": (_delete_team, (200, 401, 403, 200, 401)),
    "key/regenerate own": (_regen_own, (200, 401, 200, 200, 401)),
    "key/{key}/regenerate another's": (_regen_other, (200, 401, 403, 403, 401)),
    "key/{key}/regenerate team key": (_regen_team, (200, 401, 403, 200, 401)),
    "key/block own": (_block_own, (200, 401, 403, 403, 401)),
    "key/block team key": (_block_team, (200, 401, 403, 200, 401)),
    "key/unblock team key": (_unblock_team, (200, 401, 403, 200, 401)),
    "key/health": (_health, (200, 200, 200, 200, 200)),
    "key/{key}/reset_spend own": (_reset_own, (200, 401, 403, 403, 401)),
    "key/{key}/reset_spend team key": (_reset_team, (200, 401, 403, 200, 401)),
    "global/spend/reset": (_global_reset, (200, 401, 401, 401, 401)),
    "key/aliases": (_aliases, (200, 200, 200, 200, 200)),
    "key/service-account/generate": (_service_account, (200, 401, 403, 200, 401)),
    "user/bulk_update": (_user_bulk, (200, 401, 401, 401, 401)),
    "key/bulk_update": (_bulk_update, (200, 403, 403, 403, 403)),
    "v2/key/info": (_info_v2, (200, 200, 200, 200, 200)),
    "user/new": (_user_new, (200, 401, 401, 401, 401)),
    "user/info another": (_user_info_other, (200, 200, 403, 403, 403)),
    "user/info self": (_user_info_self, (200, 200, 200, 200, 200)),
    "user/update": (_user_update, (200, 401, 401, 401, 401)),
    "user/delete": (_user_delete, (200, 401, 401, 401, 401)),
    "user/list": (_user_list, (200, 200, 401, 401, 401)),
    "team/new": (_team_new, (200, 401, 401, 401, 401)),
    "team/info": (_team_info, (200, 200, 403, 200, 403)),
    "team/update": (_team_update, (200, 401, 403, 200, 401)),
    "team/update models": (_team_update_models, (200, 401, 403, 403, 401)),
    "team/{team_id}/callback add": (_team_callback_add, (200, 401, 403, 200, 401)),
    "team/{team_id}/callback get": (_team_callback_get, (200, 200, 403, 200, 401)),
    "team/{team_id}/callback/{callback_name} delete": (_team_callback_delete, (200, 401, 403, 200, 401)),
    "team/{team_id}/disable_logging": (_team_disable_logging, (200, 401, 403, 200, 401)),
    "team/delete": (_team_delete, (200, 401, 401, 401, 401)),
    "team/list": (_team_list, (200, 200, 200, 200, 200)),
    "team/block": (_team_block, (200, 401, 401, 401, 401)),
    "team/unblock": (_team_unblock, (200, 401, 401, 401, 401)),
    "team/member_add": (_member_add, (200, 401, 403, 200, 401)),
    "team/member_add over the team's budget": (_member_add_over_budget, (200, 401, 403, 403, 401)),
    "team/member_delete": (_member_delete, (200, 401, 403, 200, 401)),
    "team/member_update": (_member_update, (200, 401, 403, 200, 401)),
    "team/{team_id}/member/{user_id}/reset_spend": (_member_reset_spend, (200, 401, 403, 200, 401)),
    "team/{team_id}/member/{user_id}/reset_budget": (_member_reset_budget, (200, 401, 403, 200, 401)),
    # the master key has no user to be a member (400); the others are not members of tm but its admin
    "team/{team_id}/members/me": (_members_me, (400, 404, 404, 200, 404)),
    "team/spend/by_user": (_spend_by_user, (200, 200, 403, 200, 403)),
    # LiteLLM 1.110's scoped reports: one's own key, user and key's team; an organization one is org_admin of
    "key/spend/report": (lambda w: _call("GET", f"/key/spend/report?{_DAYS}"), (200, 200, 200, 200, 200)),
    "user/spend/report": (lambda w: _call("GET", f"/user/spend/report?{_DAYS}"), (400, 200, 200, 200, 200)),
    "team/spend/report": (lambda w: _call("GET", f"/team/spend/report?team_id=tm&{_DAYS}"),
                          (200, 200, 403, 403, 403)),
    "organization/spend/report": (_org_report, (200, 200, 403, 403, 403)),
    "organization/new": (_org_new, (200, 401, 401, 401, 401)),
    "organization/info of another organization": (_org_info, (200, 200, 403, 403, 403)),
    "organization/update": (_org_update, (200, 401, 401, 401, 401)),
    "organization/delete": (_org_delete, (200, 401, 401, 401, 401)),
    "organization/list": (_org_list, (200, 200, 200, 200, 200)),
    "organization/member_add (not its org_admin)": (_org_member_add, (200, 401, 403, 403, 401)),
    "organization/member_update (not its org_admin)": (_org_member_update, (200, 401, 403, 403, 401)),
    "organization/member_delete (not its org_admin)": (_org_member_delete, (200, 401, 403, 403, 401)),
    **_customer_cases("customer"),
    **_customer_cases("end_user"),
    "budget/new": (_budget_new, (200, 401, 401, 401, 401)),
    "budget/update": (_budget_update, (200, 401, 401, 401, 401)),
    "budget/info": (_budget_info, (200, 200, 401, 401, 401)),
    "budget/list": (_budget_list, (200, 200, 401, 401, 401)),
    "budget/settings": (lambda w: _call("GET", "/budget/settings?budget_id=nope"), (200, 200, 401, 401, 401)),
    "budget/delete": (_budget_delete, (200, 401, 401, 401, 401)),
    "model/new": (_model_new, (200, 401, 401, 401, 401)),
    "model/update": (_model_update, (200, 401, 401, 401, 401)),
    "model/{model_id}/update": (_model_patch, (200, 401, 401, 401, 401)),
    "model/delete": (_model_delete, (200, 401, 401, 401, 401)),
    "model/block": (_model_block, (200, 401, 401, 401, 401)),
    "v2/user/info": (lambda w: _call("GET", "/v2/user/info?user_id=tuser"), (200, 200, 404, 200, 404)),
    "team/available": (lambda w: _call("GET", "/team/available"), (200, 200, 200, 200, 200)),
    # the UI's search boxes: users for the admin, its viewer and the admin of the team being filled; teams: one's own
    "user/filter/ui": (lambda w: _call("GET", "/user/filter/ui?team_id=tm&search=o"), (200, 200, 401, 200, 401)),
    "team/filter/ui": (lambda w: _call("GET", "/team/filter/ui?team_alias=x"), (200, 200, 200, 200, 200)),
    "user/available_roles": (lambda w: _call("GET", "/user/available_roles"), (200, 200, 200, 200, 200)),
    "team/permissions_list": (lambda w: _call("GET", "/team/permissions_list?team_id=tm"), (200, 200, 403, 200, 403)),
    "team/permissions_update": (lambda w: _json("POST", "/team/permissions_update", {
        "team_id": "tm", "team_member_permissions": ["/key/generate"]}), (200, 401, 403, 200, 401)),
    "model/unblock": (_model_unblock, (200, 401, 401, 401, 401)),
    "model/cost_map/source": (lambda w: _call("GET", "/model/cost_map/source"), (200, 200, 401, 401, 401)),
    # general settings in the database (management.db_config): the admin writes, its viewer reads
    "config/list": (lambda w: _call("GET", "/config/list?config_type=general_settings"), (200, 200, 401, 401, 401)),
    "config/field/info": (lambda w: _call("GET", "/config/field/info?field_name=master_key"),
                          (200, 200, 401, 401, 401)),
    "config/field/update": (lambda w: _json("POST", "/config/field/update", {
        "field_name": "include_call_id_in_error_body", "field_value": True, "config_type": "general_settings"}),
                            (200, 401, 401, 401, 401)),
    "config/field/delete": (_config_field_delete, (200, 401, 401, 401, 401)),
    "config/update": (lambda w: _json("POST", "/config/update", {"general_settings": {"global_max_parallel_requests": 500}}),
                      (200, 401, 401, 401, 401)),
    **{path: (lambda w, path=path: _call("GET", f"/{path}?_selected_model_group=gpt-a"), (200, 200, 401, 401, 401))
       for path in ("model/metrics", "model/streaming_metrics", "model/metrics/slow_responses",
                    "model/metrics/exceptions")},
    "access_group/new": (_group_new, (200, 401, 401, 401, 401)),
    "access_group/list": (lambda w: _call("GET", "/access_group/list"), (200, 200, 401, 401, 401)),
    "access_group/{access_group}/info": (_group_info, (200, 200, 401, 401, 401)),
    "access_group/{access_group}/update": (_group_update, (200, 401, 401, 401, 401)),
    "access_group/{access_group}/delete": (_group_delete, (200, 401, 401, 401, 401)),
    "team/model/add": (_team_models("add"), (200, 401, 403, 403, 401)),
    "team/model/delete": (_team_models("delete"), (200, 401, 403, 403, 401)),
    "user/daily/activity own": (_daily("user", ""), (200, 200, 200, 200, 200)),
    "user/daily/activity another user's": (_daily("user", "&user_id=other"), (200, 200, 403, 403, 403)),
    "team/daily/activity": (_daily("team", "&team_ids=tm"), (200, 200, 403, 200, 403)),
    "organization/daily/activity": (_daily("organization", ""), (200, 200, 200, 200, 200)),  # its org_admin's
    "organization/daily/activity another org": (_daily("organization", "&organization_ids=other"),
                                                (200, 200, 403, 403, 403)),
    "customer/daily/activity": (_daily("customer", ""), (200, 200, 401, 401, 401)),
    "end_user/daily/activity": (_daily("end_user", ""), (200, 200, 401, 401, 401)),
    "user/daily/activity/aggregated/users": (_daily("user", "", "/aggregated/users"), (200, 200, 200, 200, 200)),
    "user/daily/activity/aggregated/cache_leakage_keys": (_daily("user", "&user_id=other",
                                                                 "/aggregated/cache_leakage_keys"),
                                                          (200, 200, 403, 403, 403)),
}
for _kind, _extra, _want in (("user", "", (200, 200, 200, 200, 200)),
                             ("team", "&team_ids=tm", (200, 200, 403, 200, 403)),
                             ("organization", "", (200, 200, 200, 200, 200)),
                             ("customer", "", (200, 200, 401, 401, 401)), ("end_user", "", (200, 200, 401, 401, 401))):
    for _tail, _more in (("/aggregated", ""), ("/aggregated/keys", ""), ("/aggregated/search", "&search=k"),
                         ("/aggregated/model_top_keys", "&model_group=m"), ("/export", "&format=json")):
        CASES[f"{_kind}/daily/activity{_tail}"] = (_daily(_kind, _extra + _more, _tail), _want)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(db_url: str, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORE_MODEL_IN_DB", "True")  # LiteLLM's switch for /model/new|update|delete
    async def body(env: Env) -> None:
        w = await world(env, role)
        caller = MASTER if role == "proxy_admin" else w.keys[USER_OF[role]]
        failures = []
        for name, (case, expected) in CASES.items():
            method, path, payload = await case(w)
            before = await env.store.change_version()
            r = await env.call(method, path, payload, key=caller)
            want = expected[ROLES.index(role)]
            if r.status != want:
                failures.append(f"{name}: {r.status} != {want}: {r.body[:200]!r}")
            elif want != 200:
                err = r.json()["error"]
                if set(err) != {"message", "type", "param", "code"} or err["code"] != str(want):
                    failures.append(f"{name}: error shape {err}")
                if await env.store.change_version() != before:
                    failures.append(f"{name}: refused but something was written")
        assert not failures, "\n".join(failures)

    run(db_url, body)


def test_matrix_covers_every_route() -> None:
    from tests.management.conftest import make_gateway

    gw = make_gateway()
    paths = set(_management_paths(gw))
    assert len(paths) >= 55
    covered = {name.split(" ")[0].replace("{key}/", "") for name in CASES}
    assert {p.lstrip("/").replace("{key}/", "") for p in paths} <= covered


_MANAGED = ("key", "user", "team", "organization", "customer", "end_user", "budget", "model", "access_group")


def _management_paths(gw: Any) -> list[str]:
    table = gw.routes
    found = []
    for attr in vars(table).values():
        items = attr.items() if isinstance(attr, dict) else (
            [(getattr(p, "path", None), p) for p in attr] if isinstance(attr, list) else [])
        for path, _ in items:
            if isinstance(path, str) and path.split("/")[1] in _MANAGED and path != "/model/info":
                found.append(path)
    return found
