"""Embeddings on the translating adapters: Gemini (batchEmbedContents), Vertex (:predict), Bedrock (Titan,
Cohere over InvokeModel, several calls for one client call), Ollama (/api/embed); base64, usage, errors."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.bedrock import BedrockProvider
from relaygate.providers.gemini import GeminiProvider
from relaygate.providers.vertex import VertexProvider

from .conftest import call, provider

BASE = "https://generativelanguage.googleapis.com/v1beta/models"


def emb(body: dict[str, Any], model: str = "up") -> Any:
    return call({"model": "m", **body}, model, endpoint="embeddings")


def unpack(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_pack_base64_is_float32_little_endian() -> None:
    vec = [0.5, -1.25, 3.0]
    assert cv.pack_base64(vec) == base64.b64encode(b"".join(struct.pack("<f", v) for v in vec)).decode()
    assert unpack(cv.pack_base64(vec)) == vec


def test_inputs_validation() -> None:
    assert cv.embedding_inputs({"input": "x"}, "p") == ["x"]
    assert cv.embedding_inputs({"input": ["a", "b"]}, "p") == ["a", "b"]
    with pytest.raises(errors.BadRequest, match="not token ids") as ei:
        cv.embedding_inputs({"input": [[1, 2], [3]]}, "gemini")
    assert ei.value.param == "input"
    with pytest.raises(errors.BadRequest, match="not token ids"):
        cv.embedding_inputs({"input": [1, 2, 3]}, "gemini")
    for bad in ({"input": []}, {}, {"input": 3}, {"input": ["a", 1]}):
        with pytest.raises(errors.BadRequest):
            cv.embedding_inputs(bad, "p")
    with pytest.raises(errors.BadRequest) as di:
        cv.dimensions({"dimensions": 0})
    assert di.value.param == "dimensions"


# ------------------------------------------------------------------------------------------- Gemini


def test_gemini_batch_embed_request() -> None:
    p = provider("gemini/gemini-embedding-001", api_key="AIza")
    assert isinstance(p, GeminiProvider) and p.supports("embeddings") and p.hooks
    c = emb({"input": ["first text", "second – ü"], "dimensions": 768, "task_type": "retrieval_document",
             "title": "Doc"})
    assert p.fetch_urls(c) == []
    (r,) = p.build_requests(c, {})
    assert r.url == f"{BASE}/gemini-embedding-001:batchEmbedContents" and r.method == "POST"
    assert ("x-goog-api-key", "AIza") in r.headers
    body = orjson.loads(r.body)
    assert body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "first text"}]},
         "outputDimensionality": 768, "taskType": "RETRIEVAL_DOCUMENT", "title": "Doc"},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second – ü"}]},
         "outputDimensionality": 768, "taskType": "RETRIEVAL_DOCUMENT", "title": "Doc"}]}
    assert p.build_request(c).body == r.body
    # a single string and no options: the bare request
    one = orjson.loads(p.build_request(emb({"input": "hello"})).body)
    assert one == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}}]}


def test_gemini_deployment_defaults_for_embeddings() -> None:
    p = provider("gemini/text-embedding-004", api_key="k", task_type="SEMANTIC_SIMILARITY", dimensions=256)
    body = orjson.loads(p.build_request(emb({"input": "x"})).body)
    assert body["requests"][0]["taskType"] == "SEMANTIC_SIMILARITY"
    assert body["requests"][0]["outputDimensionality"] == 256
    body = orjson.loads(p.build_request(emb({"input": "x", "dimensions": 64})).body)
    assert body["requests"][0]["outputDimensionality"] == 64  # the request wins


def test_gemini_batch_embed_response_float_and_base64() -> None:
    p = provider("gemini/text-embedding-004", api_key="k")
    upstream = orjson.dumps({"embeddings": [{"values": [0.25, -0.5, 1.0]}, {"values": [0.125, 0.0, -2.0]}]})
    out = orjson.loads(p.translate_response(emb({"input": ["hello world", "two"]}), upstream))
    assert out["object"] == "list" and out["model"] == "text-embedding-004"
    assert [d["index"] for d in out["data"]] == [0, 1] and all(d["object"] == "embedding" for d in out["data"])
    assert out["data"][1]["embedding"] == [0.125, 0.0, -2.0]
    u = out["usage"]
    assert u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"]  # estimated: no usage upstream
    b64 = orjson.loads(p.merge_responses(emb({"input": ["hello world", "two"], "encoding_format": "base64"}),
                                         [upstream]))
    assert [unpack(d["embedding"]) for d in b64["data"]] == [[0.25, -0.5, 1.0], [0.125, 0.0, -2.0]]
    with_usage = orjson.dumps({"embeddings": [{"values": [1.0]}], "usageMetadata": {"promptTokenCount": 7}})
    assert orjson.loads(p.translate_response(emb({"input": "x"}), with_usage))["usage"] == {
        "prompt_tokens": 7, "total_tokens": 7}


def test_gemini_embeddings_errors() -> None:
    p = provider("gemini/text-embedding-004", api_key="k")
    with pytest.raises(errors.BadRequest, match="not token ids"):
        p.build_request(emb({"input": [[1, 2, 3]]}))
    e = p.map_error(429, orjson.dumps({"error": {"code": 429, "message": "Resource has been exhausted",
                                                 "status": "RESOURCE_EXHAUSTED"}}), 3.0)
    assert e.status == 429 and "litellm.RateLimitError: GeminiException" in e.message and e.retry_after == 3.0
    e = p.map_error(400, orjson.dumps({"error": {"code": 400, "message": "Request contains an invalid argument.",
                                                 "status": "INVALID_ARGUMENT"}}), None)
    assert e.status == 400 and "BadRequestError" in e.message


# ------------------------------------------------------------------------------------------- Vertex

VERTEX = "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google/models"


def _predictions(vectors: list[list[float]], counts: list[int]) -> bytes:
    return orjson.dumps({"predictions": [{"embeddings": {"values": v, "statistics": {"token_count": n,
                                                                                    "truncated": False}}}
                                         for v, n in zip(vectors, counts)]})


def test_vertex_text_embedding_predict() -> None:
    p = provider("vertex_ai/text-embedding-005", api_key="k", vertex_project="p1")
    assert isinstance(p, VertexProvider)
    c = emb({"input": ["a", "b", "c"], "dimensions": 256, "input_type": "retrieval_query"})
    (r,) = p.build_requests(c, {})
    assert r.url == f"{VERTEX}/text-embedding-005:predict"
    assert orjson.loads(r.body) == {"instances": [{"content": t, "task_type": "RETRIEVAL_QUERY"} for t in "abc"],
                                    "parameters": {"outputDimensionality": 256}}
    out = orjson.loads(p.merge_responses(c, [_predictions([[0.1], [0.2], [0.3]], [2, 3, 4])]))
    assert [d["embedding"] for d in out["data"]] == [[0.1], [0.2], [0.3]]
    assert out["usage"] == {"prompt_tokens": 9, "total_tokens": 9}


def test_vertex_gemini_embedding_one_text_per_call() -> None:
    p = provider("vertex_ai/gemini-embedding-001", api_key="k", vertex_project="p1")
    c = emb({"input": ["one", "two", "three"], "encoding_format": "base64"})
    reqs = p.build_requests(c, {})
    assert len(reqs) == 3 and all(r.url == f"{VERTEX}/gemini-embedding-001:predict" for r in reqs)
    assert [orjson.loads(r.body)["instances"] for r in reqs] == [[{"content": "one"}], [{"content": "two"}],
                                                                [{"content": "three"}]]
    with pytest.raises(errors.BadRequest, match="3 upstream calls"):
        p.build_request(c)
    answers = [_predictions([[float(i), 0.5]], [i + 1]) for i in range(3)]
    out = orjson.loads(p.merge_responses(c, answers))
    assert [unpack(d["embedding"]) for d in out["data"]] == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]
    assert [d["index"] for d in out["data"]] == [0, 1, 2] and out["usage"]["prompt_tokens"] == 6


def test_vertex_predict_batches_of_250() -> None:
    p = provider("vertex_ai/text-multilingual-embedding-002", api_key="k", vertex_project="p1")
    reqs = p.build_requests(emb({"input": [f"t{i}" for i in range(260)]}), {})
    assert [len(orjson.loads(r.body)["instances"]) for r in reqs] == [250, 10]


# ------------------------------------------------------------------------------------------ Bedrock

BR = "https://bedrock-runtime.us-west-2.amazonaws.com/model"
AWS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "us-west-2"}


def test_bedrock_titan_v2_one_signed_call_per_input() -> None:
    p = provider("bedrock/amazon.titan-embed-text-v2:0", **AWS)
    assert isinstance(p, BedrockProvider) and p.supports("embeddings")
    c = emb({"input": ["alpha", "beta", "gamma"], "dimensions": 512})
    reqs = p.build_requests(c, {})
    assert [r.url for r in reqs] == [f"{BR}/amazon.titan-embed-text-v2%3A0/invoke"] * 3
    assert [orjson.loads(r.body) for r in reqs] == [{"inputText": t, "dimensions": 512}
                                                   for t in ("alpha", "beta", "gamma")]
    auths = [dict(r.headers)["Authorization"] for r in reqs]
    assert all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") for a in auths)
    assert len(set(auths)) == 3  # each body signed on its own
    answers = [orjson.dumps({"embedding": [float(i), 1.0], "inputTextTokenCount": 2 + i}) for i in range(3)]
    out = orjson.loads(p.merge_responses(c, answers))
    assert [d["embedding"] for d in out["data"]] == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
    assert out["usage"] == {"prompt_tokens": 9, "total_tokens": 9} and out["model"] == "amazon.titan-embed-text-v2:0"
    # one input: build_request works, and embeddingsByType answers are read too
    single = emb({"input": "x", "encoding_format": "base64"})
    assert orjson.loads(p.build_request(single).body) == {"inputText": "x"}
    by_type = orjson.dumps({"embeddingsByType": {"float": [0.5, 0.25]}, "inputTextTokenCount": 1})
    assert unpack(orjson.loads(p.translate_response(single, by_type))["data"][0]["embedding"]) == [0.5, 0.25]


def test_bedrock_titan_v1_rejects_dimensions() -> None:
    p = provider("bedrock/amazon.titan-embed-text-v1", api_key="brk")
    assert orjson.loads(p.build_request(emb({"input": "x"})).body) == {"inputText": "x"}
    assert ("Authorization", "Bearer brk") in p.build_request(emb({"input": "x"})).headers
    with pytest.raises(errors.BadRequest) as ei:
        p.build_request(emb({"input": "x", "dimensions": 256}))
    assert ei.value.param == "dimensions"


def test_bedrock_cohere_batches_of_96() -> None:
    p = provider("bedrock/cohere.embed-english-v3", **AWS)
    texts = [f"text {i}" for i in range(100)]
    c = emb({"input": texts, "input_type": "search_query"})
    reqs = p.build_requests(c, {})
    bodies = [orjson.loads(r.body) for r in reqs]
    assert [len(b["texts"]) for b in bodies] == [96, 4] and bodies[1]["texts"] == texts[96:]
    assert all(b["input_type"] == "search_query" for b in bodies)
    assert reqs[0].url == f"{BR}/cohere.embed-english-v3/invoke"
    assert orjson.loads(p.build_request(emb({"input": "x"})).body)["input_type"] == "search_document"
    a1 = orjson.dumps({"id": "1", "embeddings": [[float(i)] for i in range(96)], "response_type": "embeddings_floats",
                       "texts": texts[:96]})
    a2 = orjson.dumps({"id": "2", "embeddings": {"float": [[float(i)] for i in range(96, 100)]},
                       "response_type": "embeddings_by_type"})
    out = orjson.loads(p.merge_responses(c, [a1, a2]))
    assert [d["embedding"] for d in out["data"]] == [[float(i)] for i in range(100)]
    assert [d["index"] for d in out["data"]] == list(range(100))
    assert out["usage"]["prompt_tokens"] >= 100  # estimated: Cohere's body carries no count


def test_bedrock_embeddings_unsupported_model_and_errors() -> None:
    p = provider("bedrock/anthropic.claude-3-haiku-20240307-v1:0", **AWS)
    with pytest.raises(errors.BadRequest, match="Titan Text"):
        p.build_requests(emb({"input": "x"}), {})
    t = provider("bedrock/amazon.titan-embed-text-v2:0", **AWS)
    e = t.map_error(400, b'{"message":"Malformed input request: expected maxLength: 50000"}', None)
    assert e.status == 400 and "BedrockException" in e.message
    e = t.map_error(429, b'{"message":"Too many requests, please wait before trying again."}', None)
    assert e.status == 429 and "RateLimitError" in e.message


# ------------------------------------------------------------------------------------------- Ollama


def test_ollama_embed() -> None:
    p = provider("ollama/nomic-embed-text", api_base="http://ol:11434")
    c = emb({"input": ["a", "b"], "dimensions": 64, "keep_alive": "5m"})
    r = p.build_request(c)
    assert r.url == "http://ol:11434/api/embed"
    assert orjson.loads(r.body) == {"model": "nomic-embed-text", "input": ["a", "b"], "dimensions": 64,
                                    "keep_alive": "5m"}
    up = orjson.dumps({"model": "nomic-embed-text", "embeddings": [[0.5, 0.25], [1.0, -1.0]], "prompt_eval_count": 4})
    out = orjson.loads(p.translate_response(c, up))
    assert [d["embedding"] for d in out["data"]] == [[0.5, 0.25], [1.0, -1.0]]
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    b64 = orjson.loads(p.translate_response(emb({"input": "hello there", "encoding_format": "base64"}),
                                            orjson.dumps({"embeddings": [[0.5, 2.0]]})))
    assert unpack(b64["data"][0]["embedding"]) == [0.5, 2.0] and b64["usage"]["prompt_tokens"] > 0
    with pytest.raises(errors.BadRequest, match="not token ids"):
        p.build_request(emb({"input": [[1, 2]]}))
