"""Response ids in each dialect's own style, from the gateway's request id (one id per request, everywhere)."""

from __future__ import annotations


def with_prefix(prefix: str, request_id: str) -> str:
    """`chatcmpl-<id>`, `cmpl-<id>`, `msg_<id>`: the prefix is added once, so callers may pass either form."""
    return request_id if request_id.startswith(prefix) else prefix + request_id
