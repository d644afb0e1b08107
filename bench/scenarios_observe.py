"""What observability costs: each exporter alone, and all of them on, against all off, on one core.

    python -m bench.scenarios_observe [--duration 4] [--concurrency 16] [--repeat 3] [--modes ...] [--together]

A zero-latency mock upstream (``bench.mock``) and a receiver standing in for Langfuse and an OTLP/HTTP
collector (this module run with ``--receiver``: it accepts every batch at once, as a healthy collector
does) run on CPU 1 with the load generator. One one-worker gateway per mode runs on CPU 0, the same model
behind each:

- **off**: no callbacks;
- **langfuse**, **otel**, **prometheus**, **json_logs**: that exporter alone (``callbacks: [name]``; JSON
  request lines go to the gateway's log file);
- **all**: Langfuse + OpenTelemetry + Prometheus + JSON request logs together (the issue's bar: at least 85%
  of **off**'s throughput).

Each round measures every mode with ``bench.load`` (closed loop, CPU 1), alternating the order between
rounds so a noisy neighbour hits all alike, and prints requests/s and the gateway's CPU microseconds per
request (from ``/proc``), then the medians and each mode's share of **off**. It checks at the end that
the receiver got Langfuse events and OTLP spans, so a run whose exporters silently sent nothing is not
reported as cheap. Everything listens on 127.0.0.1 and stops by itself.

``--together`` measures each mode *in a pair with off*, both loaded at the same time on CPU 0 (a pair per
mode per round): the pair shares its seconds, so the machine's drift cancels out of its ratio, and the share
of off is taken from CPU per request (off's CPU / the mode's, one core's throughput at that cost; see
``bench/README.md``). Pairs, not all six at once: an exporter's batching (spans per export, events per
POST) depends on its request rate, and six gateways sharing a core would each run at a sixth of it.

``--baseline DIR`` measures a change: every mode but off also runs from the relaygate tree in ``DIR`` (a
worktree of the commit before it, extensions built: ``git worktree add DIR REV && cd DIR && python setup.py
build_ext --inplace``), as ``<mode>@base``, in the same rounds and paired with off like the others; the end
prints each mode's share against its baseline's, per round and the median difference in points. The same
seconds hold both, so the machine's drift stays out of the comparison (two runs an hour apart differ by more
than most changes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.baseline import BASE, baseline_env, baseline_lines, baseline_problem
from bench.procs import Proc, http_json, launch_mock, spawn, threads_text, wait_http
from bench.scenarios_cache import measure

MASTER = "sk-bench-master"
MODES = ("off", "langfuse", "otel", "prometheus", "json_logs", "all")
EXTRA_MODES = ("prometheus_system", "langfuse_otel", "s3", "langsmith", "arize_phoenix", "datadog_llm_observability",
               "posthog", "aws_sqs", "gcs_bucket", "braintrust", "opik", "openmeter", "helicone",
               "lago", "lunary", "athina", "langtrace", "gcs_pubsub", "azure_storage", "agentops",
               "custom_callbacks")
"""Modes run only when ``--modes`` names them: ``prometheus_system`` is LiteLLM's service families
(``service_callback``), which time each request's stages and its Redis and database calls; ``langfuse_otel``
the OpenTelemetry spans sent to Langfuse's OTLP endpoint (the receiver's ``/api/public/otel/v1/traces``);
``s3`` LiteLLM's S3 logging with ``s3_batch_file_upload`` (one NDJSON object a flush: the receiver takes
every signed ``PUT`` as a bucket would, unverified; an object per request is a ``PUT`` per request, more
than this receiver takes at the gateway's rate); ``langsmith`` runs POSTed to the receiver's
``/api/v1/runs/batch``; ``arize_phoenix`` OpenInference spans to the receiver's ``/v1/traces`` (its gateway alone
gets ``PHOENIX_COLLECTOR_ENDPOINT``: beside ``otel`` that variable would start Phoenix too);
``datadog_llm_observability`` spans to the receiver's LLM Observability intake path; ``posthog`` events to its
``/batch/``; ``aws_sqs`` ``SendMessageBatch`` requests (every message answered as sent, signatures unverified);
``gcs_bucket`` NDJSON objects uploaded with a token from the receiver playing the GCE metadata server;
``braintrust`` inserts (its project looked up at the receiver), ``opik`` trace and span batches, ``openmeter``
CloudEvents batches, ``helicone`` one log POST a request, ``lago`` event batches (charged by the key's user,
``LAGO_API_CHARGE_BY=user_id``: the load carries no ``user``), ``lunary`` ingest batches,
``athina`` one log POST a request, ``langtrace`` OTLP spans to the receiver's ``/api/trace``, ``gcs_pubsub``
Pub/Sub publishes (the receiver as ``PUBSUB_EMULATOR_HOST``), ``azure_storage`` a ``Put Blob`` a request under the
receiver's ``/az/`` (Shared Key signed, unverified), ``agentops`` the ``otel`` spans to the receiver's
``/agentops/v1/traces`` with the token its ``/v3/auth/token`` issues (checked: 401 without it);
``custom_callbacks`` a LiteLLM-style ``CustomLogger`` module beside the config (:data:`CUSTOM_MODULE`: its
``async_log_success_event`` reads the cost, the key's alias and the answer's text, as such a handler does, and
counts the calls into a file the run checks). ``sentry`` has no mode: it sends nothing for answered requests (one
outcome test each)."""
CUSTOM_MODULE = """
import os
COUNT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom-callback-count")
class BenchHandler:
    def __init__(self):
        self.n, self.cost = 0, 0.0
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.n += 1
        self.cost += kwargs["response_cost"] or 0.0
        alias = kwargs["litellm_params"]["metadata"].get("user_api_key_alias")
        text = response_obj.choices[0].message.content if response_obj is not None else None
        if self.n % 500 == 0:
            with open(COUNT, "w") as f:
                f.write(str(self.n))
