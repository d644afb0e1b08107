"""``general_settings.request_tag_mappings``: LiteLLM 1.110's W3C ``baggage`` entries that become request tags.

What it owns: the rules (:class:`TagMapping`, checked at load by :func:`check_mappings`: a bad rule stops startup
naming it), reading the request's ``baggage`` headers as LiteLLM reads them (through OpenTelemetry's W3C
propagator) and applying the rules. Built once per snapshot (``Runtime.tag_mapper``); a config without rules
has none, and the pipeline then does nothing for it. Sans IO.

- **Rules**: each maps one baggage key: ``{key: team, value: payments, tag: team:payments}`` that exact value,
  ``{key: tenant, tag_prefix: "tenant:"}`` any value of the key to ``tenant:<value>``; ``header`` is ``baggage``
  (the only one LiteLLM reads).
- **Parsing** (W3C Baggage, as OpenTelemetry's propagator does it): the headers joined with ``,``; each member
  ``key=value`` with its ``;properties`` dropped; key and value percent-decoded (``+`` as a space). A header of
  more than 8,192 bytes yields no values, past 180 members none are read, a member of more than 4,096 bytes,
  one whose key is not a token or whose value has characters baggage does not allow is skipped. A key sent
  twice has no value (LiteLLM's rule: which one would be ambiguous).
- **Matching**: per configured key, the exact rule for the value, else the key's any-value rule (``tag_prefix`` and
  the value). A value that is empty or not printable, or that no rule maps, gives no tag; with ``required`` on
  any rule of the key that request is refused: LiteLLM's 400 ``Missing, invalid or unmapped baggage value for
  <key>``. A mapped tag whose rule says ``require_budgeted_tag`` must be a tag with a budget (``/tag/new`` with
  ``max_budget``), else 400 ``Mapped tag <tag> requires an existing tag budget``; without a database, 503.
- **Where the tags go**: after the client's ``x-litellm-tags`` (the same list), so they route, count for tag
  budgets and land in spend logs and exports as the client's tags do; they come from the operator's rules, so
  ``reject_clientside_metadata_tags`` does not refuse them. A mapped tag longer than a tag may be (256
  characters) gives no tag, as an unusable value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus

import msgspec

from relaygate.core.errors import BadRequest, GatewayError

__all__ = ["TagMapper", "TagMapping", "add_mapped", "check_mappings", "mapped_tags", "no_store"]

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A baggage key: an RFC 7230 token (LiteLLM's rule pattern, W3C Baggage's key)."""
MAX_RULES = 256


class TagMapping(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One rule, with LiteLLM's ``RequestTagMapping`` fields."""

    header: str = "baggage"
    key: str
    value: str | None = None
    tag: str | None = None
    tag_prefix: str | None = None
    required: bool = False
    require_budgeted_tag: bool = False


def check_mappings(rules: tuple[TagMapping, ...]) -> None:
    """What LiteLLM's validation refuses beyond the fields' types: a ValueError naming the rule and field."""
    if len(rules) > MAX_RULES:
        raise ValueError(f"request_tag_mappings: at most {MAX_RULES} mappings")
    for i, rule in enumerate(rules):
        where = f"request_tag_mappings[{i}]"
        if rule.header != "baggage":
            raise ValueError(f"{where}.header: only 'baggage' is supported (LiteLLM's only header)")
        if not TOKEN.fullmatch(rule.key):
            raise ValueError(f"{where}.key: expected a baggage key (letters, digits and !#$%&'*+-.^_`|~)")
        for name in ("value", "tag", "tag_prefix"):
            if getattr(rule, name) == "":
                raise ValueError(f"{where}.{name}: expected a non-empty string")
        if rule.value is not None and (rule.tag is None or rule.tag_prefix is not None):
            raise ValueError(f"{where}: an exact value mapping requires tag and cannot set tag_prefix")
        if rule.value is None and (rule.tag_prefix is None or rule.tag is not None):
            raise ValueError(f"{where}: an any-value mapping requires tag_prefix and cannot set tag")


MAX_HEADER = 8192
MAX_MEMBERS = 180
MAX_MEMBER = 4096
MAX_TAG = 256
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
"""A baggage value as sent (W3C ``baggage-octet``: visible ASCII but ``"``, ``,``, ``;`` and ``\\``)."""


def _members(header: str) -> list[tuple[str, str]]:
    out = []
    for member in header.split(","):
        key, _, value = member.partition(";")[0].partition("=")
        out.append((key.strip(), value.strip()))
    return out


def mapped_tags(header: str, rules: tuple[TagMapping, ...]) -> list[tuple[str, bool]]:
    """(tag, whether its rule requires a budgeted tag) for each configured key the ``baggage`` header maps;
    raises LiteLLM's 400 for a required key without a usable, mapped value."""
    members = _members(header)
    values: dict[str, str] = {}
    if len(header) <= MAX_HEADER:
        for name, raw in members[:MAX_MEMBERS]:
            if len(name) + len(raw) + 1 > MAX_MEMBER or not TOKEN.fullmatch(name) or not _VALUE.fullmatch(raw):
                continue
            values[unquote_plus(name)] = unquote_plus(raw)
    sent = [unquote_plus(key) for key, _ in members]
    out: list[tuple[str, bool]] = []
    for key in dict.fromkeys(rule.key for rule in rules):
        key_rules = [rule for rule in rules if rule.key == key]
        spellings = {key, unquote_plus(key)}
        named = [k for k in sent if k in spellings]
        value = values.get(named[0]) if len(named) == 1 else None
        chosen = next((r for r in key_rules if r.value is not None and r.value == value), None) or next(
            (r for r in key_rules if r.value is None), None)
        tag: str | None = None
        if value and value.isprintable() and chosen is not None:
            tag = chosen.tag if chosen.tag is not None else f"{chosen.tag_prefix}{value}"
        if tag is None or len(tag) > MAX_TAG:
            if any(r.required for r in key_rules):
                raise BadRequest(f"Missing, invalid or unmapped baggage value for {key}")
            continue
        assert chosen is not None
        out.append((tag, chosen.require_budgeted_tag))
    return out


def no_store() -> frozenset[str] | None:
    """The budgeted tags of a gateway without a database: none can be known."""
    return None


class TagMapper:
    """A snapshot's rules; ``budgeted`` answers the tags that have a budget (None: no database to ask)."""

    __slots__ = ("budgeted", "rules")

    def __init__(self, rules: tuple[TagMapping, ...], budgeted: Callable[[], frozenset[str] | None]) -> None:
        self.rules = rules
        self.budgeted = budgeted

    def tags(self, headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
        """The request's mapped tags (maybe none); raises the refusals above."""
        header = ",".join(v.decode("latin-1") for k, v in headers if k == b"baggage")
        found = mapped_tags(header, self.rules)
        need = [tag for tag, budgeted in found if budgeted]
        if need:
            known = self.budgeted()
            if known is None:
                raise GatewayError("Baggage tag mappings require a database to check budgeted tags", status=503,
                                   type="no_db_connection")
            for tag in need:
                if tag not in known:
                    raise BadRequest(f"Mapped tag {tag} requires an existing tag budget")
        return [tag for tag, _ in found]


def add_mapped(mapper: TagMapper, headers: Iterable[tuple[bytes, bytes]], tags: list[str] | None) -> list[str] | None:
    """The request's ``x-litellm-tags`` list with its mapped tags after them (each once)."""
    mapped = mapper.tags(headers)
    if not mapped:
        return tags
    if not tags:
        return list(dict.fromkeys(mapped))
    return list(dict.fromkeys([*tags, *mapped]))
