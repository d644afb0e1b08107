"""The access settings' sans-IO pieces: client addresses against LiteLLM's ``allowed_ips`` (addresses and
networks), the request fields ``enforced_params`` names, header names, and ``ui_access_mode``'s shape."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Network", "address", "allowed", "check_ui_access_mode", "field_path", "forwarded_client", "header_name",
           "parse_allowed_ips", "parse_networks", "parse_required_fields"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_ips(entries: Iterable[Any]) -> tuple[frozenset[str], tuple[Network, ...]]:
    """``allowed_ips`` as (single addresses, networks); ``ValueError`` naming the first entry that is
    neither."""
    single: set[str] = set()
    nets: list[Network] = []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, str):
                raise ValueError(entry)
            net = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ValueError(f"allowed_ips[{i}]: {entry!r} is not an IP address or network") from None
        if net.num_addresses == 1:
            single.add(str(net.network_address))
        else:
            nets.append(net)
    return frozenset(single), tuple(nets)


def parse_required_fields(entries: Iterable[Any], setting: str) -> list[str]:
    """``enforced_params``: each ``name`` or ``object.name``; ``ValueError`` naming the first that is not."""
    out = []
    for i, entry in enumerate(entries):
        if not field_path(entry):
            raise ValueError(f"{setting}[{i}]: {entry!r}: expected a field name or object.field")
        out.append(entry)
    return out


def field_path(entry: Any) -> bool:
    """Whether ``entry`` names a request field as ``enforced_params`` does: ``name`` or ``object.name``."""
    return isinstance(entry, str) and all(entry.split(".")) and entry.count(".") <= 1


_ADDRESSES: dict[str, str | None] = {}
"""Addresses seen -> normalised (a client's comes with each of its requests; cleared past 4,096)."""


def parse_networks(entries: Any, setting: str) -> tuple[Network, ...]:
    """Networks (or single addresses) given as a list or a comma-separated string (LiteLLM's
    ``trusted_proxy_ranges``); ``ValueError`` naming ``setting`` and the first entry that is neither."""
    if isinstance(entries, str):
        entries = [e for e in entries.split(",") if e.strip()]
    if not isinstance(entries, list | tuple):
        raise ValueError(f"{setting}: expected a list of addresses or networks")
    nets: list[Network] = []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, str):
                raise ValueError(entry)
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{setting}[{i}]: {entry!r} is not an IP address or network") from None
    return tuple(nets)


def forwarded_client(peer: str | None, hops: bytes, trusted: tuple[Network, ...]) -> str | None:
    """The client behind trusted proxies: when the direct ``peer`` is one of ``trusted``, the right-most
    ``X-Forwarded-For`` hop (``hops``) that is an address and not itself a trusted proxy (LiteLLM's
    ``resolve_client_ip``: a hop a client wrote further left cannot pass for it); else the peer."""
    if peer is None or not allowed(peer, frozenset(), trusted):
        return peer
    for hop in reversed(hops.split(b",")):
        ip = address(hop.decode("latin-1").strip())
        if ip is not None and not allowed(ip, frozenset(), trusted):
            return ip
    return peer


def address(text: str) -> str | None:
    """``text`` as a normalised address (an IPv4-mapped IPv6 address as its IPv4 one), or None; remembered
    (``ipaddress`` costs ~2 µs an address)."""
    if len(text) > 64:  # no address is this long (an IPv6 one with a zone and spaces is under it)
        return None
    found = _ADDRESSES.get(text, False)
    if found is not False:
        return found  # type: ignore[return-value]
    if len(_ADDRESSES) >= 4096:
        _ADDRESSES.clear()
    found = _ADDRESSES[text] = _normalised(text)
    return found


def _normalised(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def allowed(ip: str, single: frozenset[str], networks: tuple[Network, ...]) -> bool:
    """Whether the normalised address ``ip`` (:func:`address`) is one of ``single`` or in one of ``networks``."""
    if ip in single:
        return True
    if not networks:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in networks if net.version == addr.version)


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def header_name(value: Any, setting: str) -> bytes:
    """A configured header name, lower-case, as the ASGI scope spells it; ``ValueError`` naming ``setting``
    when it is not an HTTP token."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value.strip()):
        raise ValueError(f"{setting}: {value!r} is not a header name")
    return value.strip().lower().encode("ascii")


def check_ui_access_mode(mode: Any) -> None:
    """``ValueError`` naming what is wrong with a ``ui_access_mode`` value."""
    if isinstance(mode, str):
        if mode not in ("all", "admin_only"):
            raise ValueError(f"ui_access_mode: expected all, admin_only or a restricted_sso_group object, got {mode!r}")
        return
    if mode.get("type") != "restricted_sso_group" or not isinstance(mode.get("restricted_sso_group"), str) \
            or not mode["restricted_sso_group"]:
        raise ValueError("ui_access_mode: an object needs type: restricted_sso_group and restricted_sso_group: <group>")
    field = mode.get("sso_group_jwt_field", "groups")
    if not isinstance(field, str) or not field:
        raise ValueError("ui_access_mode.sso_group_jwt_field: expected a claim name")
