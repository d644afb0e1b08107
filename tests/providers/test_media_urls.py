"""The adapter hooks the shell runs (``Provider.hooks``): image URLs for upstreams that take only inline data
and one client call split into several upstream calls.

Covered: the sans-IO rules (``providers.media``), the adapters' use of downloaded media, and the whole path
through an in-process gateway with a real local HTTP server serving the images (PNG, JPEG, 404, oversized,
slow, redirect) and standing in for the upstreams (Gemini, Bedrock Converse and InvokeModel, Ollama)."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.asgi import Gateway
from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.bedrock import to_converse
from relaygate.providers.gemini import to_gemini
from relaygate.providers.ollama import to_ollama_chat
from relaygate.upstream import media
from tests.asgi.conftest import call as app_call
from tests.asgi.conftest import make_gateway

from .conftest import call, chat, provider

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64, 128))


def _img(url: str, text: str = "what is this?") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text},
                                        {"type": "image_url", "image_url": {"url": url}}]}


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    media.CACHE.clear()
    yield
    media.CACHE.clear()


# ------------------------------------------------------------------------------------ sans-IO rules


def test_image_urls_cheap_and_distinct() -> None:
    assert cv.image_urls(b"not even json, but no image part") == []
    body = orjson.dumps(chat([_img("https://a.example/x.png"), _img("https://a.example/x.png"),
                              _img("data:image/png;base64,AAAA"), _img("gs://b/c.png"),
                              {"role": "user", "content": [{"type": "image_url", "image_url": "http://b.example/y"}]},
                              {"role": "assistant", "content": "ok"}]))
    assert cv.image_urls(body) == ["https://a.example/x.png", "http://b.example/y"]
    assert cv.image_urls(body, lambda u: u.startswith("http://")) == ["http://b.example/y"]


def test_public_url_hides_secrets() -> None:
    assert media.public_url("https://user:pw@cdn.example:8443/a/b.png?X-Amz-Signature=s3cr3t#frag") == \
        "https://cdn.example:8443/a/b.png"
    e = media.fetch_error("https://cdn.example/a.png?token=s3cr3t", "the server answered HTTP 403")
    assert isinstance(e, errors.BadRequest) and e.status == 400 and "s3cr3t" not in e.message
    assert "https://cdn.example/a.png" in e.message


def test_sniff_prefers_magic_bytes() -> None:
    assert media.sniff("https://x/a", b"application/octet-stream", PNG) == "image/png"
    assert media.sniff("https://x/a.png", b"image/png", JPEG) == "image/jpeg"  # the bytes win over the header
    assert media.sniff("https://x/a", None, b"GIF89a....") == "image/gif"
    assert media.sniff("https://x/a", None, b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert media.sniff("https://x/a", None, b"%PDF-1.7") == "application/pdf"
    assert media.sniff("https://x/a", b"image/avif; q=1", b"????") == "image/avif"
    assert media.sniff("https://x/a.webp", b"binary/octet-stream", b"????") == "image/webp"


def test_check_head() -> None:
    u = "https://x.example/a/b.png?sig=1"
    nxt = media.check_head(u, u, 302, None, b"/c.png")
    assert nxt is not None and nxt.url == "https://x.example/c.png" and nxt.port == 443
    assert media.check_head(u, u, 200, b"100", None) is None
    with pytest.raises(media.MediaFetchError, match="HTTP 404"):
        media.check_head(u, u, 404, None, None)
    with pytest.raises(media.MediaFetchError, match="larger than"):
        media.check_head(u, u, 200, str(media.MAX_BYTES + 1).encode(), None)
    with pytest.raises(media.MediaFetchError, match="non-http"):
        media.check_head(u, u, 301, None, b"file:///etc/passwd")
    with pytest.raises(media.MediaFetchError, match="empty"):
        media.accept(u, b"image/png", b"")
    for bad in (b"http://[::1/x", b"http://h:99999/x", b"http://u:p@h/x", b"http:///x"):
        with pytest.raises(media.MediaFetchError, match="redirected to an invalid URL"):
            media.check_head(u, u, 302, None, bad)


# ----------------------------------------------------------------- hostile URLs: 400, never a 500

_SCHEMES = st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp", "file", "javascript", "", "http:", "h ttp"])
_HOSTS = st.one_of(
    st.sampled_from(["a.example", "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1%25eth0]", "[::1",
                     "::1]", "[]", "", ".", "a..b", "xn--exmple-cua.com", "exämple.com", "a b", "a\\b", "a%00b",
                     "-", "a" * 64 + ".com", "0x7f.1", "ｅｘａｍｐｌｅ.com", "[v1.x]", "h]"]),
    st.text(max_size=12),
)
_PORTS = st.one_of(st.just(""), st.integers(-5, 200000).map(lambda n: f":{n}"),
                   st.text(max_size=6).map(lambda t: ":" + t))
_USERINFO = st.sampled_from(["", "", "user@", "user:pw@", ":@", "@"])
_TAILS = st.one_of(st.sampled_from(["", "/", "/a.png", "/a b.png", "/ä.png?q=é#f", "?x=1", "#frag", "/a\r\nX: y",
                                    "/%zz", "/\x00", "//evil.example/a.png", "\\@evil.example/"]),
                   st.text(max_size=16))
_URLS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s, u, h, p, t: f"{s}://{u}{h}{p}{t}", _SCHEMES, _USERINFO, _HOSTS, _PORTS, _TAILS),
)


@settings(max_examples=800, deadline=None)
@given(_URLS)
def test_parse_url_accepts_only_plain_fetchable_urls(url: str) -> None:
    """Every string either is refused with :class:`media.InvalidURL` or becomes a plain, normalized URL that
    the standard parser and the transport's origin split read the same way; nothing else ever escapes."""
    try:
        got = media.parse_url(url)
    except media.InvalidURL as exc:
        err = media.invalid_url(exc.reason)
        assert err.status == 400 and err.type == "invalid_request_error" and media.URL_FIELD in err.message
        return
    assert got.scheme in ("http", "https") and got.host and 0 < got.port < 65536
    assert got.url.isascii() and not any(c <= " " or c in "\x7f\\" for c in got.url)
    assert media.parse_url(got.url) == got  # the normal form is a fixed point
    split = urllib.parse.urlsplit(got.url)
    assert split.scheme == got.scheme and split.hostname == got.host and split.username is None
    assert (split.port or (443 if got.scheme == "https" else 80)) == got.port
    authority = got.url[len(got.scheme) + 3:].split("/", 1)[0]  # how H1Transport finds the origin
    assert authority == split.netloc and "?" not in authority and "#" not in got.url


