"""LiteLLM's published Grafana dashboard returns data from relaygate's ``/metrics`` after traffic.

The dashboard (``data/litellm_grafana_dashboard.json``, LiteLLM's "Prod v2") is the thing under test. For
every panel target, a small PromQL reader (:func:`references`) lists the series the expression selects: each
metric name with the labels the query groups by (``by (...)`` of the aggregations around it, ``on (...)``
of binary operators) and its label matchers (``$variables`` match anything). The scrape, parsed as
Prometheus parses the text format (:func:`parse_exposition`), must hold at least one sample of that exact
name carrying every such label and satisfying every matcher, and the name must belong to a family of the
right type (``_total`` to a counter, ``_bucket`` to a histogram, ``_sum`` / ``_count`` to a histogram or
summary).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relaygate.config import from_litellm
from relaygate.config.model import Config
from relaygate.http.admission import Admission
from relaygate.metrics import Metrics
from relaygate.observe.detail import Attempt, Detail
from relaygate.observe.prometheus import LiteLLMMetrics
from relaygate.router import Router
from relaygate.sinks.record import CompletionRecord, Outcome

DASHBOARD = Path(__file__).parent / "data" / "litellm_grafana_dashboard.json"
ALL_METRICS = Path(__file__).parent / "data" / "litellm_all_metrics_dashboard_excerpt.json"

# -- the text format ----------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class Scrape:
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_exposition(text: str) -> Scrape:
    """The text format as Prometheus reads it: ``# TYPE`` lines and samples (name, labels, value)."""
    out = Scrape()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            bits = line.split()
            if len(bits) >= 4 and bits[1] == "TYPE":
                assert bits[2] not in out.types, f"family {bits[2]} declared twice"
                out.types[bits[2]] = bits[3]
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        name, body, value = m.groups()
        labels: dict[str, str] = {}
        if body:
            pos = 0
            while pos < len(body):
                lm = _LABEL.match(body, pos)
                assert lm is not None, f"bad labels in {line!r}"
                assert lm.group(1) not in labels, f"label twice in {line!r}"
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        out.samples.setdefault(name, []).append(labels)
        out.values.setdefault(name, []).append(float(value))
    return out


def family_of(sample: str, types: dict[str, str]) -> tuple[str, str] | None:
    """The family a sample name belongs to, as Prometheus matches suffixes to declared types."""
    for suffix, kinds in (("_total", ("counter",)), ("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                          ("_count", ("histogram", "summary"))):
        if sample.endswith(suffix):
            base = sample[: -len(suffix)]
            if types.get(base) in kinds:
                return base, types[base]
    if sample in types and types[sample] in ("gauge", "untyped"):
        return sample, types[sample]
    return None


# -- a PromQL reader: which series does an expression select? ------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<dur>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?)
  | (?P<id>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}@])
