"""Logging secrets in a key's or team's ``metadata``: masked in every answer, kept when an edit sends the mask back.

What it owns: the one rule for which callback variables are secret (:func:`is_secret`: a name with ``secret``
in it, or ending in ``api_key``, ``space_key`` or ``webhook_url``), masking them wherever a record's
``metadata`` is answered (:func:`mask_metadata`, applied by ``management.common.record`` to every key, team,
user ... the management API answers), and putting the stored value back where a write sends the mask
(:func:`unmask_metadata`).

The secrets are those of ``metadata.logging[*].callback_vars`` (LiteLLM's per-key and per-team callbacks) and
``metadata.callback_settings.callback_vars`` (its older team shape). They reach whoever may read the record:
a team's every member (``/team/info``, with the team's keys), the admin's viewer, an organization's admin.
LiteLLM masks them only on ``GET /team/{team_id}/callback`` and answers them in clear everywhere else, so a
plain member of a team reads the team admin's Langfuse secret key; relaygate never answers them.

A masked answer edited and sent back must not overwrite the secret with the mask: a write's ``metadata`` whose
secret variable is exactly :data:`MASKED` keeps the value stored for that variable (the logging entry of the
same ``callback_name``, or the stored ``callback_settings``). A mask with no stored value behind it (a new
key, a new callback) is a 400 naming the variable, never a stored ``***REDACTED***`` credential. So is a mask
sent with a changed destination (a host, URL, site or port variable): a writer who could not read the secret
must not send it to a server of its choosing. Sans IO.
"""

from __future__ import annotations

from typing import Any

from relaygate.core.errors import GatewayError

__all__ = ["MASKED", "is_secret", "mask_metadata", "masked_vars", "unmask_metadata"]

MASKED = "***REDACTED***"
"""What a secret callback variable reads as in an answer (the value LiteLLM's team callback route shows)."""


def is_secret(name: str) -> bool:
    """Whether the callback variable ``name`` holds a credential."""
    return "secret" in name or name.endswith(("api_key", "space_key", "webhook_url"))


def masked_vars(values: Any) -> dict[str, Any]:
    """``callback_vars`` with every secret masked (a copy; ``{}`` for anything but a mapping)."""
    return {k: (MASKED if is_secret(str(k)) else v) for k, v in values.items()} if isinstance(values, dict) else {}


def _has_secret(values: Any) -> bool:
    return isinstance(values, dict) and any(is_secret(str(k)) for k in values)


def mask_metadata(meta: Any) -> Any:
    """``meta`` with the secrets of its logging entries and ``callback_settings`` masked: the same object when
    there is none to mask (most records), else a copy (the record itself is never changed)."""
    if not isinstance(meta, dict):
        return meta
    raw_entries, raw_settings = meta.get("logging"), meta.get("callback_settings")
    entries: list[Any] = raw_entries if isinstance(raw_entries, list) else []
    settings: dict[str, Any] = raw_settings if isinstance(raw_settings, dict) else {}
    mask_entries = any(isinstance(e, dict) and _has_secret(e.get("callback_vars")) for e in entries)
    mask_settings = _has_secret(settings.get("callback_vars"))
    if not (mask_entries or mask_settings):
        return meta
    out = dict(meta)
    if mask_entries:
        out["logging"] = [{**e, "callback_vars": masked_vars(e["callback_vars"])}
                          if isinstance(e, dict) and _has_secret(e.get("callback_vars")) else e for e in entries]
    if mask_settings:
        out["callback_settings"] = {**settings, "callback_vars": masked_vars(settings["callback_vars"])}
    return out


def _unmasked(values: Any, stored: Any, where: str) -> Any:
    """``values`` with each :data:`MASKED` secret replaced by ``stored``'s value of that name (400 when none)."""
    if not isinstance(values, dict) or MASKED not in values.values():
        return values
    masked = [n for n, v in values.items() if v == MASKED and is_secret(str(n))]
    if not masked:
        return values
    old: dict[Any, Any] = stored if isinstance(stored, dict) else {}
    out = dict(values)
    for name in masked:
        kept = old.get(name)
        if kept is None or kept == MASKED:
            raise GatewayError(f"{where}.callback_vars.{name} is the mask {MASKED} and nothing is stored for it "
                               "to keep: pass the value itself", status=400, type="bad_request_error",
                               param="metadata")
        out[name] = kept
    moved = [n for n in sorted({*out, *old}, key=str) if _destination(str(n)) and out.get(n) != old.get(n)]
    if moved:  # the kept secret would go to a server the writer chose, who could not read it (it was masked)
        raise GatewayError(f"{where}.callback_vars.{moved[0]} changed while the secret is the mask {MASKED}: a "
                           "stored secret goes only where it went; pass the secret itself with a new destination",
                           status=400, type="bad_request_error", param="metadata")
    return out


def _destination(name: str) -> bool:
    """Whether the callback variable ``name`` says where the callback sends (a host, a URL, a site, a port)."""
    return name.endswith(("host", "url", "site", "port"))


def _name(entry: Any) -> str | None:
    name = entry.get("callback_name") if isinstance(entry, dict) else None
    return name.strip().lower() if isinstance(name, str) else None


def unmask_metadata(meta: Any, stored: Any) -> Any:
    """``meta`` as a write sent it, with every masked secret of its logging entries and ``callback_settings``
    given its value in ``stored`` (the record's current ``metadata``; None for a new record): the stored entry
    of the same callback name and type, else of the same name. A write without the mask is returned as it is."""
    if not isinstance(meta, dict):
        return meta
    old = stored if isinstance(stored, dict) else {}
    out = meta
    entries = meta.get("logging")
    if isinstance(entries, list):
        found: dict[Any, Any] = {}  # (name, type) and name -> the stored entry's variables (the first one)
        old_entries = old.get("logging")
        for e in old_entries if isinstance(old_entries, list) else []:
            name = _name(e)
            if name is not None and isinstance(e.get("callback_vars"), dict):
                found.setdefault((name, e.get("callback_type")), e["callback_vars"])
                found.setdefault(name, e["callback_vars"])
        restored = [{**e, "callback_vars": _unmasked(
                        e["callback_vars"], found.get((_name(e), e.get("callback_type")), found.get(_name(e))),
                        f"metadata.logging[{i}]")}
                    if isinstance(e, dict) and isinstance(e.get("callback_vars"), dict) else e
                    for i, e in enumerate(entries)]
        if restored != entries:
            out = {**out, "logging": restored}
    settings = meta.get("callback_settings")
    if isinstance(settings, dict) and isinstance(settings.get("callback_vars"), dict):
        old_settings = old.get("callback_settings")
        kept = _unmasked(settings["callback_vars"], old_settings.get("callback_vars")
                         if isinstance(old_settings, dict) else None, "metadata.callback_settings")
        if kept is not settings["callback_vars"]:
            out = {**out, "callback_settings": {**settings, "callback_vars": kept}}
    return out
