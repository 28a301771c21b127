"""One turn of a conversation: the question saved (with its files), then the answer asked of the API, streamed
into its bubble, and saved as it ended.

    turn = await start_turn(...)        the user message, its files attached, an empty assistant message and
                                        the context (core.chat: system prompt, earlier turns, file text, images)
    await answer(turn, bubble, stop)    web search first when on, then /v1/chat/completions streamed;
                                        the assistant message saved with what arrived, the request id, the
                                        tokens, stopped / error, and the files linked to the request

The assistant message is added before the request (it keeps its place in the conversation) and filled in when
the answer ends; an answer with no content is never sent back to the model in later turns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from components.chat_message import AnswerBubble, Citation, Outcome
from components.model_picker import ChatModel
from core.accounts import my_keys
from core.chat import conversations, files
from core.db import get_database
from core.models import ChatAttachment, ChatRole
from core.runtime import InferenceClient
from pages.chat_composer import current_settings
from pages.chat_search import SearchFailed, context_block, web_search, with_search_context
from pages.chat_stream import Reply, stream_answer

log = logging.getLogger(__name__)

THINK_ON, THINK_OFF = 'medium', 'none'  # reasoning_effort: 'none' switches thinking off (docs/compatibility.md)


@dataclass(slots=True)
class Turn:
    user_id: int
    conversation_id: int
    model: ChatModel
    question: str
    answer_id: int
    attachment_ids: list[int]
    context: list[dict[str, Any]]
    key_digest: str
    think: bool = False
    web_search: bool = False
    temperature: float | None = None
    citations: list[Citation] = field(default_factory=list)


async def start_turn(*, user_id: int, conversation_id: int, model: ChatModel, text: str,
                     attachments: list[ChatAttachment], think: bool, search: bool,
                     temperature: float | None) -> Turn:
    """Save the question and an empty answer; the context and the key the request goes out with."""
    ids = [a.id for a in attachments if a.id is not None]
    async with get_database().session() as session:
        question = await conversations.add_message(session, user_id=user_id, conversation_id=conversation_id,
                                                   role=ChatRole.user, content=text)
        assert question.id is not None
        if ids:
            await files.attach(session, user_id=user_id, attachment_ids=ids, conversation_id=conversation_id,
                               message_id=question.id)
        placeholder = await conversations.add_message(session, user_id=user_id, conversation_id=conversation_id,
                                                      role=ChatRole.assistant, model=model.name)
        assert placeholder.id is not None
        context = await conversations.context_for(session, user_id=user_id, conversation_id=conversation_id,
                                                  settings=current_settings())
        digest = await my_keys.console_key_digest(session, user_id=user_id)
    return Turn(user_id=user_id, conversation_id=conversation_id, model=model, question=text,
                answer_id=placeholder.id, attachment_ids=ids, context=context, key_digest=digest, think=think,
                web_search=search, temperature=temperature)


def request_body(turn: Turn, messages: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {'model': turn.model.name, 'messages': messages, 'stream': True,
                            'stream_options': {'include_usage': True}}
    if turn.temperature is not None:
        body['temperature'] = turn.temperature
    if turn.model.thinking:
        body['reasoning_effort'] = THINK_ON if turn.think else THINK_OFF
    return body


async def answer(api: InferenceClient, turn: Turn, bubble: AnswerBubble, stop: asyncio.Event, *,
                 follow: Callable[[], None] = lambda: None) -> Reply:
    """Search (when on), stream the answer into `bubble` (calling `follow` after each update), save it; the
    reply as it ended."""
    messages = turn.context
    if turn.web_search and turn.question.strip():
        messages = await _searched(api, turn, bubble, messages)
    reply = Reply()

    def progress() -> None:
        bubble.show(reply.content, reply.reasoning)
        follow()

    try:
        if not stop.is_set():
            await stream_answer(api, key_digest=turn.key_digest, body=request_body(turn, messages), reply=reply,
                                progress=progress, stop=stop)
        else:
            reply.stopped = True
    finally:
        await _save(turn, reply)
    if not bubble.box.is_deleted:  # the page may have been closed meanwhile: the answer is saved all the same
        bubble.finish(reply.content, reply.reasoning or None,
                      Outcome(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                              stopped=reply.stopped, error=reply.error, model=turn.model.name), turn.citations)
    return reply


async def _searched(api: InferenceClient, turn: Turn, bubble: AnswerBubble,
                    messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    searching = bubble.note('Searching the web…')
    try:
        results = await web_search(api, key_digest=turn.key_digest, query=turn.question,
                                   settings=current_settings())
    except SearchFailed as exc:
        searching.delete()
        bubble.note(f'{exc} The message was sent without search results.', warning=True, marker='search-failed')
        return messages
    searching.delete()
    if not results:
        bubble.note('The web search found nothing; the message was sent without results.', marker='search-empty')
        return messages
    turn.citations = [citation for citation, _ in results]
    bubble.note(f'Searched the web: {len(results)} results.', marker='search-done')
    return with_search_context(messages, context_block(results))


async def _save(turn: Turn, reply: Reply) -> None:
    """The answer as it ended, even when the page was closed meanwhile."""
    citations = [{'n': c.n, 'title': c.title, 'url': c.url} for c in turn.citations] or None
    try:
        async with get_database().session() as session:
            await conversations.update_message(
                session, user_id=turn.user_id, message_id=turn.answer_id, content=reply.content,
                reasoning=reply.reasoning or None, request_id=reply.request_id, prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens, citations=citations, stopped=reply.stopped,
                error=reply.error)
            if turn.attachment_ids and reply.request_id:
                await files.link_request(session, user_id=turn.user_id, attachment_ids=turn.attachment_ids,
                                         request_id=reply.request_id)
    except Exception:  # the answer is on the page; losing the copy in the database must not hide it
        log.warning('could not save the chat answer %s', turn.answer_id, exc_info=True)
        reply.error = (reply.error + ' ' if reply.error else '') + 'The answer could not be saved.'