""", re.VERBOSE)
AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                          "count_values", "group", "limitk", "limit_ratio"})
_KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "inf", "nan", "group_left", "group_right"})
_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?")


@dataclass
class Ref:
    metric: str
    labels: set[str]
    """Labels the query groups or matches on: a sample must carry each."""
    matchers: list[tuple[str, str, str]]
    """(label, operator, value) with ``$variables`` left in the value."""


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m is not None, f"cannot read {expr[pos:]!r}"
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def _close(toks: list[tuple[str, str]], i: int, opening: str = "(", closing: str = ")") -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j][1] == opening:
            depth += 1
        elif toks[j][1] == closing:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError("unbalanced brackets")


def _label_list(toks: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """The labels of ``( a, b )`` starting at ``i``; returns them and the index after ``)``."""
    assert toks[i][1] == "(", toks[i:]
    end = _close(toks, i)
    return [t for k, t in toks[i + 1:end] if k in ("id", "str")], end + 1


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[list[tuple[str, str, str]], int]:
    end = _close(toks, i, "{", "}")
    body = [t for t in toks[i + 1:end] if t[1] != ","]
    assert len(body) % 3 == 0, body
    out = []
    for j in range(0, len(body), 3):
        (_, label), (_, op), (kind, value) = body[j:j + 3]
        assert kind == "str", body
        out.append((label, op, json.loads(value) if value[0] == '"' else value[1:-1]))
    return out, end + 1


def references(expr: str) -> list[Ref]:
    """Every series selector of ``expr`` with the labels its aggregations group by and its matchers."""
    toks = _tokens(expr)
    spans: list[tuple[int, int, list[str]]] = []  # token span -> labels required inside it
    refs: list[tuple[int, Ref]] = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "id" and text in AGGREGATIONS and nxt in ("(", "by", "without"):
            if nxt in ("by", "without"):
                grouping, args = _label_list(toks, i + 2)
                end = _close(toks, args)
                spans.append((args, end, grouping if nxt == "by" else []))
            else:
                end = _close(toks, i + 1)
                follow = toks[end + 1][1] if end + 1 < len(toks) else ""
                if follow in ("by", "without"):
                    grouping, _ = _label_list(toks, end + 2)
                    spans.append((i + 1, end, grouping if follow == "by" else []))
            i += 1
        elif kind == "id" and text in ("by", "without"):
            i = _label_list(toks, i + 1)[1]
        elif kind == "id" and text in ("on", "ignoring"):
            labels, next_i = _label_list(toks, i + 1)
            depth, opening = 0, None  # ``on`` binds the operands of its operator: the enclosing bracket group
            for j in range(i - 1, -1, -1):
                if toks[j][1] == ")":
                    depth += 1
                elif toks[j][1] == "(":
                    if depth == 0:
                        opening = j
                        break
                    depth -= 1
            start, end = (0, len(toks) - 1) if opening is None else (opening, _close(toks, opening))
            spans.append((start, end, labels if text == "on" else []))
            i = next_i
        elif kind == "id" and text in ("group_left", "group_right"):
            i += 1
            if i < len(toks) and toks[i][1] == "(":
                i = _label_list(toks, i)[1]
        elif kind == "id" and text == "offset":
            i += 2
        elif kind == "id" and nxt == "(":
            i += 1  # a function
        elif kind == "id" and text not in _KEYWORDS:
            matchers: list[tuple[str, str, str]] = []
            pos = i
            i += 1
            if nxt == "{":
                matchers, i = _matchers(toks, i)
            refs.append((pos, Ref(text, set(), matchers)))
        elif text == "{":  # a selector without a name: {__name__="..."}
            matchers, next_i = _matchers(toks, i)
            names = [v for label, op, v in matchers if label == "__name__" and op == "="]
            assert names, f"selector without a metric name in {expr!r}"
            refs.append((i, Ref(names[0], set(), [m for m in matchers if m[0] != "__name__"])))
            i = next_i
        else:
            i += 1
    for pos, ref in refs:
        for start, end, labels in spans:
            if start <= pos <= end:
                ref.labels.update(labels)
        ref.labels.update(label for label, _op, _v in ref.matchers)
    return [ref for _pos, ref in refs]


def _matches(value: str | None, op: str, pattern: str) -> bool:
    if _VAR.search(pattern):  # a dashboard variable: any value (an = becomes a regex over it)
        if op in ("!=", "!~"):
            return True
        rx = ".*".join(re.escape(p) if op == "=" else p for p in _VAR.split(pattern))
        return value is not None and re.fullmatch(rx, value) is not None
    v = value or ""
    if op == "=":
        return v == pattern
    if op == "!=":
        return v != pattern
    if op == "=~":
        return re.fullmatch(pattern, v) is not None
    return re.fullmatch(pattern, v) is None


def satisfied(ref: Ref, scrape: Scrape) -> str | None:
    """``None`` when the scrape has a sample for ``ref``; else why not."""
    if family_of(ref.metric, scrape.types) is None:
        return f"{ref.metric}: no family of that name and type in the scrape"
    for labels in scrape.samples.get(ref.metric, []):
        if all(labels.get(label) for label in ref.labels) and all(
                _matches(labels.get(label), op, v) for label, op, v in ref.matchers):
            return None
    return f"{ref.metric}: no sample with labels {sorted(ref.labels)} matching {ref.matchers}"


def test_the_reader_on_the_shapes_dashboards_use() -> None:
    [r] = references('histogram_quantile(0.99, sum(rate(litellm_self_latency_bucket{self="self"}[1m])) by (le))')
    assert (r.metric, r.labels, r.matchers) == ("litellm_self_latency_bucket", {"le", "self"}, [("self", "=", "self")])
    [r] = references("sum by (model) (increase(litellm_requests_metric_total[5m]))")
    assert (r.metric, r.labels) == ("litellm_requests_metric_total", {"model"})
    a, b = references("sum(rate(x_sum[$__rate_interval]))/sum(rate(x_count[$__rate_interval]))")
    assert (a.metric, a.labels, b.metric, b.labels) == ("x_sum", set(), "x_count", set())
    a, b = references('(sum by (team) (a_total{team=~"$team"}) / on (team) group_left b) offset 5m')
    assert (a.metric, a.labels, b.metric, b.labels) == ("a_total", {"team"}, "b", {"team"})
    [r] = references("topk(5, sort(litellm_remaining_requests))")
    assert (r.metric, r.labels) == ("litellm_remaining_requests", set())
    [r] = references('sum without (pod) ({__name__="g", model_group!="x"}) > bool 0')
    assert (r.metric, r.labels, r.matchers) == ("g", {"model_group"}, [("model_group", "!=", "x")])
    assert _matches("gpt-4o", "=", "$model") and _matches("gpt-4o", "=~", "gpt-${v}")
    assert not _matches("claude", "=~", "gpt-.*") and _matches("claude", "!~", "gpt-.*")


def test_the_text_reader_and_families() -> None:
    s = parse_exposition('# TYPE a counter\na_total{x="1",y="q\\"z"} 2.0\n# TYPE h histogram\n'
                         'h_bucket{le="+Inf"} 1\nh_sum 0.5\nh_count 1\n# TYPE g gauge\ng 3\n')
    assert s.samples["a_total"] == [{"x": "1", "y": 'q"z'}]
    assert family_of("a_total", s.types) == ("a", "counter")
    assert family_of("h_bucket", s.types) == ("h", "histogram")
    assert family_of("g", s.types) == ("g", "gauge")
    assert family_of("a", s.types) is None  # a counter is only read through its _total samples
    assert family_of("g_total", s.types) is None


# -- realistic traffic ------------------------------------------------------------------------------------------

KEY_A = "a" * 64
KEY_B = "b" * 64


def traffic_config() -> Config:
    return from_litellm({
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": {"model": "mock/echo", "api_base": "https://a.example/v1",
                                                        "rpm": 600, "tpm": 100_000}, "model_info": {"id": "dep-a"}},
            {"model_name": "gpt-4o", "litellm_params": {"model": "mock/echo", "api_base": "https://b.example/v1"},
             "model_info": {"id": "dep-b"}},
            {"model_name": "claude", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "dep-c"}},
        ],
        "router_settings": {"model_group_alias": {"gpt4": "gpt-4o"}},
    }, "cfg.yaml")


def record(i: int, **kw: object) -> CompletionRecord:
    fields: dict[str, object] = dict(
        call_id=f"c{i}", route="chat", stream=False, model="gpt-4o", model_group="gpt-4o", deployment_id="dep-a",
        provider="mock", upstream_model="echo", key_hash=KEY_A, key_alias="alice", team_id="team-1",
        user_id="u1", status=200, outcome=Outcome.OK, prompt_tokens=12, completion_tokens=30,
        cache_read_tokens=0, cache_write_tokens=0, latency=0.8, ttft=None, overhead=0.004, cost=0.0012,
        cache_hit=False, retries=0, fallbacks=0)
    fields.update(kw)
    return CompletionRecord(**fields)  # type: ignore[arg-type]


def detail(*attempts: Attempt, team_alias: str | None = "team-one") -> dict[str, object]:
    return {"observe": Detail("0" * 32, "0" * 16, attempts=list(attempts), team_alias=team_alias)}


def attempt(dep: str, status: int, error_type: str = "") -> Attempt:
    return Attempt(dep, "gpt-4o", "mock", "echo", "", 0.0, 0.1, status, error_type)


LIMITER_HEADERS = [(b"x-ratelimit-remaining-requests", b"7"), (b"x-ratelimit-api_key-limit-requests", b"100"),
                   (b"x-ratelimit-api_key-remaining-requests", b"97"), (b"x-ratelimit-api_key-limit-tokens", b"5000"),
                   (b"x-ratelimit-api_key-remaining-tokens", b"4000"), (b"x-ratelimit-team-limit-requests", b"1000"),
                   (b"x-ratelimit-team-remaining-requests", b"990"), (b"x-ratelimit-team-limit-tokens", b"90000"),
                   (b"x-ratelimit-team-remaining-tokens", b"80000"),
                   (b"x-ratelimit-model_per_key-limit-requests", b"10"),
                   (b"x-ratelimit-model_per_key-remaining-requests", b"7"),
                   (b"x-ratelimit-model_per_key-limit-tokens", b"900"),
                   (b"x-ratelimit-model_per_key-remaining-tokens", b"850")]
"""What a limited key's answer carries (``routing_limits.ratelimit_headers``), as the record keeps it."""


