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
"""

from __future__ import annotations

import logging
from typing import Any

from relaygate.management.common import Ctx, bad_request
from relaygate.store import Key, NotFound

__all__ = ["invite_address", "key_created", "key_rotated", "user_address", "user_invited"]

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


def key_created(ctx: Ctx, to: str | None, key: Key, clear: str) -> None:
    mailer = _mailer(ctx)
    if to is not None and mailer is not None:
        mailer.key_created(to, clear, key.key_alias, key.max_budget)


async def key_rotated(ctx: Ctx, key: Key, clear: str) -> None:
    """A key was regenerated: its user is told the new value when email is on and the user has an address."""
    mailer = _mailer(ctx)
    if mailer is None:
        return
    to = await user_address(ctx, key.user_id)
    if to is None:
        log.debug("email: key %s rotated; its user has no address, no mail", key.key_name)
        return
    mailer.key_rotated(to, clear, key.key_alias, key.max_budget)


def user_invited(ctx: Ctx, to: str | None) -> None:
    mailer = _mailer(ctx)
    if to is not None and mailer is not None:
        mailer.user_invited(to)
