"""Hostile bodies on the CloudZero and email-settings routes never get a 5xx, nor write anything when refused:
every JSON type where an object or a field is expected, control characters, kilobytes, out-of-range limits and
dates; and a stored CloudZero key is never answered in clear."""

from __future__ import annotations

import json
from typing import Any

from tests.management.conftest import Env, run

HOSTILE: tuple[Any, ...] = (None, 0, -1, 2**70, 1e309, True, "", "\x00", "\r\nx", "a" * 5000, [], {}, [1, "x"],
                            {"a": {"b": {"c": [None]}}}, "2026-13-45T99:99", "\U0001f600")
ROUTES = (("POST", "/cloudzero/init", ("api_key", "connection_id", "timezone")),
          ("PUT", "/cloudzero/settings", ("api_key", "connection_id", "timezone")),
          ("POST", "/cloudzero/dry-run", ("limit", "operation", "start_time_utc", "end_time_utc")),
          ("POST", "/cloudzero/export", ("limit", "operation", "start_time_utc", "end_time_utc")),
          ("PATCH", "/email/event_settings", ("settings",)))


def test_hostile_bodies_get_no_5xx(db_url: str) -> None:
    async def body(env: Env) -> None:
        bad = []
        for method, path, fields in ROUTES:
            for raw in (b"", b"[]", b"nul", b'"x"', b"{" * 5000,
                        json.dumps({"settings": [{"event": "x"}] * 200}).encode()):
                r = await env.call(method, path, raw)
                if r.status >= 500:
                    bad.append((method, path, raw[:20], r.status, r.body[:200]))
            for name in fields:
                for value in HOSTILE:
                    r = await env.call(method, path, json.dumps({name: value}).encode())
                    if r.status >= 500:
                        bad.append((method, path, name, repr(value)[:30], r.status, r.body[:200]))
                    elif r.status != 200:
                        err = r.json()["error"]
                        assert set(err) == {"message", "type", "param", "code"}, err
        assert not bad, bad
        await env.ok("POST", "/cloudzero/init", {"api_key": "cz-key-very-secret-0001", "connection_id": "c"})
        r = await env.call("GET", "/cloudzero/settings")
        assert r.status == 200 and "cz-key-very-secret-0001" not in r.body.decode()
        r = await env.call("PATCH", "/email/event_settings", {"settings": [{"event": "Virtual Key Created",
                                                                           "enabled": False}] * 3})
        assert r.status == 200
        got = (await env.ok("GET", "/email/event_settings"))["settings"]
        assert [s["enabled"] for s in got] == [False, True, True, True]

    run(db_url, body)