def test_public_url_never_raises() -> None:
    for url in ("http://127.0.0.1:99999/a.png", "http://[::1/a.png", "http://h:x/", "http://a\nb/"):
        assert media.public_url(url) == "<invalid url>"


def test_cache_is_lru_bounded_in_entries_and_bytes() -> None:
    c = media.MediaCache(max_entries=2, max_bytes=10)
    c.put("a", ("image/png", b"1234"))
    c.put("b", ("image/png", b"1234"))
    assert c.get("a") is not None  # a is now the most recent
    c.put("c", ("image/png", b"12"))
    assert c.get("b") is None and len(c) == 2 and c.bytes == 6
    c.put("d", ("image/png", b"123456789"))  # byte bound pushes out the rest
    assert len(c) == 1 and c.get("d") is not None and c.bytes == 9
    c.put("huge", ("image/png", b"x" * 11))  # larger than the whole cache: not kept
    assert c.get("huge") is None and c.get("d") is not None


# --------------------------------------------------------------------------------- adapters + media

FETCHED = {"https://cdn.example/cat.png?sig=1": ("image/png", PNG)}
B64 = base64.b64encode(PNG).decode()


def test_gemini_inlines_fetched_urls_and_keeps_google_hosted() -> None:
    p = provider("gemini/gemini-2.5-flash", api_key="k")
    yt = "https://www.youtube.com/watch?v=abc"
    files = "https://generativelanguage.googleapis.com/v1beta/files/f1"
    c = call(chat([_img("https://cdn.example/cat.png?sig=1"), _img(yt), _img(files)]))
    assert p.fetch_urls(c) == ["https://cdn.example/cat.png?sig=1"]
    assert p.fetch_urls(call(chat([{"role": "user", "content": "no images"}]))) == []
    out = to_gemini(orjson.loads(c.body), "gemini", "g", FETCHED)
    parts = [p for turn in out["contents"] for p in turn["parts"]]
    assert {"inlineData": {"mimeType": "image/png", "data": B64}} in parts
    assert any(p.get("fileData", {}).get("fileUri") == yt for p in parts)
    (r,) = p.build_requests(c, FETCHED)
    assert B64.encode() in r.body


