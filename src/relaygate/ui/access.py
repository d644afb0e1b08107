"""Who may use the admin UI: LiteLLM's ``general_settings.ui_access_mode`` (checked when the config loads:
``core.access.check_ui_access_mode``) and ``DISABLE_ADMIN_UI``.

- ``ui_access_mode: admin_only``: only proxy admins (``proxy_admin``, ``proxy_admin_viewer``) sign in, by
  password or single sign-on; a signed-in session whose user is no longer one stops working (its role is
  read again within the session cache's TTL). ``all`` (the default): every user may.
- ``ui_access_mode: {type: restricted_sso_group, restricted_sso_group: <group>, sso_group_jwt_field:
  groups}``: single sign-on admits only users whose ID token (or userinfo) lists the group.
- ``DISABLE_ADMIN_UI=True``: no UI at all — its pages, sign-in and sessions answer 403, as if it was not
  there (keys and the management API keep working).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ADMIN_ROLES", "DISABLED", "disabled", "group_refusal", "role_refusal"]

ADMIN_ROLES = frozenset({"proxy_admin", "proxy_admin_viewer"})
DISABLED = "The admin UI is disabled on this proxy (DISABLE_ADMIN_UI)."


def disabled() -> bool:
    return os.environ.get("DISABLE_ADMIN_UI", "").strip().lower() in ("1", "true", "yes")


def role_refusal(general: Any, role: str) -> str | None:
    """Why a user of ``role`` may not use the UI, or None."""
    if general.ui_access_mode == "admin_only" and role not in ADMIN_ROLES:
        return "The admin UI is open to proxy admins only on this proxy (ui_access_mode: admin_only)."
    return None


def group_refusal(general: Any, claims: Mapping[str, Any]) -> str | None:
    """Why single sign-on may not admit the user these claims describe (``restricted_sso_group``), or None."""
    mode = general.ui_access_mode
    if not isinstance(mode, dict):
        return None
    value: Any = claims
    for part in str(mode.get("sso_group_jwt_field") or "groups").split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    groups = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if mode["restricted_sso_group"] in [str(g) for g in groups]:
        return None
    return "Your account is not in the group allowed to use the admin UI here. Contact your admin."
