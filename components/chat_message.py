"""Chat bubbles: the user's question (with its files) and the assistant's answer.

An answer streams into one markdown element (its content replaced at each flush, batched by the caller); once it is
complete (or stopped, or failed) it is laid out again, prose as markdown and every fenced code block as a
highlighted block with its own copy button, the reasoning in a collapsed expansion, the token usage and the
web-search citations as numbered links below it.

Model output is shown only through `safe_markdown` (markdown whose HTML is rebuilt from an allow-list on the
server: no raw HTML of the model's is live, components/safe_markdown.py) and labels; copying puts the text in an
attribute of the copy button and the button's own click handler copies it, so no model text ever becomes
JavaScript. Citation links keep only http(s) URLs and open in a new tab without a referrer or an opener.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nicegui import ui

from components.safe_markdown import safe_markdown

_FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)')
_MARKDOWN_EXTRAS = ['fenced-code-blocks', 'tables', 'cuddled-lists', 'strike', 'task_list']


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # 'prose' or 'code'
    text: str
    language: str = ''


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an answer ended, for its footer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    stopped: bool = False
    error: str | None = None
    model: str | None = None


def split_blocks(text: str) -> list[Block]:
    """Prose and fenced code blocks, in order. An unclosed fence (an answer cut short) runs to the end."""
    blocks: list[Block] = []
    prose: list[str] = []
    code: list[str] = []
    fence = ''
    language = ''
    for line in text.split('\n'):
        if not fence:
            opening = _FENCE.match(line)
            if opening:
                if prose:
                    blocks.append(Block('prose', '\n'.join(prose)))
                    prose = []
                fence, language = opening.group(1), opening.group(2)
            else:
                prose.append(line)
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            blocks.append(Block('code', '\n'.join(code), language))
            code, fence = [], ''
        else:
            code.append(line)
    if fence:
        blocks.append(Block('code', '\n'.join(code), language))
    elif prose and '\n'.join(prose).strip():
        blocks.append(Block('prose', '\n'.join(prose)))
    return [b for b in blocks if b.kind == 'code' or b.text.strip()]


def safe_url(url: str) -> str | None:
    """The URL if it is a plain http(s) link, else None (no javascript:, data: or relative links)."""
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in {'http', 'https'} and parts.netloc else None


def copy_button(text: str, *, tooltip: str, marker: str) -> ui.button:
    """A small button that copies `text` (kept in its data-copy attribute) in the browser."""
    button = ui.button(icon='content_copy', on_click=lambda: ui.notify('Copied to the clipboard.')) \
        .props('flat round dense size=sm').classes('chat-copy').tooltip(tooltip).mark(marker)
    button.props['data-copy'] = text
    button.on('click', js_handler=f'() => navigator.clipboard?.writeText('
                                  f'document.getElementById("c{button.id}")?.dataset.copy ?? "")')
    return button


def code_block(code: str, language: str) -> None:
    with ui.element('div').classes('relative w-full group').mark('code-block'):
        fence = '`' * max(3, _longest_run(code, '`') + 1)
        safe_markdown(f'{fence}{language}\n{code}\n{fence}', extras=['fenced-code-blocks']) \
            .classes('w-full overflow-x-auto chat-code')
        with ui.element('div').classes('absolute top-1 right-1'):
            copy_button(code, tooltip='Copy code', marker='copy-code')


def user_bubble(text: str, files: Sequence[str] = ()) -> ui.element:
    with ui.row().classes('w-full justify-end') as row, \
            ui.column().classes('max-w-[85%] gap-1 items-end').mark('user-message'):
        if files:
            with ui.row().classes('gap-1 justify-end'):
                for name in files:
                    ui.chip(name, icon='attach_file').props('dense outline').mark('message-file')
        if text:
            ui.label(text).classes('px-4 py-2 rounded-2xl bg-blue-100 dark:bg-blue-900 whitespace-pre-wrap '
                                   'break-words').mark('user-text')
    return row


class AnswerBubble:
    """One assistant answer: streamed (`show`) and then laid out for good (`finish`)."""

    def __init__(self, *, model: str | None = None, speak: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._speak = speak  # read an answer aloud (pages/chat_voice.py); None: no speech model is served
        with ui.column().classes('w-full max-w-[95%] gap-1 px-4 py-2 rounded-2xl bg-slate-100 '
                                 'dark:bg-slate-800').mark('assistant-message') as self.box:
            with ui.row().classes('w-full items-center justify-between no-wrap'):
                self.model = ui.label(model or '').classes('text-xs opacity-60').mark('answer-model')
                self.copy_slot = ui.row().classes('gap-0')
            self.reasoning = ui.expansion('Reasoning', icon='psychology').props('dense') \
                .classes('w-full text-sm opacity-80').mark('reasoning')
            with self.reasoning:
                self.reasoning_text = safe_markdown('', extras=_MARKDOWN_EXTRAS).classes('w-full') \
                    .mark('reasoning-text')
            self.reasoning.visible = False
            self.body = ui.column().classes('w-full gap-1')
            with self.body:
                self.live = safe_markdown('', extras=_MARKDOWN_EXTRAS).classes('w-full chat-answer').mark('answer')
                self.waiting = ui.spinner('dots', size='md').mark('answer-waiting')
            self.notices = ui.column().classes('gap-0')
            self.citations = ui.column().classes('gap-0 text-sm').mark('citations')
            self.citations.visible = False
            self.usage = ui.label('').classes('text-xs opacity-60 chat-usage').mark('answer-usage')
            self.usage.visible = False

    def show(self, content: str, reasoning: str) -> None:
        """The answer so far (called at most every flush interval while it streams)."""
        if reasoning and reasoning != self.reasoning_text.content:
            self.reasoning.visible = True
            self.reasoning_text.content = reasoning
        if content != self.live.content:
            self.live.content = content
        if content and self.waiting.visible:
            self.waiting.visible = False

    def note(self, text: str, *, warning: bool = False, error: bool = False, marker: str = 'answer-note') -> ui.label:
        """A line under the answer (a web search done or failed, a stop, an error)."""
        tone = ('text-red-700 dark:text-red-400' if error else 'text-amber-700 dark:text-amber-400' if warning
                else 'opacity-70')
        with self.notices:
            return ui.label(text).classes(f'text-sm {tone} whitespace-pre-wrap break-words').mark(marker)

    def finish(self, content: str, reasoning: str | None, outcome: Outcome,
               citations: Sequence[Citation] = ()) -> None:
        """Lay out the whole answer: code blocks with copy buttons, the footer, the citations."""
        if outcome.model:
            self.model.text = outcome.model
        if reasoning:
            self.reasoning.visible = True
            self.reasoning_text.content = reasoning
        self.body.clear()
        with self.body:
            for block in split_blocks(content):
                if block.kind == 'code':
                    code_block(block.text, block.language)
                else:
                    safe_markdown(block.text, extras=_MARKDOWN_EXTRAS).classes('w-full chat-answer').mark('answer')
        if content:
            self.copy_slot.clear()
            with self.copy_slot:
                if self._speak is not None:
                    speak = self._speak
                    ui.button(icon='volume_up', on_click=lambda: speak(content)).props('flat round dense size=sm') \
                        .classes('chat-read-aloud').tooltip('Read aloud').mark('read-aloud')
                copy_button(content, tooltip='Copy answer', marker='copy-answer')
        if outcome.error:
            self.note(outcome.error, error=True, marker='answer-error')
        elif outcome.stopped:
            self.note('Stopped: the answer is what had arrived.', warning=True, marker='answer-stopped')
        elif not content:
            self.note('The model gave an empty answer.', marker='answer-empty')
        self._show_citations(citations)
        if outcome.prompt_tokens or outcome.completion_tokens:
            self.usage.text = f'{outcome.prompt_tokens:,} prompt · {outcome.completion_tokens:,} completion tokens'
            self.usage.visible = True

    def _show_citations(self, citations: Sequence[Citation]) -> None:
        self.citations.clear()
        shown = [(c, safe_url(c.url)) for c in citations]
        if not shown:
            return
        with self.citations:
            ui.label('Sources').classes('text-xs uppercase opacity-60')
            for citation, url in shown:
                label = f'[{citation.n}] {citation.title or citation.url}'
                if url:
                    ui.link(label, url, new_tab=True).props('rel="noopener noreferrer"').classes('break-all') \
                        .mark('citation')
                else:
                    ui.label(label).classes('break-all').mark('citation')
        self.citations.visible = True


def citations_of(rows: Sequence[dict[str, Any]] | None) -> list[Citation]:
    """Citations as stored with a message ([{n, title, url}])."""
    out = []
    for row in rows or ():
        try:
            out.append(Citation(n=int(row['n']), title=str(row.get('title') or ''), url=str(row.get('url') or '')))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f'{re.escape(char)}+', text)
    return max((len(r) for r in runs), default=0)