def test_vertex_gemini_fetches_nothing_claude_inlines(monkeypatch: pytest.MonkeyPatch) -> None:
    g = provider("vertex_ai/gemini-2.5-pro", api_key="k", vertex_project="p")
    c = call(chat([_img("https://cdn.example/cat.png?sig=1")]))
    assert g.fetch_urls(c) == []
    cl = provider("vertex_ai/claude-sonnet-4@20250514", api_key="k", vertex_project="p")
    assert cl.fetch_urls(c) == ["https://cdn.example/cat.png?sig=1"]
    (r,) = cl.build_requests(c, FETCHED)
    blocks = orjson.loads(r.body)["messages"][0]["content"]
    assert {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}} in blocks


def test_bedrock_and_ollama_inline_fetched_urls() -> None:
    req = orjson.loads(call(chat([_img("https://cdn.example/cat.png?sig=1")])).body)
    conv = to_converse(req, "m", FETCHED)
    assert {"image": {"format": "png", "source": {"bytes": B64}}} in conv["messages"][0]["content"]
    with pytest.raises(errors.BadRequest, match="http"):
        to_converse(req, "m")  # not fetched: the adapter cannot send a URL
    oc = to_ollama_chat(req, "llava", False, FETCHED)
    assert oc["messages"][0]["images"] == [B64]
    assert provider("bedrock/m", api_key="k").fetch_urls(call(chat([_img("http://h/x.jpg")]))) == ["http://h/x.jpg"]
    assert provider("ollama_chat/llava").fetch_urls(call(chat([_img("http://h/x.jpg")]))) == ["http://h/x.jpg"]


# ------------------------------------------------------------------ through the gateway, real sockets


