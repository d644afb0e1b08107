"""The management routes' email notifications (``observe.mail``): who a key's or a new user's mail goes to.

What it owns: checking, before anything is written, that a ``send_invite_email: true`` can be honoured (email is
configured, and there is an address to write to: a 400 naming why otherwise, where LiteLLM creates the key or
user and logs the failed mail), and handing the mailer the event once the write succeeded. The mailer queues;
nothing here waits for a mail.

- ``/key/generate`` (and ``/key/service-account/generate``) with ``send_invite_email: true``: the key's user's
  ``user_email`` (LiteLLM's lookup); a key of no user, or of a user without a usable address, is refused.
- ``/key/regenerate``: the key's user's address when it has one (LiteLLM mails every rotation); nothing when the
  key has no user or the user no address (one debug line).
- ``/user/new`` with ``send_invite_email: true``: the new user's ``user_email``, required.

An event turned off through LiteLLM's ``/email/event_settings`` (``PATCH``: ``{"settings": [{"event": "Virtual Key
Created", "enabled": false}, ...]}``; ``GET``; ``POST /email/event_settings/reset``: all on again; proxy admin only,
reading its viewer too) mails nobody, whatever a request asks (one info line): LiteLLM stores these settings and
sends its mails regardless.
"""

from __future__ import annotations

import logging
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.store import Key, NotFound
from relaygate.store.settings import delete_setting, read_settings, write_setting

__all__ = ["add_routes", "invite_address", "key_created", "key_rotated", "user_address", "user_invited"]

log = logging.getLogger("relaygate.management")

_NOT_CONFIGURED = ("send_invite_email: email notifications are not configured (name smtp_email, resend_email or "
                   "sendgrid_email in litellm_settings.callbacks, or email in general_settings.alerting)")


def _mailer(ctx: Ctx) -> Any:
    return getattr(getattr(ctx.gw, "exporters", None), "mailer", None)


def _valid(value: Any) -> bool:
    from relaygate.observe.mail import valid_address

    return valid_address(value)


async def user_address(ctx: Ctx, user_id: str | None) -> str | None:
    """The ``user_email`` of ``user_id`` when the user exists and it is an address a mail may go to."""
    if not user_id:
        return None
    try:
        user = await ctx.store.get_user(user_id)
    except NotFound:
        return None
    return user.user_email if _valid(user.user_email) else None


async def invite_address(ctx: Ctx, sent: Any, user_id: str | None) -> str | None:
    """For a new key: None unless ``sent`` (``send_invite_email``) is true; then the address its mail goes to, or
    the 400 saying why there is none."""
    if sent is not True:
        return None
    if _mailer(ctx) is None:
        raise bad_request(_NOT_CONFIGURED, "send_invite_email")
    if not user_id:
        raise bad_request("send_invite_email: the key belongs to no user (user_id), so there is no address to send "
                          "it to", "send_invite_email")
    to = await user_address(ctx, user_id)
    if to is None:
        raise bad_request(f"send_invite_email: user {user_id!r} has no user_email a mail can be sent to",
                          "send_invite_email")
    return to


def new_user_address(ctx: Ctx, sent: Any, email: Any) -> str | None:
    """For ``/user/new``: None unless ``sent`` is true; then the new user's address, or the 400 saying why not."""
    if sent is not True:
        return None
    if _mailer(ctx) is None:
        raise bad_request(_NOT_CONFIGURED, "send_invite_email")
    if not _valid(email):
        raise bad_request("send_invite_email: the user needs a user_email a mail can be sent to", "user_email")
    return str(email)


async def _on(ctx: Ctx, event: str) -> bool:
    from relaygate.observe.mail import EVENTS, event_enabled

    if await event_enabled(ctx.store, event):
        return True
    log.info("email: %r is turned off (/email/event_settings): no mail", EVENTS[event])
    return False


async def key_created(ctx: Ctx, to: str | None, key: Key, clear: str) -> None:
    mailer = _mailer(ctx)
    if to is not None and mailer is not None and await _on(ctx, "key_created"):
        mailer.key_created(to, clear, key.key_alias, key.max_budget)


async def key_rotated(ctx: Ctx, key: Key, clear: str) -> None:
    """A key was regenerated: its user is told the new value when email is on and the user has an address."""
    mailer = _mailer(ctx)
    if mailer is None or not await _on(ctx, "key_rotated"):
        return
    to = await user_address(ctx, key.user_id)
    if to is None:
        log.debug("email: key %s rotated; its user has no address, no mail", key.key_name)
        return
    mailer.key_rotated(to, clear, key.key_alias, key.max_budget)


async def user_invited(ctx: Ctx, to: str | None) -> None:
    mailer = _mailer(ctx)
    if to is not None and mailer is not None and await _on(ctx, "user_invited"):
        mailer.user_invited(to)


# -- LiteLLM's /email/event_settings ------------------------------------------------------------------------

async def _settings(ctx: Ctx) -> dict[str, bool]:
    from relaygate.observe.mail import EVENT_SETTING, EVENTS

    row = (await read_settings(ctx.store)).get(EVENT_SETTING)
    row = row if isinstance(row, dict) else {}
    return {name: row.get(name) is not False for name in EVENTS.values()}


async def get_event_settings(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return {"settings": [{"event": name, "enabled": on} for name, on in (await _settings(ctx)).items()]}


async def patch_event_settings(ctx: Ctx) -> Any:
    from relaygate.observe.mail import EVENT_SETTING

    admin_only(ctx)
    body = await ctx.json_object("settings")
    items = body.get("settings")
    if not isinstance(items, list) or len(items) > 100:
        raise bad_request("settings must be a list of {event, enabled}", "settings")
    current = await _settings(ctx)
    for i, item in enumerate(items):
        event = item.get("event") if isinstance(item, dict) else None
        enabled = item.get("enabled") if isinstance(item, dict) else None
        if event not in current or not isinstance(enabled, bool):
            raise bad_request(f"settings[{i}]: expected {{\"event\": one of {list(current)}, \"enabled\": true or "
                              "false}", "settings")
        current[event] = enabled
    await write_setting(ctx.store, EVENT_SETTING, current, ctx.caller.user_id)
    return {"message": "Email event settings updated successfully"}


async def reset_event_settings(ctx: Ctx) -> Any:
    from relaygate.observe.mail import EVENT_SETTING

    admin_only(ctx)
    await delete_setting(ctx.store, EVENT_SETTING)
    return {"message": "Email event settings reset to defaults"}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/email/event_settings", get_event_settings)
    route(t, gw, "PATCH", "/email/event_settings", patch_event_settings)
    route(t, gw, "POST", "/email/event_settings/reset", reset_event_settings)
