"""Who may mint virtual keys, and with what: LiteLLM's three ``litellm_settings`` for ``/key/generate``, checked.

- ``default_key_generate_params``: what a new key gets when the request leaves it out (``max_budget``,
  ``budget_duration``, ``duration``, ``tpm_limit``, ``rpm_limit``, ``max_parallel_requests``, ``user_id``,
  ``team_id``; ``models`` when the request sends none or ``[]``, ``metadata`` when none or ``{}``).
- ``upperbound_key_generate_params``: the most a key may get (``max_budget``, ``tpm_limit``, ``rpm_limit``,
  ``max_parallel_requests``, ``budget_duration``, ``duration``): more is a 400 in LiteLLM's words (``max_budget
  is over max limit set in config - user_value=...; max_value=...``), and a new key that names none gets the
  bound (a key without a budget or an expiry is exactly what the bound is there to prevent); an update is
  checked, never filled.
- ``key_generation_settings``: ``team_key_generation`` (``allowed_team_member_roles``, default ``admin`` and
  ``user``; ``required_params``) and ``personal_key_generation`` (``allowed_user_roles``; ``required_params``):
  which callers may mint team or personal keys, and what they must send. The proxy admin is not bound by
  the team rule (LiteLLM's), and is by the personal one when its role is not listed.

All three apply to every caller, the proxy admin included (as LiteLLM applies them). Parsed and checked
when the config loads (:func:`key_policy`: a wrong type or duration is a config error naming the setting),
applied by ``management.keys``. Sans IO.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from relaygate.config.errors import FieldError

DEFAULTABLE = ("max_budget", "user_id", "team_id", "max_parallel_requests", "tpm_limit", "rpm_limit",
               "budget_duration", "duration")
"""Fields ``default_key_generate_params`` fills when a new key's request leaves them out (LiteLLM's list)."""
BOUNDED_NUMBERS = ("max_budget", "max_parallel_requests", "tpm_limit", "rpm_limit")
BOUNDED_DURATIONS = ("budget_duration", "duration")
DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


class KeyPolicyError(FieldError):
    """An invalid key-generation setting: ``field`` is its path."""


class KeyPolicy(msgspec.Struct, frozen=True, kw_only=True):
    defaults: dict[str, Any] = {}
    upper: dict[str, Any] = {}
    team_roles: tuple[str, ...] = ("admin", "user")
    team_required: tuple[str, ...] = ()
    personal_roles: tuple[str, ...] | None = None
    """None: any caller may mint a personal key (within the other rules)."""
    personal_required: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.defaults and not self.upper and self.team_roles == ("admin", "user") and \
            not self.team_required and self.personal_roles is None and not self.personal_required


def seconds(value: str) -> float:
    """A LiteLLM duration in seconds (``-1``: forever); ``ValueError`` for anything else."""
    if value.strip() == "-1":
        return float("inf")
    m = DURATION.match(value)
    if m is None:
        raise ValueError(value)
    return float(int(m.group(1)) * UNIT[m.group(2)])


def _names(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KeyPolicyError(field, "expected a list of names")
    return tuple(value)


def key_policy(defaults: Any, upper: Any, generation: Any) -> KeyPolicy:
    """The three settings (see the module docstring), checked; a :class:`KeyPolicyError` names the field."""
    base = "litellm_settings."
    out: dict[str, Any] = {}
    if defaults is not None:
        if not isinstance(defaults, dict):
            raise KeyPolicyError(base + "default_key_generate_params", "expected a mapping")
        out["defaults"] = dict(defaults)
    if upper is not None:
        if not isinstance(upper, dict):
            raise KeyPolicyError(base + "upperbound_key_generate_params", "expected a mapping")
        for k, v in upper.items():
            field = f"{base}upperbound_key_generate_params.{k}"
            if k in BOUNDED_NUMBERS:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise KeyPolicyError(field, "expected a number >= 0")
            elif k in BOUNDED_DURATIONS:
                try:
                    seconds(str(v))
                except ValueError:
                    raise KeyPolicyError(field, "expected a duration such as 30d, 1h or 1mo") from None
            else:
                raise KeyPolicyError(field, "not a bound LiteLLM applies (one of "
                                     f"{', '.join(BOUNDED_NUMBERS + BOUNDED_DURATIONS)})")
        out["upper"] = dict(upper)
    if generation is not None:
        field = base + "key_generation_settings"
        if not isinstance(generation, dict) or set(generation) - {"team_key_generation", "personal_key_generation"}:
            raise KeyPolicyError(field, "expected team_key_generation and / or personal_key_generation")
        for section, roles, roles_field, required_field in (
                ("team_key_generation", "allowed_team_member_roles", "team_roles", "team_required"),
                ("personal_key_generation", "allowed_user_roles", "personal_roles", "personal_required")):
            part = generation.get(section)
            if part is None:
                continue
            where = f"{field}.{section}"
            if not isinstance(part, dict):
                raise KeyPolicyError(where, "expected a mapping")
            if roles in part:
                out[roles_field] = _names(part[roles], f"{where}.{roles}")
            if "required_params" in part:
                out[required_field] = _names(part["required_params"], f"{where}.required_params")
    return KeyPolicy(**out)


__all__ = ["BOUNDED_DURATIONS", "BOUNDED_NUMBERS", "DEFAULTABLE", "KeyPolicy", "KeyPolicyError", "key_policy",
           "seconds"]