proxy_handler_instance = BenchHandler()
"""
"""The ``custom_callbacks`` mode's module (written beside the configs)."""
SERVICE_MODES = ("prometheus_system",)
"""Extra modes that are ``service_callback`` names, not ``callbacks``."""
ALL = ("langfuse", "otel", "prometheus", "json_logs")
def mode_names(mode: str) -> tuple[str, ...]:
    """The callbacks a mode's gateway runs (a baseline mode, its own mode's)."""
    base = mode.removesuffix(BASE)
    return () if base == "off" else ALL if base == "all" else (base,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def receiver(port: int) -> None:
    """Accept Langfuse ingestion batches (207, every event a success) and OTLP/HTTP exports (200)."""
    counts = {"langfuse_batches": 0, "langfuse_events": 0, "otlp_requests": 0, "otlp_bytes": 0,
              "langfuse_otel_requests": 0, "s3_objects": 0, "s3_bytes": 0, "langsmith_runs": 0,
              "dd_llm_obs_spans": 0, "posthog_events": 0, "sqs_messages": 0, "gcs_objects": 0,
              "braintrust_events": 0, "opik_traces": 0, "openmeter_events": 0, "helicone_logs": 0,
              "lago_events": 0, "lunary_events": 0, "athina_logs": 0, "langtrace_requests": 0,
              "pubsub_messages": 0, "azure_files": 0, "agentops_requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the head and the body are two writes: without it each answer
        # waited for the client's delayed ACK (~40 ms), and one exporter could send only ~25 batches a second

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/computeMetadata/"):  # gcs_bucket's token (the GCE metadata server)
                token = {"access_token": "ya29.bench", "expires_in": 3600, "token_type": "Bearer"}
                self._send(200, json.dumps(token).encode(), "application/json")
                return
            with lock:
                body = json.dumps(counts).encode()
            self._send(200, body, "application/json")

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path.startswith("/api/public/ingestion"):
                events = json.loads(raw).get("batch") or []
                with lock:
                    counts["langfuse_batches"] += 1
                    counts["langfuse_events"] += len(events)
                ok = [{"id": e.get("id"), "status": 201} for e in events]
                self._send(207, json.dumps({"successes": ok, "errors": []}).encode(), "application/json")
            elif self.path.startswith("/api/v1/runs/batch"):
                runs = json.loads(raw).get("post") or []
                with lock:
                    counts["langsmith_runs"] += len(runs)
                self._send(202, b"{}", "application/json")
            elif self.path.startswith("/api/intake/llm-obs/"):
                spans = json.loads(raw)["data"]["attributes"]["spans"]
                with lock:
                    counts["dd_llm_obs_spans"] += len(spans)
                self._send(202, b"{}", "application/json")
            elif self.path == "/bt/v1/project":  # braintrust's project by name
                self._send(200, b'{"id": "bench-project", "name": "litellm"}', "application/json")
            elif self.path.startswith("/bt/v1/project_logs/"):
                events = json.loads(raw).get("events") or []
                with lock:
                    counts["braintrust_events"] += len(events)
                self._send(200, json.dumps({"row_ids": [e.get("id") for e in events]}).encode(), "application/json")
            elif self.path.startswith("/opik/v1/private/"):
                if self.path.startswith("/opik/v1/private/traces/"):
                    with lock:
                        counts["opik_traces"] += len(json.loads(raw).get("traces") or [])
                self._send(204, b"", "application/json")
            elif self.path == "/api/v1/events":
                with lock:
                    counts["openmeter_events"] += len(json.loads(raw))
                self._send(204, b"", "application/json")
            elif self.path == "/api/v1/events/batch":
                with lock:
                    counts["lago_events"] += len(json.loads(raw).get("events") or [])
                self._send(200, b'{"events": []}', "application/json")
            elif self.path == "/v1/runs/ingest":
                with lock:
                    counts["lunary_events"] += len(json.loads(raw).get("events") or [])
                self._send(200, b"{}", "application/json")
            elif self.path == "/api/v1/log/inference":
                with lock:
                    counts["athina_logs"] += 1
                self._send(200, b"{}", "application/json")
            elif self.path == "/v3/auth/token":  # agentops' token exchange
                self._send(200, b'{"token": "bench.agentops.jwt", "project_id": "bench"}', "application/json")
            elif self.path == "/agentops/v1/traces":
                with lock:
                    counts["agentops_requests"] += 1
                self._send(200 if self.headers.get("authorization") == "Bearer bench.agentops.jwt" else 401, b"",
                           "application/x-protobuf")
            elif self.path == "/api/trace":
                with lock:
                    counts["langtrace_requests"] += 1
                self._send(200, b"", "application/x-protobuf")
            elif self.path.endswith("/v1/log"):
                with lock:
                    counts["helicone_logs"] += 1
                self._send(200, b"{}", "application/json")
            elif self.path.startswith("/batch/"):
                batch = json.loads(raw).get("batch") or []
                with lock:
                    counts["posthog_events"] += len(batch)
                self._send(200, b'{"status": 1}', "application/json")
            elif self.headers.get("x-amz-target") == "AmazonSQS.SendMessageBatch":
                entries = json.loads(raw).get("Entries") or []
                with lock:
                    counts["sqs_messages"] += len(entries)
                ok = [{"Id": e["Id"], "MessageId": e["Id"], "MD5OfMessageBody": hashlib.md5(
                    e["MessageBody"].encode()).hexdigest()} for e in entries]
                self._send(200, json.dumps({"Successful": ok, "Failed": []}).encode(), "application/x-amz-json-1.0")
            elif self.path.startswith("/v1/projects/") and self.path.endswith(":publish"):  # gcs_pubsub
                messages = json.loads(raw).get("messages") or []
                with lock:
                    counts["pubsub_messages"] += len(messages)
                ids = json.dumps({"messageIds": [str(i) for i in range(len(messages))]}).encode()
                self._send(200, ids, "application/json")
            elif self.path.startswith("/upload/storage/v1/b/"):
                with lock:
                    counts["gcs_objects"] += 1
                self._send(200, b'{"kind": "storage#object"}', "application/json")
            elif self.path.startswith(("/v1/traces", "/api/public/otel/v1/traces")):
                with lock:
                    counts["otlp_requests" if self.path.startswith("/v1/") else "langfuse_otel_requests"] += 1
                    counts["otlp_bytes"] += len(raw)
                self._send(200, b"", "application/x-protobuf")
            else:
                self._send(404, b"{}", "application/json")

        def do_PUT(self) -> None:  # an S3 object (the s3 mode's bucket, path style), or azure_storage's blob
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                if self.path.startswith("/az/"):
                    counts["azure_files"] += 1
                else:
                    counts["s3_objects"] += 1
                    counts["s3_bytes"] += len(raw)
            self._send(201 if self.path.startswith("/az/") else 200, b"", "application/xml")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"READY {port}", flush=True)
    server.serve_forever()


def _received(port: int, want: tuple[str, ...], wait: float = 15.0) -> dict[str, Any]:
    """The receiver's counts, once every exporter the modes ran has delivered something (or ``wait``
    seconds passed): exporters send on their own timers (OTLP's batch processor every 5 s by default), so a
    short run can end before its first batch left the gateway."""
    deadline = time.monotonic() + wait
    while True:
        got = http_json(f"http://127.0.0.1:{port}/")
        if all(got[name] for name in want) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


_DELIVERED = (("langfuse", "langfuse_events"), ("otel", "otlp_requests"),
              ("langfuse_otel", "langfuse_otel_requests"), ("s3", "s3_objects"), ("langsmith", "langsmith_runs"),
              ("arize_phoenix", "otlp_requests"), ("datadog_llm_observability", "dd_llm_obs_spans"),
              ("posthog", "posthog_events"), ("aws_sqs", "sqs_messages"), ("gcs_bucket", "gcs_objects"),
              ("braintrust", "braintrust_events"), ("opik", "opik_traces"), ("openmeter", "openmeter_events"),
              ("helicone", "helicone_logs"), ("lago", "lago_events"), ("lunary", "lunary_events"),
              ("athina", "athina_logs"), ("langtrace", "langtrace_requests"), ("gcs_pubsub", "pubsub_messages"),
              ("azure_storage", "azure_files"), ("agentops", "agentops_requests"))
"""Exporters that send to the receiver, and the count that shows they did (a run whose exporter sent nothing
is a failure, not a cheap exporter)."""


def config(api_base: str, names: tuple[str, ...], receiver_url: str = "") -> str:
    text = (f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/mock-model, api_key: sk-up, "
            f"api_base: \"{api_base}\"}}\ngeneral_settings:\n  master_key: {MASTER}\n"
            "relaygate_settings:\n  embedded_database: false\n")
    callbacks = ["rg_bench_callbacks.proxy_handler_instance" if n == "custom_callbacks" else n
                 for n in names if n not in SERVICE_MODES]
    services = [n for n in names if n in SERVICE_MODES]
    if callbacks or services:
        text += "litellm_settings:\n"
    if callbacks:
        text += f"  callbacks: {json.dumps(callbacks)}\n"
    if services:
        text += f"  service_callback: {json.dumps(services)}\n"
    if "s3" in callbacks:
        text += ("  s3_callback_params: {s3_bucket_name: bench-logs, s3_region_name: us-east-1, "
                 f"s3_endpoint_url: \"{receiver_url}\", s3_aws_access_key_id: AKIDBENCH, "
                 "s3_aws_secret_access_key: bench-secret, s3_batch_file_upload: true}\n")
    if "aws_sqs" in callbacks:
        text += (f"  aws_sqs_callback_params: {{sqs_queue_url: \"{receiver_url}/123456789012/bench\", "
                 "sqs_region_name: us-east-1, sqs_aws_access_key_id: AKIDBENCH, "
                 "sqs_aws_secret_access_key: bench-secret}\n")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES),
                   help=f"comma-separated, of {', '.join(MODES + EXTRA_MODES)}")
    p.add_argument("--together", action="store_true", help="each mode in a pair with off, loaded at the same time")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="also run every mode but off from the relaygate tree in DIR (a built worktree of an older "
                        "commit) and compare; needs --together")
    p.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.receiver is not None:
        receiver(args.receiver)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES + EXTRA_MODES for m in modes) or "off" not in modes:
        p.error(f"--modes: a comma-separated subset of {', '.join(MODES + EXTRA_MODES)} that includes off")
    if args.duration <= 0 or args.duration > 60 or not 1 <= args.concurrency <= 256 or not 1 <= args.repeat <= 10:
        p.error("--duration must be in (0, 60], --concurrency in 1..256 and --repeat in 1..10 (a shared machine)")
    if args.baseline is not None:
        if not args.together:
            p.error("--baseline compares shares of off paired in the same seconds: add --together")
        args.baseline = args.baseline.resolve()
        problem = baseline_problem(args.baseline)
        if problem is not None:
            p.error(problem)
        modes += [m + BASE for m in modes if m != "off"]
    tmp = Path(tempfile.mkdtemp(prefix="rg-observe-bench-"))
    mock = launch_mock(name="up", cpus="1", log_dir=tmp)
    rport = _free_port()
    recv = spawn([sys.executable, "-m", "bench.scenarios_observe", "--receiver", str(rport)], name="receiver",
                 cpus="1", log_dir=tmp)
    gws: dict[str, tuple[int, Proc]] = {}
    env = {**os.environ, "LANGFUSE_PUBLIC_KEY": "pk-lf-bench", "LANGFUSE_SECRET_KEY": "sk-lf-bench",
           "LANGFUSE_HOST": f"http://127.0.0.1:{rport}", "LANGSMITH_API_KEY": "lsv2-bench",
           "LANGSMITH_BASE_URL": f"http://127.0.0.1:{rport}",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rport}", "OTEL_SERVICE_NAME": "relaygate-bench",
           "DD_API_KEY": "dd-bench", "DD_SITE": "datadoghq.com", "DD_BASE_URL": f"http://127.0.0.1:{rport}",
           "POSTHOG_API_KEY": "phc_bench", "POSTHOG_API_URL": f"http://127.0.0.1:{rport}",
           "GCS_BUCKET_NAME": "bench-logs", "GCS_BASE_URL": f"http://127.0.0.1:{rport}",
           "GCE_METADATA_HOST": f"127.0.0.1:{rport}", "CLOUDSDK_CONFIG": str(tmp / "no-gcloud"),
           "BRAINTRUST_API_KEY": "bt-bench", "BRAINTRUST_API_BASE": f"http://127.0.0.1:{rport}/bt/v1",
           "OPIK_URL_OVERRIDE": f"http://127.0.0.1:{rport}/opik", "OPENMETER_API_KEY": "om-bench",
           "OPENMETER_API_ENDPOINT": f"http://127.0.0.1:{rport}", "HELICONE_API_KEY": "hc-bench",
           "HELICONE_API_BASE": f"http://127.0.0.1:{rport}", "LAGO_API_BASE": f"http://127.0.0.1:{rport}",
           "LAGO_API_KEY": "lago-bench", "LAGO_API_EVENT_CODE": "tokens", "LAGO_API_CHARGE_BY": "user_id",
           "LUNARY_PUBLIC_KEY": "lunary-bench", "LUNARY_API_URL": f"http://127.0.0.1:{rport}",
           "ATHINA_API_KEY": "athina-bench", "ATHINA_BASE_URL": f"http://127.0.0.1:{rport}",
           "LANGTRACE_API_KEY": "lt-bench", "LANGTRACE_API_HOST": f"http://127.0.0.1:{rport}",
           "GCS_PUBSUB_PROJECT_ID": "bench", "GCS_PUBSUB_TOPIC_ID": "spend",
           "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{rport}",
           "AZURE_STORAGE_ACCOUNT_NAME": "bench", "AZURE_STORAGE_FILE_SYSTEM": "bench-logs",
           "AZURE_STORAGE_ACCOUNT_URL": f"http://127.0.0.1:{rport}/az", "AZURE_STORAGE_ACCOUNT_KEY": "YmVuY2gta2V5",
           "AGENTOPS_API_KEY": "ao-bench", "AGENTOPS_API_ENDPOINT": f"http://127.0.0.1:{rport}",
           "AGENTOPS_EXPORTER_ENDPOINT": f"http://127.0.0.1:{rport}/agentops/v1/traces"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.pop("GCS_PATH_SERVICE_ACCOUNT", None)
    (tmp / "rg_bench_callbacks.py").write_text(CUSTOM_MODULE)
    try:
        wait_http(f"http://127.0.0.1:{rport}/", 20, recv)
        for mode in modes:
            cfg = tmp / f"{mode}.yaml"
            cfg.write_text(config(mock.openai_base, mode_names(mode), f"http://127.0.0.1:{rport}"))
            port = _free_port()
            tree = args.baseline if mode.endswith(BASE) else None
            genv = env if tree is None else baseline_env(env, tree)
            if "arize_phoenix" in mode_names(mode):
                genv = {**genv, "PHOENIX_COLLECTOR_ENDPOINT": f"http://127.0.0.1:{rport}"}
            gw = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1", "--log-level", "warning"], name=f"gw-{mode}",
                       cpus="0", env=genv, log_dir=tmp, cwd=tree)
            gws[mode] = (port, gw)
            wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
        print(f"{args.concurrency} concurrent, {args.duration:g}s per mode, modes {', '.join(modes)}", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        shares: dict[str, list[float]] = {m: [] for m in modes if m != "off"}

        def one(mode: str, tag: str) -> dict[str, Any]:
            port, gw = gws[mode]
            return measure(port, gw, args, 0, f"{mode}-{tag}", tmp)

        for r in range(args.repeat):
            order = modes if r % 2 == 0 else modes[::-1]
            if args.together:
                for mode in (m for m in order if m != "off"):
                    with ThreadPoolExecutor(2) as ex:
                        off_f, mode_f = ex.submit(one, "off", f"{mode}{r}"), ex.submit(one, mode, str(r))
                        off_res, res = off_f.result(), mode_f.result()
                    runs["off"].append(off_res)
                    runs[mode].append(res)
                    shares[mode].append(off_res["cpu_us"] / res["cpu_us"])
                    print(f"round {r + 1} {mode:14s} {res['rps']:8.0f} req/s  gateway CPU {res['cpu_us']:6.1f} us/req "
                          f"vs off {off_res['cpu_us']:6.1f} in the same seconds: {100 * shares[mode][-1]:5.1f}%  "
                          f"errors={int(res['errors'] + off_res['errors'])}  threads "
                          f"{threads_text(res['threads_us_per_req'])}", flush=True)
                continue
            for mode in order:
                res = one(mode, str(r))
                runs[mode].append(res)
                print(f"round {r + 1} {mode:10s} {res['rps']:8.0f} req/s  errors={int(res['errors'])}  "
                      f"gateway CPU {res['cpu_us']:6.1f} us/req  threads {threads_text(res['threads_us_per_req'])}",
                      flush=True)
        med = {m: (statistics.median(x["rps"] for x in rs), statistics.median(x["cpu_us"] for x in rs))
               for m, rs in runs.items() if rs}
        off_rps, off_cpu = med["off"]
        for m, (rps, cpu) in med.items():
            if args.together and m != "off":
                print(f"median {m:10s} {100 * statistics.median(shares[m]):5.1f}% of off (off/mode CPU per "
                      f"request, paired)  gateway CPU {cpu:6.1f} us/req", flush=True)
                continue
            print(f"median {m:10s} {rps:8.0f} req/s ({100 * rps / off_rps:5.1f}% of off)  gateway CPU {cpu:6.1f} "
                  f"us/req (+{cpu - off_cpu:5.1f} us)", flush=True)
        if args.baseline is not None:
            for line in baseline_lines(modes, shares, args.baseline):
                print(line, flush=True)
        ran = {n for m in modes for n in mode_names(m)}
        want = tuple(count for name, count in _DELIVERED if name in ran)
        got = _received(rport, want)
        print(f"receiver: {got['langfuse_events']} Langfuse events in {got['langfuse_batches']} batches, "
              f"{got['otlp_requests']} OTLP requests ({got['otlp_bytes']} bytes), {got['langfuse_otel_requests']} "
              f"to Langfuse's OTLP endpoint, {got['s3_objects']} S3 objects ({got['s3_bytes']} bytes), "
              f"{got['langsmith_runs']} LangSmith runs, {got['dd_llm_obs_spans']} Datadog LLM Observability spans, "
              f"{got['posthog_events']} PostHog events, {got['sqs_messages']} SQS messages, {got['gcs_objects']} GCS "
              f"objects, {got['braintrust_events']} Braintrust events, {got['opik_traces']} Opik traces, "
              f"{got['openmeter_events']} OpenMeter events, {got['helicone_logs']} Helicone logs, {got['lago_events']} "
              f"Lago events, {got['lunary_events']} Lunary events, {got['athina_logs']} Athina logs, "
              f"{got['langtrace_requests']} Langtrace OTLP requests, {got['pubsub_messages']} Pub/Sub messages, "
              f"{got['azure_files']} Azure Storage files, {got['agentops_requests']} AgentOps OTLP requests",
              flush=True)
        missing = [name for name, count in _DELIVERED if name in ran and not got[count]]
        if "custom_callbacks" in ran:
            counted = (tmp / "custom-callback-count").read_text() if (tmp / "custom-callback-count").exists() else "0"
            print(f"custom callbacks: at least {counted} calls", flush=True)
            if counted == "0":
                missing.append("custom_callbacks")
        if missing:
            print(f"FAILED: nothing arrived from {', '.join(missing)}", flush=True)
            return 1
    finally:
        for _, gw in gws.values():
            gw.stop()
        recv.stop()
        mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
