"""LiteLLM's ``enable_json_schema_validation``: a chat answer checked against the JSON schema its request asked for.

What it owns: :func:`wanted` and :func:`check`, which ``Pipeline.relay_unary`` calls for a non-stream chat
completion once the answer is in and priced, before anything is sent. Checked when the request's own
``enable_json_schema_validation`` body field (a LiteLLM control field, never forwarded) says so, else when
``litellm_settings.enable_json_schema_validation`` is on, and the request has a ``response_format`` of type
``json_schema`` with a ``json_schema.schema``: the first choice's ``message.content`` must be JSON that the
schema accepts (``jsonschema``, the draft the schema names, else 2020-12). An answer without content (a tool
call) is not checked, as in LiteLLM.

An answer that fails is a 500 in the caller's error shape with LiteLLM's words
(``litellm.APIResponseValidationError: litellm.JSONSchemaValidationError: model=..., returned an invalid
response=..., for schema=...``; the model is the one asked for, where LiteLLM leaves it empty), and its
record a failure with LiteLLM's ``JSONSchemaValidationError`` class. The tokens were used, so, unlike
LiteLLM (whose failure log carries no cost), the request is charged and its spend logged at its price. A
schema that is not a valid JSON Schema is the caller's 400, and so is a ``$ref`` outside the schema: nothing is
ever fetched (jsonschema's default would fetch a remote ``$ref``: a way to make the gateway call any URL).
Compiled validators are kept per schema text (at most :data:`MAX_VALIDATORS`); with neither switch on a request
pays one attribute test.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.errors import BadRequest, GatewayError

__all__ = ["CONTROL", "SchemaMismatch", "check", "wanted"]

CONTROL = "enable_json_schema_validation"
"""The body field (and ``litellm_settings`` key) that turns the check on for one request."""
MAX_VALIDATORS = 256
MAX_SHOWN = 4096
"""Characters of the answer and the schema an error message shows at most."""

_validators: dict[bytes, Any] = {}


class SchemaMismatch(GatewayError):
    """The answer is not JSON the request's schema accepts (LiteLLM's ``JSONSchemaValidationError``, a 500)."""

    status = 500
    type = None
    litellm_class = "JSONSchemaValidationError"


def wanted(on: bool, control: dict[str, Any] | None) -> bool:
    """Whether to check: the request's own field wins over the setting ``on``."""
    if control is not None:
        asked = control.get(CONTROL)
        if asked is not None:
            return asked is True
    return on


def _schema(body: bytes) -> Any:
    try:
        fmt = orjson.loads(body).get("response_format")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("json_schema"), dict):
        return None
    return fmt["json_schema"].get("schema")


def _validator(schema: Any) -> Any:
    import jsonschema  # type: ignore[import-untyped]
    from referencing import Registry

    text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    got = _validators.get(text)
    if got is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise BadRequest(f"response_format.json_schema.schema is not a valid JSON Schema: {exc.message}",
                             param="response_format") from None
        if len(_validators) >= MAX_VALIDATORS:
            _validators.clear()
        got = _validators[text] = cls(schema, registry=Registry())  # no $ref is ever fetched (no SSRF)
    return got


def _short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def check(body: bytes, answer: bytes, model: str) -> None:
    """Raise :class:`SchemaMismatch` when ``answer`` (a chat completion) does not hold what the schema in the
    request ``body`` asks for; nothing when the request has no such schema or the answer no content."""
    schema = _schema(body)
    if not isinstance(schema, dict | bool):
        return
    try:
        choices = orjson.loads(answer).get("choices")
        content = choices[0]["message"]["content"]
    except (orjson.JSONDecodeError, AttributeError, LookupError, TypeError):
        return
    if not isinstance(content, str):
        return
    from referencing.exceptions import Unresolvable

    validator = _validator(schema)
    try:
        ok = validator.is_valid(orjson.loads(content))
    except orjson.JSONDecodeError:
        ok = False
    except Unresolvable as exc:
        raise BadRequest(f"response_format.json_schema.schema: {type(exc).__name__}: {str(exc)[:200]} (a $ref "
                         "must point inside the schema: relaygate fetches nothing)", param="response_format") from None
    if not ok:
        shown = _short(orjson.dumps(schema).decode())
        raise SchemaMismatch(f"litellm.APIResponseValidationError: litellm.JSONSchemaValidationError: model={model}, "
                             f"returned an invalid response={_short(content)}, for schema={shown}.\n"
                             "Access raw response with `e.raw_response`")
