"""Per-worker metrics in Prometheus text format, cheap enough for the hot path.

Counters are plain dict entries keyed by label tuples; the latency histogram keeps fixed buckets. Each
worker is shared-nothing, so ``/metrics`` reports the worker that answered, labelled with its pid:
scrape through the load balancer several times or use the per-pid series.
"""

from __future__ import annotations

import bisect
import os

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.tokens: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.overhead_sum = 0.0
        self.overhead_count = 0
        self.events: dict[str, int] = {}
        self.pid = os.getpid()

    def observe(self, group: str, dep_id: str, status: int, seconds: float, overhead: float,
                prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        key = (group, dep_id, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(group)
        if hist is None:
            hist = self.latency[group] = [0] * (len(_BUCKETS) + 1)
            self.latency_sum[group] = 0.0
        hist[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.latency_sum[group] += seconds
        self.overhead_sum += overhead
        self.overhead_count += 1
        if prompt_tokens or completion_tokens:
            k1 = (group, "prompt")
            self.tokens[k1] = self.tokens.get(k1, 0) + prompt_tokens
            k2 = (group, "completion")
            self.tokens[k2] = self.tokens.get(k2, 0) + completion_tokens

    def count(self, event: str, n: int = 1) -> None:
        self.events[event] = self.events.get(event, 0) + n

    def render(self) -> bytes:
        pid = self.pid
        out = ["# TYPE relaygate_requests_total counter"]
        for (group, dep, status), n in sorted(self.requests.items()):
            out.append(f'relaygate_requests_total{{model_group="{group}",model_id="{dep}",status="{status}",'
                       f'pid="{pid}"}} {n}')
        out.append("# TYPE relaygate_tokens_total counter")
        for (group, kind), n in sorted(self.tokens.items()):
            out.append(f'relaygate_tokens_total{{model_group="{group}",kind="{kind}",pid="{pid}"}} {n}')
        out.append("# TYPE relaygate_request_duration_seconds histogram")
        for group, hist in sorted(self.latency.items()):
            acc = 0
            for b, n in zip(_BUCKETS, hist):
                acc += n
                out.append(f'relaygate_request_duration_seconds_bucket{{model_group="{group}",le="{b}",'
                           f'pid="{pid}"}} {acc}')
            acc += hist[-1]
            out.append(f'relaygate_request_duration_seconds_bucket{{model_group="{group}",le="+Inf",'
                       f'pid="{pid}"}} {acc}')
            out.append(f'relaygate_request_duration_seconds_sum{{model_group="{group}",pid="{pid}"}} '
                       f'{self.latency_sum[group]:.6f}')
            out.append(f'relaygate_request_duration_seconds_count{{model_group="{group}",pid="{pid}"}} {acc}')
        out.append("# TYPE relaygate_overhead_seconds_sum counter")
        out.append(f'relaygate_overhead_seconds_sum{{pid="{pid}"}} {self.overhead_sum:.6f}')
        out.append(f'relaygate_overhead_seconds_count{{pid="{pid}"}} {self.overhead_count}')
        out.append("# TYPE relaygate_worker_rss_bytes gauge")
        out.append(f'relaygate_worker_rss_bytes{{pid="{pid}"}} {_rss_bytes()}')
        out.append("# TYPE relaygate_events_total counter")
        for event, n in sorted(self.events.items()):
            out.append(f'relaygate_events_total{{event="{event}",pid="{pid}"}} {n}')
        return ("\n".join(out) + "\n").encode()
