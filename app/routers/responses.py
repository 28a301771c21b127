"""OpenAI Responses API (/v1/responses): create (whole or streamed) through the shared inference pipeline, and
the stored responses of `store: true` — read, input items, delete — for their owner only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import inference, intake
from app.deps import Caller
from app.inference import Exchange
from app.responses import JSONResponse
from core.errors import InvalidRequest, NotFound
from core.responses.store import ResponseStore, Stored
from core.translate import responses_dialect as dialect
from core.translate.ids import with_prefix
from core.translate.responses_stream import ResponsesStreamEncoder

router = APIRouter(prefix='/v1', tags=['OpenAI'])

_ITEM_ID_PREFIX = {'message': 'msg', 'function_call': 'fc', 'function_call_output': 'fco', 'reasoning': 'rs'}


@router.post('/responses')
@intake.route('/v1/responses')
async def create_response(exchange: Exchange) -> Response:
    req = dialect.parse_request(await intake.read_json(exchange.request))
    store = _store(exchange.request)
    history: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        previous = await store.get(req.previous_response_id, exchange.principal.user_id)
        if previous is None:
            raise _not_found(req.previous_response_id, param='previous_response_id')
        history = previous.chained_items()
    dialect.conversation(req, history)  # 400 for a tool result that answers no call, before any engine sees it
    response_id = with_prefix('resp_', exchange.request_id)
    user_id = exchange.principal.user_id

    def keep(final: dict[str, Any]) -> None:
        if req.store and final['status'] in ('completed', 'incomplete'):
            store.submit(Stored(id=response_id, user_id=user_id, response=final, history=history,
                                input_items=_with_ids(req.items, response_id)))

    if req.chat.stream:
        return await inference.stream(exchange, req.chat, lambda chat, ex: ResponsesStreamEncoder(
            req, response_id=response_id, created=ex.created, on_done=keep))

    def render(answer: Any, ex: Exchange) -> dict[str, Any]:
        final = dialect.render_response(answer, req, response_id=response_id, created=ex.created,
                                        completed_at=int(ex.created + ex.elapsed_ms() / 1000))
        keep(final)
        return final

    return await inference.complete(exchange, req.chat, render)


@router.get('/responses/{response_id}')
async def get_response(response_id: str, request: Request, caller: Caller) -> JSONResponse:
    stored = await _owned(request, response_id, caller.user_id)
    return JSONResponse(stored.response)


@router.delete('/responses/{response_id}')
async def delete_response(response_id: str, request: Request, caller: Caller) -> JSONResponse:
    if not await _store(request).delete(response_id, caller.user_id):
        raise _not_found(response_id)
    return JSONResponse({'id': response_id, 'object': 'response.deleted', 'deleted': True})


@router.get('/responses/{response_id}/input_items')
async def list_input_items(response_id: str, request: Request, caller: Caller, limit: int = 20,
                           order: str = 'desc', after: str | None = None) -> JSONResponse:
    """The items the response was created from (its own input, not the chained turns'), paged like OpenAI."""
    if order not in ('asc', 'desc'):
        raise InvalidRequest("'order' must be asc or desc.", param='order')
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be between 1 and 100.", param='limit')
    stored = await _owned(request, response_id, caller.user_id)
    items = [_listed(item) for item in stored.input_items]
    if order == 'desc':
        items.reverse()
    if after is not None:
        position = next((n for n, item in enumerate(items) if item['id'] == after), None)
        if position is None:
            raise InvalidRequest(f"'after' names no item of this response: {after!r}.", param='after')
        items = items[position + 1:]
    page = items[:limit]
    return JSONResponse({'object': 'list', 'data': page, 'first_id': page[0]['id'] if page else None,
                         'last_id': page[-1]['id'] if page else None, 'has_more': len(items) > limit})


def _store(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store


async def _owned(request: Request, response_id: str, user_id: int) -> Stored:
    stored = await _store(request).get(response_id, user_id)
    if stored is None:
        raise _not_found(response_id)
    return stored


def _not_found(response_id: str, *, param: str | None = None) -> NotFound:
    # another user's response reads exactly like one that never existed: ids cannot be probed
    return NotFound(f"Response with id '{response_id}' not found.", param=param)


def _with_ids(items: list[dict[str, Any]], response_id: str) -> list[dict[str, Any]]:
    """Input items as stored: each with an id (clients may leave them out), unique within the response."""
    base = response_id.removeprefix('resp_')
    return [item if item.get('id') else {**item, 'id': f"{_ITEM_ID_PREFIX[item['type']]}_{base}_in{n}"}
            for n, item in enumerate(items)]


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as the input_items list shows it: message content always as parts."""
    if item['type'] == 'message' and isinstance(item.get('content'), str):
        return {**item, 'content': [{'type': 'input_text', 'text': item['content']}], 'status': 'completed'}
    return item
