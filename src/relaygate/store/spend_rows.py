"""A spend row in LiteLLM's ``LiteLLM_SpendLogs`` shape (its ``SpendLogsPayload``): what ``/spend/logs`` answers
(``management.spend_views``) and what LiteLLM's v1 Pub/Sub messages carry (``observe.gcs_pubsub``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relaygate.config.litellm_general import MetadataFields
from relaygate.store.records import SpendLog

__all__ = ["log_row"]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _metadata(row: SpendLog, fields: MetadataFields | None) -> dict[str, Any]:
    """LiteLLM's ``metadata`` of a spend row: the keys the sink leaves out because columns hold them
    (``sinks.spend.spend_row``), then what the row stored; with ``spend_logs_metadata_fields`` only the keys
    it keeps, as they would have been written."""
    stored = row.metadata if isinstance(row.metadata, dict) else {}
    out = {"user_api_key": row.api_key, "user_api_key_alias": row.key_alias, "user_api_key_team_id": row.team_id,
           "user_api_key_user_id": row.user_id, "user_api_key_org_id": row.organization_id,
           "spend_logs_metadata": None, "requester_metadata": None, "attempted_retries": 0,
           "attempted_fallbacks": 0, "status": row.status, **stored}
    return out if fields is None else {k: v for k, v in out.items() if fields.keeps(k)}


def log_row(row: SpendLog, fields: MetadataFields | None = None) -> dict[str, Any]:
    """A spend row in LiteLLM's ``LiteLLM_SpendLogs`` shape (``fields``: ``spend_logs_metadata_fields``)."""
    return {
        "request_id": row.request_id, "call_type": row.call_type, "api_key": row.api_key or "",
        "key_alias": row.key_alias, "spend": row.spend, "total_tokens": row.total_tokens,
        "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
        "startTime": _iso(row.start_time), "endTime": _iso(row.end_time),
        "completionStartTime": _iso(row.completion_start_time), "model": row.model, "model_id": row.model_id,
        "model_group": row.model_group, "custom_llm_provider": row.custom_llm_provider, "api_base": "",
        "user": row.user_id or "", "metadata": _metadata(row, fields), "cache_hit": str(row.cache_hit),
        "cache_key": "", "request_tags": row.request_tags, "team_id": row.team_id,
        "organization_id": row.organization_id, "end_user": row.end_user or "",
        "requester_ip_address": row.requester_ip_address or "",
        "messages": row.messages, "response": row.response, "proxy_server_request": row.proxy_server_request,
        "status": row.status,
        "prompt_tokens_details": {"cached_tokens": row.cache_read_tokens},
        "cache_creation_input_tokens": row.cache_write_tokens,
    }
