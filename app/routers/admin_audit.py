"""Admin API for the audit trails: the request log (search, one request, conversation export) and the admin
log. The /admin/audit and /admin/log pages call the same services (core.audit.search, core.audit.admin_log).

Two more paths answer under the names the product's brief documents, so that scripts written against them keep
working: GET /api/admin/audit/search (= /audit) and GET /api/admin/conversations/export (= /audit/export)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse

from app.deps import require_admin
from app.params import Offset
from app.responses import JSONResponse
from core.audit import admin_log
from core.audit import search as audit_search
from core.audit.search import AuditFilter
from core.db import Database
from core.telemetry.queries import parse_time

router = APIRouter(prefix='/api/admin', tags=['Admin'], dependencies=[Depends(require_admin)])

Limit = Annotated[int, Query(ge=1, le=audit_search.PAGE_LIMIT_MAX)]


def audit_filter(user: str | None = None, model: str | None = None, status: str | None = None,
                 endpoint: str | None = None, since: str | None = None, until: str | None = None,
                 q: Annotated[str | None, Query(description='text in the prompt or response; needs since, '
                                                            'at most 7 days before until')] = None) -> AuditFilter:
    """The request-log filters every audit route shares: username, model, status, endpoint, [since, until)
    as ISO 8601 (UTC when no zone is given), and free text."""
    return AuditFilter(user=user or None, model=model or None, status=status or None, endpoint=endpoint or None,
                       since=parse_time(since, param='since'), until=parse_time(until, param='until'), text=q or None)


Filter = Annotated[AuditFilter, Depends(audit_filter)]


@router.get('/audit')
async def search_requests(request: Request, flt: Filter, offset: Offset = 0, limit: Limit = 50) -> JSONResponse:
    """One page of the request log, newest first, without prompts and responses. `total` counts matches up
    to 10,000; `total_exact` is false when more match."""
    return await _search_page(request, flt, offset, limit)


# Declared before /audit/{request_id}, which would otherwise take 'search' for a request id.
@router.get('/audit/search')
async def search_requests_upstream(request: Request, flt: Filter, offset: Offset = 0,
                                   limit: Limit = 50) -> JSONResponse:
    """The product brief's name for GET /api/admin/audit: the same filters, the same answer."""
    return await _search_page(request, flt, offset, limit)


async def _search_page(request: Request, flt: AuditFilter, offset: int, limit: int) -> JSONResponse:
    database: Database = request.app.state.database
    async with database.session() as session:
        page = await audit_search.search(session, flt, offset=offset, limit=limit)
    return JSONResponse({'rows': page.rows, 'total': page.total, 'total_exact': page.total_exact,
                         'offset': page.offset, 'limit': page.limit})


@router.get('/audit/export', response_model=None)
async def export_requests(request: Request, flt: Filter) -> StreamingResponse:
    """The matching requests' conversations as a JSON array, oldest first (request id, time, user, model,
    endpoint, status, prompt messages, response, tokens), streamed in chunks. Refused with 400 when more
    than 50,000 match: narrow the filters."""
    return await _export(request, flt)


@router.get('/conversations/export', response_model=None)
async def export_conversations_upstream(request: Request, flt: Filter) -> StreamingResponse:
    """The product brief's name for GET /api/admin/audit/export: the same filters, the same streamed JSON."""
    return await _export(request, flt)


async def _export(request: Request, flt: AuditFilter) -> StreamingResponse:
    database: Database = request.app.state.database
    async with database.session() as session:
        await audit_search.check_export(session, flt)  # before the first byte: a started stream cannot fail cleanly
    who = re.sub(r'[^A-Za-z0-9._-]', '_', flt.user or 'all')  # a header value, whatever the username holds
    filename = f'mindrouter-conversations-{who}.json'
    return StreamingResponse(audit_search.export_json(database, flt), media_type='application/json',
                             headers={'Content-Disposition': f'attachment; filename="{filename}"'})


@router.get('/audit/{request_id}')
async def get_request(request_id: str, request: Request) -> JSONResponse:
    """One request with everything recorded, prompt (the messages as JSON) and response included; either is
    null when AUDIT_LOG_PROMPTS / AUDIT_LOG_RESPONSES was off."""
    database: Database = request.app.state.database
    async with database.session() as session:
        return JSONResponse(await audit_search.get_request(session, request_id))


@router.get('/log')
async def search_admin_log(request: Request, actor: str | None = None,
                           action: Annotated[str | None, Query(description='an action or its prefix, e.g. user.')]
                           = None, since: str | None = None, until: str | None = None, offset: Offset = 0,
                           limit: Limit = 50) -> JSONResponse:
    """The admin audit log, newest first: who changed what, from what to what; `changed` names the keys that
    differ between before and after."""
    database: Database = request.app.state.database
    async with database.session() as session:
        entries, total = await admin_log.search(session, actor=actor or None, action=action or None,
                                                since=parse_time(since, param='since'),
                                                until=parse_time(until, param='until'), offset=offset, limit=limit)
    rows: list[dict[str, Any]] = [audit_search.admin_action_row(entry) for entry in entries]
    return JSONResponse({'rows': rows, 'total': total, 'offset': offset, 'limit': limit})
