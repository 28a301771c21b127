"""Web search for a chat message: `POST /v1/search` called in-process as the user's web-console key (so it is
counted and audited as the user's request), and the results as a numbered context block the model is told to
cite as [n]. The block goes into the system message, so it is the model's reference for this turn while the
user's message stays as typed."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from components.chat_message import Citation
from core.config import Settings
from core.runtime import InferenceClient
from pages.chat_stream import refusal

log = logging.getLogger(__name__)

SEARCH_PATH = '/v1/search'
MAX_RESULTS = 5
QUERY_CHARS = 1000  # the search API's limit on a query (core/search/service.py)
SNIPPET_CHARS = 600


class SearchFailed(Exception):
    """The search did not give results; the message says why, for the user."""


async def web_search(api: InferenceClient, *, key_digest: str, query: str, max_results: int = MAX_RESULTS,
                     settings: Settings | None = None) -> list[tuple[Citation, str]]:
    """Numbered results for `query`: (citation, snippet) pairs; SearchFailed when the search failed."""
    body = {'query': ' '.join(query.split())[:QUERY_CHARS], 'max_results': max_results}
    if settings is not None:  # never more than the site allows (a 400 otherwise)
        body['max_results'] = max(1, min(max_results, settings.search_max_results))
    try:
        async with api.stream(key_digest=key_digest, path=SEARCH_PATH, body=body) as response:
            data = await response.read()
            status, headers = response.status, response.headers
    except Exception as exc:  # the API app itself failed: say so, the message goes without results
        log.warning('web search failed: %r', exc)
        raise SearchFailed(f'Web search failed: {exc}') from exc
    if status != 200:
        raise SearchFailed(f'Web search failed. {refusal(status, data, headers)}')
    try:
        rows = orjson.loads(data).get('data') or []
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise SearchFailed('Web search failed: the answer was not JSON.') from exc
    return [(Citation(n=n, title=_text(row.get('title')), url=_text(row.get('url'))), _text(row.get('snippet')))
            for n, row in enumerate((r for r in rows if isinstance(r, dict)), start=1)]


def context_block(results: list[tuple[Citation, str]]) -> str:
    """The results as the model gets them: numbered, with the instruction to cite them."""
    lines = ['Web search results for the user\'s latest message. Use them where they help and cite them in the '
             'answer as [n], the number of the result; do not make up sources.', '']
    for citation, snippet in results:
        lines.append(f'[{citation.n}] {citation.title} — {citation.url}')
        if snippet:
            lines.append(snippet[:SNIPPET_CHARS])
        lines.append('')
    return '\n'.join(lines).rstrip()


def with_search_context(messages: list[dict[str, Any]], block: str) -> list[dict[str, Any]]:
    """`messages` with `block` added to the system message (one is put first when there is none: chat templates
    accept a system message only at the start)."""
    if messages and messages[0].get('role') == 'system' and isinstance(messages[0].get('content'), str):
        first = dict(messages[0])
        first['content'] = f'{first["content"]}\n\n{block}' if first['content'] else block
        return [first, *messages[1:]]
    return [{'role': 'system', 'content': block}, *messages]


def _text(value: Any) -> str:
    return ' '.join(str(value).split()) if value is not None else ''