def traffic() -> list[CompletionRecord]:
    return [
        record(0, cache_read_tokens=8, cache_write_tokens=4, cache_miss=True, usage_labels=(6, 3, 2, 0, "default"),
               key_ratelimit=LIMITER_HEADERS, org_id="org-1", org_alias="acme", queue_time=0.002,
               zero_cost=("missing_pricing_key", "echo", ("input_cost_per_token",))),
        record(1, stream=True, ttft=0.15, latency=2.5, extra=detail(attempt("dep-a", 200))),
        record(2, model="gpt4", deployment_id="dep-b", key_hash=KEY_B, key_alias=None, team_id="team-2",
               user_id=None, stream=True, ttft=0.3, latency=4.0, end_user_id="customer-7"),
        record(3, model="claude", model_group="claude", deployment_id="dep-c", key_hash=None, key_alias=None,
               team_id=None, user_id=None, latency=0.05, prompt_tokens=5, completion_tokens=1),
        record(4, status=429, outcome=Outcome.ERROR, error_type="rate_limit_error", prompt_tokens=0,
               completion_tokens=0, cost=0.0),
        record(5, model="no-such-model", model_group="", deployment_id="", status=400, outcome=Outcome.ERROR,
               error_type="invalid_request_error", prompt_tokens=0, completion_tokens=0),
        record(6, key_hash=None, key_alias=None, team_id=None, model_group="", deployment_id="", status=401,
               outcome=Outcome.ERROR, error_type="authentication_error"),
        record(7, deployment_id="dep-b", fallbacks=1, retries=1,
               extra=detail(attempt("dep-a", 503, "service_unavailable"), attempt("dep-b", 200))),
        record(8, deployment_id="dep-b", stream=True, ttft=0.2, status=599, outcome=Outcome.STREAM_BROKEN),
        record(9, status=200, outcome=Outcome.CLIENT_GONE, ttft=None),
        record(10, cache_hit=True, cost=0.0, latency=0.002),
        record(11, deployment_id="dep-c", model_group="claude", status=500, outcome=Outcome.ERROR, fallbacks=1,
               error_type="api_error", extra=detail(attempt("dep-a", 429, "rate_limit_error"),
                                                    attempt("dep-c", 500, "api_error"))),
        record(12, route="images", prompt_tokens=0, completion_tokens=0, usage_labels=(0, 0, 0, 2, None)),
    ]


