"""Reading a request's audit row in API tests: the writer batches, so flush and ask until it is there."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI


async def audit_row(app: FastAPI, admin: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    """The request's row from the admin API, once the background writer has stored it."""
    for _ in range(100):
        await app.state.audit.flush()
        found = await admin.get(f'/api/admin/audit/{request_id}')
        if found.status_code == 200:
            row: dict[str, Any] = found.json()
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f'request {request_id} never reached the audit trail')
