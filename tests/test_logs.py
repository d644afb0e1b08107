"""Log lines: redacted and unforgeable, in text and JSON format (rules in ``relaygate.logs``' essay).

Rules under test: (1) whatever text a record carries, the text formatter writes its message on exactly
one line with no control character, and every further line (traceback, stack) starts with the
continuation mark and holds no control character either; (2) a JSON line holds no control character and
decodes back to the (redacted) message; (3) registered secrets and ``Bearer`` tokens never reach the output,
wherever in the record they are.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core.errors import REDACTED, redact, register_secrets
from relaygate.logs import (
    CONTINUATION,
    TEXT_FORMAT,
    JsonFormatter,
    SafeFormatter,
    escape_controls,
    setup_worker_logging,
)

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
SECRET = "sk-logs-secret-0042"


def _record(msg: str, args: tuple[object, ...] = (), exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("relaygate", logging.WARNING, __file__, 1, msg, args, exc_info)


def _raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def _unescape(text: str) -> str:
    named = {"n": "\n", "r": "\r", "t": "\t"}
    return re.sub(r"\\(n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4})",
                  lambda m: named.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_text_message_is_one_line_without_control_characters(text: str) -> None:
    out = SafeFormatter(TEXT_FORMAT).format(_record("%s failed: %s", (text, text)))
    assert "\n" not in out and not CONTROL.search(out)
    # readable: the escapes decode back to the text (unless the text holds a secret another test registered:
    # Hypothesis draws literals from the code, and the redactor then rightly hides them)
    if "\\" not in text and "earer" not in text.lower() and redact(text) == text:
        assert _unescape(out).endswith(f"{text} failed: {text}")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_traceback_lines_cannot_pose_as_records(text: str) -> None:
    out = SafeFormatter(TEXT_FORMAT).format(_record("internal error on %s", (text,), _raised(text)))
    first, *rest = out.split("\n")
    assert rest and all(line.startswith(CONTINUATION) for line in rest)
    assert not any(CONTROL.search(line) for line in (first, *rest))
    assert rest[0] == CONTINUATION + "Traceback (most recent call last):"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_json_line_has_no_control_characters_and_decodes_back(text: str, exc_text: str) -> None:
    out = JsonFormatter().format(_record("x %s", (text,), _raised(exc_text)))
    assert not CONTROL.search(out)
    obj = orjson.loads(out)
    if "earer" not in text.lower():
        assert obj["message"] == f"x {text}"
    assert obj["stacktrace"].startswith("Traceback")
    assert obj["level"] == "WARNING" and obj["component"] == obj["logger"] and obj["timestamp"].endswith("+00:00")


def test_escape_controls_names_each_kind() -> None:
    assert escape_controls("a\r\nb\tc\x00\x1b\x7f\x85\u2028\u202e") == \
        "a\\r\\nb\\tc\\x00\\x1b\\x7f\\x85\\u2028\\u202e"
    assert escape_controls("plain text é 中") == "plain text é 中"


@pytest.mark.parametrize("fmt", [SafeFormatter(TEXT_FORMAT), JsonFormatter()], ids=["text", "json"])
def test_secrets_are_redacted_everywhere_in_a_record(fmt: logging.Formatter) -> None:
    register_secrets([SECRET])
    records = [
        _record(f"upstream said {SECRET}"),
        _record("upstream said %s", (f'{{"error": "bad key {SECRET}"}}',)),
        _record("call failed", exc=_raised(f"401 for https://api.example/v1 key={SECRET}")),
        _record("sent Authorization: %s", ("Bearer some-runtime-oauth-token",)),
    ]
    for rec in records:
        out = fmt.format(rec)
        assert SECRET not in out and "some-runtime-oauth-token" not in out
        assert REDACTED in out


@pytest.fixture
def granian_handler() -> Iterator[logging.Handler]:
    logger = logging.getLogger("_granian")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_worker_logging_makes_granians_handlers_safe(granian_handler: logging.StreamHandler[io.StringIO]) -> None:
    register_secrets([SECRET])
    setup_worker_logging()
    assert all(isinstance(h.formatter, (SafeFormatter, JsonFormatter)) for h in logging.getLogger("relaygate").handlers)
    logging.getLogger("_granian").error("bad request %s\r\n[INFO] forged %s", "/x", SECRET)
    out = granian_handler.stream.getvalue()
    assert out.count("\n") == 1 and out.startswith("[ERROR] bad request /x\\r\\n[INFO] forged ")
    assert SECRET not in out


def test_a_forged_record_inside_an_exception_message_stays_a_continuation() -> None:
    """What ``log.exception`` writes is redacted and marked line by line: one record, one unmarked line."""
    register_secrets([SECRET])
    fmt = SafeFormatter(TEXT_FORMAT)
    rec = _record("boom", exc=_raised(f"line one\n2026-01-01 00:00:00,000 INFO relaygate[1] forged {SECRET}"))
    lines = fmt.format(rec).split("\n")
    assert lines[-1].startswith(CONTINUATION) and "forged" in lines[-1] and SECRET not in lines[-1]
    assert sum(1 for line in lines if not line.startswith(CONTINUATION)) == 1


@given(st.text(), st.text(alphabet=st.characters(max_codepoint=0x7f)))
def test_json_line_fast_path_equals_the_regex_path(text: str, ascii_text: str) -> None:
    """The ASCII fast path of ``json_line`` writes exactly what escaping every line by the regex did."""
    from relaygate.logs import _CONTROL, _escape_json, json_line

    for obj in ({"m": text}, {"m": ascii_text, "n": [ascii_text, 1.5, None]}, {"del": "a\x7fb"}):
        assert json_line(obj) == _CONTROL.sub(_escape_json, orjson.dumps(obj).decode())
        assert not CONTROL.search(json_line(obj))


def test_json_line_writes_what_orjson_refuses() -> None:
    import json

    from relaygate.logs import json_line

    huge = int("9" * 30)

    class Odd:
        def __str__(self) -> str:
            return "odd\nvalue"

    text = json_line({"n": huge, "o": Odd(), "s": "a\u2028b"})
    assert "\n" not in text and "\u2028" not in text
    assert json.loads(text) == {"n": huge, "o": "odd\nvalue", "s": "a\u2028b"}