def scrape_after_traffic() -> tuple[Scrape, str]:
    cfg = traffic_config()
    router = Router(cfg)
    metrics = Metrics.for_config(cfg)
    lite = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments, router=lambda: router)
    metrics.litellm = lite
    lite.handle(traffic())
    metrics.cooldown("dep-a", 429)
    stats = router.by_id["dep-a"][0]
    stats.cooldown_until = router.clock() + 30.0
    stats.inflight = 2
    stats.rpm_left = 590.0
    stats.tpm_left = 99_000.0
    lite.set_budget("team", "team-1", "team-one", 100.0, 12.5, reset_at=4_000_000_000.0)
    lite.set_budget("key", KEY_A, "alice", 10.0, 1.25, reset_at=4_000_000_000.0)
    lite.set_budget("user", "u1", None, 50.0, 3.0, reset_at=4_000_000_000.0)
    lite.set_budget("organization", "org-1", "acme", 200.0, 20.0, reset_at=4_000_000_000.0)
    admission = Admission(4, 2)  # max_in_flight_requests_per_worker: one request served, two refused
    admission.admitted, admission.rejected["queue_full"] = 1, 2
    lite.admission_source = lambda: admission
    text = metrics.render().decode()
    return parse_exposition(text), text


def dashboard_targets(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    board = json.loads(path.read_text())
    out = []

    def walk(panels: list[dict[str, object]]) -> None:
        for p in panels:
            for t in p.get("targets", []) or []:  # type: ignore[attr-defined]
                if t.get("expr"):
                    out.append((str(p.get("title")), t["expr"]))
            walk(p.get("panels", []) or [])  # type: ignore[arg-type]

    walk(board["panels"])
    return out


def test_the_dashboard_fixture_is_read_whole() -> None:
    targets = dashboard_targets()
    assert len(targets) == 8
    assert {r.metric for _t, e in targets for r in references(e)} == {
        "litellm_proxy_total_requests_metric_total", "litellm_proxy_failed_requests_metric_total",
        "litellm_request_total_latency_metric_sum", "litellm_request_total_latency_metric_count",
        "litellm_request_total_latency_metric_bucket", "litellm_remaining_requests", "litellm_remaining_tokens"}


@pytest.mark.parametrize(("title", "expr"), dashboard_targets())
def test_every_dashboard_query_returns_data(title: str, expr: str) -> None:
    scrape, _text = scrape_after_traffic()
    refs = references(expr)
    assert refs, f"{title}: no series in {expr!r}"
    problems = [p for r in refs if (p := satisfied(r, scrape)) is not None]
    assert not problems, f"{title} ({expr!r}): {problems}"


def test_without_traffic_the_request_panels_are_empty() -> None:
    """The check is not vacuous: before any request, the request families have no samples."""
    cfg = traffic_config()
    metrics = Metrics.for_config(cfg)
    metrics.litellm = LiteLLMMetrics(["gpt-4o"], cfg.deployments)
    scrape = parse_exposition(metrics.render().decode())
    missing = [r for _t, e in dashboard_targets() for r in references(e) if satisfied(r, scrape) is not None]
    assert {r.metric for r in missing} >= {"litellm_proxy_total_requests_metric_total",
                                            "litellm_request_total_latency_metric_bucket"}


# -- LiteLLM's "All Prometheus Metrics" dashboard (excerpt) ---------------------------------------------------

NOT_EMITTED = {
    "litellm_overhead_with_guardrails_latency_metric": "no guardrails in relaygate",
    "litellm_video_duration_seconds_metric": "no video generation route",
    "litellm_remaining_customer_budget_metric": "customer budget gauges: a customer's id is the client's user "
                                                "field, never a label value in relaygate",
    "litellm_customer_max_budget_metric": "customer budget gauges (as above)",
}
"""Families the excerpt queries that relaygate does not emit with LiteLLM's labels, and why."""


def _family(sample: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


ALL_TARGETS = dashboard_targets(ALL_METRICS)


def test_the_excerpt_is_read_whole_and_the_exclusions_are_current() -> None:
    assert len(ALL_TARGETS) == 76
    families = {_family(r.metric) for _t, e in ALL_TARGETS for r in references(e)}
    assert set(NOT_EMITTED) <= families
    scrape, _text = scrape_after_traffic()
    assert not set(scrape.types) & set(NOT_EMITTED), "emitted now: take it off NOT_EMITTED"


@pytest.mark.parametrize(("title", "expr"), [
    (t, e) for t, e in ALL_TARGETS if not all(_family(r.metric) in NOT_EMITTED for r in references(e))])
def test_every_query_of_an_emitted_family_returns_data(title: str, expr: str) -> None:
    scrape, _text = scrape_after_traffic()
    problems = [p for r in references(expr) if (p := satisfied(r, scrape)) is not None]
    assert not problems, f"{title} ({expr!r}): {problems}"
