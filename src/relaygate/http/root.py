"""``SERVER_ROOT_PATH``: LiteLLM serves its routes under a path prefix an ingress does not strip, and at the root
alike; the gateway routes the path with the prefix taken off (:func:`under_root`)."""

from __future__ import annotations

from relaygate.http.types import Scope

__all__ = ["root_path", "under_root"]


def root_path(value: str | None) -> str:
    """``SERVER_ROOT_PATH`` as a prefix to strip: ``/api/v1`` (a leading slash, none at the end); "" for none."""
    text = (value or "").strip().strip("/")
    return "/" + text if text else ""


def under_root(scope: Scope, root: str) -> tuple[Scope, str]:
    """``scope`` with ``root`` taken off its path (when the path is ``root`` or below it: ``/api/v1x`` is not),
    and the path routed; LiteLLM serves its routes under ``SERVER_ROOT_PATH`` (a path prefix an ingress does
    not strip) and at the root alike."""
    path: str = scope["path"]
    if len(path) > len(root) and path[len(root)] != "/":
        return scope, path
    inner = path[len(root):] or "/"
    scope = dict(scope)
    scope["path"] = inner
    scope["root_path"] = scope.get("root_path", "") + root
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(root.encode()):
        scope["raw_path"] = raw[len(root):] or b"/"
    return scope, inner