class Server:
    """A tiny HTTP/1.1 server: images under /img/, fake Gemini/Bedrock/Ollama upstreams elsewhere."""

    def __init__(self) -> None:
        self.gets: dict[str, int] = {}
        self.posts: list[tuple[str, bytes]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(hdrs.get("content-length", "0")))
                if not await self._answer(method, target, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str = "application/json",
               extra: str = "") -> None:
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
                     .encode() + body)

    async def _answer(self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        path = target.split("?", 1)[0]
        if method == "GET":
            self.gets[path] = self.gets.get(path, 0) + 1
            if path == "/img/cat.png":
                self._reply(writer, 200, PNG, "image/png")
            elif path == "/img/photo":
                self._reply(writer, 200, JPEG, "application/octet-stream")
            elif path == "/img/bad-redirect":
                self._reply(writer, 302, b"", "text/plain", "location: http://[::1/x.png\r\n")
            elif path == "/img/moved":
                self._reply(writer, 302, b"", "text/plain", "location: /img/cat.png\r\n")
            elif path == "/img/big.png":
                self._reply(writer, 200, b"\x89PNG\r\n\x1a\n" + b"x" * 5000, "image/png")
            elif path == "/img/big-chunked.png":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ntransfer-encoding: chunked\r\n\r\n")
                for _ in range(10):
                    writer.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            elif path == "/img/slow.png":
                await asyncio.sleep(30)
                return False
            else:
                self._reply(writer, 404, b"not found", "text/plain")
            await writer.drain()
            return True
        self.posts.append((target, body))
        if ":streamGenerateContent" in path:
            ev = {"candidates": [{"content": {"role": "model", "parts": [{"text": "a cat"}]}, "finishReason": "STOP"}],
                  "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}
            self._reply(writer, 200, b"data: " + orjson.dumps(ev) + b"\r\n\r\n", "text/event-stream")
        elif path.endswith(":generateContent"):
            self._reply(writer, 200, orjson.dumps({
                "candidates": [{"content": {"role": "model", "parts": [{"text": "a cat"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}))
        elif path.endswith("/converse"):
            self._reply(writer, 200, orjson.dumps({
                "output": {"message": {"role": "assistant", "content": [{"text": "a cat"}]}},
                "stopReason": "end_turn", "usage": {"inputTokens": 5, "outputTokens": 2}}))
        elif path.endswith("/invoke"):
            text = orjson.loads(body)["inputText"]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(0.02)
            self.in_flight -= 1
            if text == "fail":
                self._reply(writer, 429, b'{"message":"Too many requests, please wait before trying again."}')
            else:
                self._reply(writer, 200, orjson.dumps({"embedding": [float(len(text)), 0.5],
                                                       "inputTextTokenCount": len(text)}))
        elif path == "/api/chat":
            self._reply(writer, 200, orjson.dumps({"model": "llava", "message": {"role": "assistant",
                                                                                 "content": "a cat"},
                                                   "done": True, "prompt_eval_count": 5, "eval_count": 2}))
        else:
            self._reply(writer, 404, b'{"error": "no route"}')
        await writer.drain()
        return True


H = {"Authorization": "Bearer sk-m"}


@asynccontextmanager
async def stack() -> AsyncIterator[tuple[Server, Gateway]]:
    srv = Server()
    await srv.start()
    gw = make_gateway({
        "model_list": [
            {"model_name": "gem", "litellm_params": {"model": "gemini/g", "api_key": "k", "api_base": srv.url}},
            {"model_name": "br", "litellm_params": {"model": "bedrock/anthropic.claude-x", "api_key": "k",
                                                    "api_base": srv.url}},
            {"model_name": "ol", "litellm_params": {"model": "ollama_chat/llava", "api_base": srv.url}},
            {"model_name": "titan", "litellm_params": {"model": "bedrock/amazon.titan-embed-text-v2:0",
                                                       "api_key": "k", "api_base": srv.url}},
        ],
        "general_settings": {"master_key": "sk-m"},
        "relaygate_settings": {"allow_private_media_urls": True},  # the image server is on loopback
    })
    try:
        yield srv, gw
    finally:
        await gw.aclose()
        await srv.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def _sent_parts(srv: Server) -> list[dict[str, Any]]:
    body = orjson.loads(srv.posts[-1][1])
    return [p for turn in body["contents"] for p in turn["parts"]]


def test_gemini_image_urls_downloaded_inlined_and_cached() -> None:
    async def go() -> None:
        async with stack() as (srv, gw):
            urls = [f"{srv.url}/img/cat.png?sig=abc", f"{srv.url}/img/photo", f"{srv.url}/img/moved"]
            msg = {"role": "user", "content": [{"type": "text", "text": "describe"},
                                               *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}
            r = await app_call(gw, "POST", "/v1/chat/completions", {"model": "gem", "messages": [msg]}, H)
            assert r.status == 200, r.body
            assert r.json()["choices"][0]["message"]["content"] == "a cat"
            inline = [p["inlineData"] for p in _sent_parts(srv) if "inlineData" in p]
            assert inline == [{"mimeType": "image/png", "data": base64.b64encode(PNG).decode()},
                              {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG).decode()},  # sniffed
                              {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}]  # redirect
            assert srv.gets == {"/img/cat.png": 2, "/img/photo": 1, "/img/moved": 1}
            # the same images again (a conversation re-sends them): served from the worker's cache
            r = await app_call(gw, "POST", "/v1/chat/completions",
                               {"model": "gem", "messages": [msg], "stream": True}, H)
            assert r.status == 200 and b"a cat" in r.body
            assert srv.gets == {"/img/cat.png": 2, "/img/photo": 1, "/img/moved": 1}
            assert ":streamGenerateContent" in srv.posts[-1][0]
            assert sum("inlineData" in p for p in _sent_parts(srv)) == 3

    run(go())


def test_bedrock_and_ollama_image_urls_inlined() -> None:
    async def go() -> None:
        async with stack() as (srv, gw):
            for model in ("br", "ol"):
                r = await app_call(gw, "POST", "/v1/chat/completions",
                                   {"model": model, "messages": [_img(f"{srv.url}/img/cat.png")]}, H)
                assert r.status == 200, r.body
            b64 = base64.b64encode(PNG).decode()
            conv = orjson.loads(srv.posts[0][1])
            assert {"image": {"format": "png", "source": {"bytes": b64}}} in conv["messages"][0]["content"]
            assert orjson.loads(srv.posts[1][1])["messages"][0]["images"] == [b64]
            assert srv.gets == {"/img/cat.png": 1}  # the second provider used the cache

    run(go())


@pytest.mark.parametrize(("path", "reason"), [
    ("/img/missing.png?token=s3cr3t", "HTTP 404"),
    ("/img/big.png", "larger than"),
    ("/img/big-chunked.png", "larger than"),
    ("/img/slow.png", "timeout"),
])
def test_fetch_failures_are_400_naming_the_url(monkeypatch: pytest.MonkeyPatch, path: str, reason: str) -> None:
    monkeypatch.setattr(media, "MAX_BYTES", 4096)
    # short only where the timeout is the point (the slow image never answers): the good image fetched first
    # must not time out on a CI machine busy enough to stall the loop for half a second (it once did)
    monkeypatch.setattr(media, "TIMEOUT", 2.0 if reason == "timeout" else 10.0)

    async def go() -> None:
        async with stack() as (srv, gw):
            for model in ("gem", "br"):
                body = {"model": model, "messages": [_img(f"{srv.url}/img/cat.png"), _img(srv.url + path)]}
                r = await app_call(gw, "POST", "/v1/chat/completions", body, H)
                assert r.status == 400, r.body
                err = r.json()["error"]
                assert reason in err["message"] and f"{srv.url}{path.split('?')[0]}" in err["message"]
                assert "s3cr3t" not in r.body.decode() and err["type"] == "invalid_request_error"
            assert srv.posts == []  # nothing reached the upstream
            assert media.CACHE.get(srv.url + path) is None  # a failure is never cached

    run(go())


def test_requests_without_image_urls_fetch_nothing() -> None:
    async def go() -> None:
        async with stack() as (srv, gw):
            data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
            r = await app_call(gw, "POST", "/v1/chat/completions",
                               {"model": "gem", "messages": [_img(data_uri),
                                                             {"role": "user", "content": "plain"}]}, H)
            assert r.status == 200 and srv.gets == {}

    run(go())


def test_one_embeddings_call_as_several_upstream_calls() -> None:
    from relaygate.upstream.calls import FANOUT_CONCURRENCY

    async def go() -> None:
        async with stack() as (srv, gw):
            texts = ["x" * (i + 1) for i in range(20)]
            r = await app_call(gw, "POST", "/v1/embeddings", {"model": "titan", "input": texts}, H)
            assert r.status == 200, r.body
            out = r.json()
            assert [d["embedding"] for d in out["data"]] == [[float(i + 1), 0.5] for i in range(20)]  # in order
            assert out["usage"] == {"prompt_tokens": 210, "total_tokens": 210}
            assert len(srv.posts) == 20 and 2 <= srv.max_in_flight <= FANOUT_CONCURRENCY
            srv.posts.clear()
            r = await app_call(gw, "POST", "/v1/embeddings", {"model": "titan", "input": ["a", "fail", "b"],
                                                              "encoding_format": "base64"}, H)
            assert r.status == 429 and "litellm.RateLimitError: BedrockException" in r.json()["error"]["message"]

    run(go())


def test_loopback_image_urls_are_refused_by_default() -> None:
    """SSRF guard: without allow_private_media_urls, a URL resolving to a non-public address is never fetched."""
    asyncio.run(_loopback_refused())


async def _loopback_refused() -> None:
    srv = Server()
    await srv.start()
    try:
        gw = make_gateway({"model_list": [{"model_name": "gem", "litellm_params": {
            "model": "gemini/g", "api_key": "k", "api_base": srv.url}}]})
        for url in (f"{srv.url}/img/cat.png", "http://localhost:9/x.png", "http://10.1.2.3/x.png",
                    "http://169.254.169.254/latest/meta-data/x.png"):
            msg = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            r = await app_call(gw, "POST", "/v1/chat/completions", {"model": "gem", "messages": [msg]})
            assert r.status == 400, (url, r.body)
            assert b"non-public address" in r.body
        assert srv.gets == {} and srv.posts == []
        await gw.aclose()
    finally:
        await srv.stop()


@pytest.mark.parametrize("allow_private", [True, False])
def test_malformed_image_urls_are_400_naming_the_field(allow_private: bool) -> None:
    async def go() -> None:
        async with stack() as (srv, gw):
            gw.allow_private_media = allow_private
            port = srv.port
            for url in ("http://127.0.0.1:99999/a.png", "http://[::1/a.png", "http://127.0.0.1:0/a.png",
                        f"http://user:pw@127.0.0.1:{port}/img/cat.png", "http:///a.png", "http://a b.example/x.png",
                        f"http://127.0.0.1:{port}x/img/cat.png", "http://[fe80::1%eth0]/a.png",
                        f"http://127.0.0.1:{port}\\@evil.example/img/cat.png", "http://exa\tmple.com/a.png"):
                for model in ("gem", "br", "ol"):
                    r = await app_call(gw, "POST", "/v1/chat/completions",
                                       {"model": model, "messages": [_img(url)]}, H)
                    assert r.status == 400, (url, model, r.body)
                    err = r.json()["error"]
                    assert err["type"] == "invalid_request_error" and media.URL_FIELD in err["message"], err
                    assert "pw" not in err["message"]
            if allow_private:  # a redirect to a malformed URL is refused the same way
                r = await app_call(gw, "POST", "/v1/chat/completions",
                                   {"model": "gem", "messages": [_img(srv.url + "/img/bad-redirect")]}, H)
                assert r.status == 400 and b"redirected to an invalid URL" in r.body, r.body
                assert srv.gets == {"/img/bad-redirect": 1}
            else:
                assert srv.gets == {}
            assert srv.posts == []

    run(go())
