"""Markdown written by models and people, shown without any live HTML of theirs.

`ui.markdown` converts on the server (markdown2) and, by default, leaves the HTML in the text to the browser's
sanitiser, which drops scripts and event handlers but keeps what does harm without them: `<img src=...>` fetched
with no click (a prompt-injected page can make a model leak the conversation into the URL), `<form>` with a
password field, page-wide `<style>`, and `class` attributes that reach the console's own CSS. So the converted
HTML is rebuilt here from an allow-list, on the server, before it is sent:

* the elements markdown makes (paragraphs, headings, emphasis, lists, quotes, tables, code) and nothing else;
  any other tag is shown as text, as the model wrote it, and so is what a `<script>` or `<style>` holds;
* no attribute except: a link's http(s)/mailto `href` (with `target="_blank" rel="noopener noreferrer"`) and
  `title`; the syntax highlighter's classes (Pygments token names, `codehilite`); a table cell's alignment;
  a list's start number;
* an image becomes a link to it (nothing is fetched until someone clicks); a task list's checkbox a ☐ or ☑.
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

from nicegui import ui
from pygments.token import STANDARD_TYPES  # type: ignore[import-untyped]

_ELEMENTS = frozenset({
    'p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'b', 'i', 'u', 's', 'del', 'ins', 'sup',
    'sub', 'code', 'pre', 'kbd', 'blockquote', 'ul', 'ol', 'li', 'dl', 'dt', 'dd', 'table', 'thead', 'tbody',
    'tfoot', 'tr', 'th', 'td', 'a', 'span', 'div',
})
_VOID = frozenset({'br', 'hr'})
_LINK_SCHEMES = frozenset({'http', 'https', 'mailto'})
_TOKEN_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
_ALIGNMENT = re.compile(r'text-align:\s*(left|right|center);?')
_LANGUAGE_CLASS = re.compile(r'language-[\w+#.-]{1,40}')


def safe_markdown(content: str = '', *, extras: list[str] | None = None) -> ui.markdown:
    """`ui.markdown` whose HTML is cleaned on the server (`clean_html`) instead of in the browser."""
    return ui.markdown(content, extras=extras, sanitize=clean_html)


def clean_html(html: str) -> str:
    """`html` rebuilt from the allow-list in the module docstring."""
    cleaner = _Cleaner()
    cleaner.feed(html)
    cleaner.close()
    return ''.join(cleaner.out)


def safe_link(url: str) -> str | None:
    """`url` if a link to it may be shown (http(s) with a host, or mailto), else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unbalanced [ in the host
        return None
    scheme = parts.scheme.lower()
    if scheme not in _LINK_SCHEMES or (scheme != 'mailto' and not parts.netloc):
        return None
    return urlunsplit(parts)


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, dict(attrs), self.get_starttag_text() or '')

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, dict(attrs), self.get_starttag_text() or '')

    def handle_endtag(self, tag: str) -> None:
        if tag in _ELEMENTS and tag not in _VOID:
            self.out.append(f'</{tag}>')
        else:
            self.out.append(escape(f'</{tag}>'))

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    # comments, <!DOCTYPE>, <?...?> and CDATA sections are dropped (a browser would not show them either)

    def _start(self, tag: str, attrs: dict[str, str | None], raw: str) -> None:
        if tag == 'img':
            self._image(attrs)
        elif tag == 'input' and attrs.get('type') == 'checkbox':
            self.out.append('☑' if 'checked' in attrs else '☐')  # markdown2's task_list
        elif tag in _ELEMENTS:
            kept = ''.join(f' {name}="{escape(value)}"' for name, value in _attributes(tag, attrs))
            self.out.append(f'<{tag}{kept}>')
        else:
            self.out.append(escape(raw))

    def _image(self, attrs: dict[str, str | None]) -> None:
        label = escape(attrs.get('alt') or attrs.get('title') or 'image', quote=False)
        url = safe_link(attrs.get('src') or '')
        if url is None or url.startswith('mailto:'):
            self.out.append(f'[{label}]')
        else:
            self.out.append(f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">[{label}]</a>')


def _attributes(tag: str, attrs: dict[str, str | None]) -> list[tuple[str, str]]:
    """The attributes of `tag` that are kept, as (name, value)."""
    kept: list[tuple[str, str]] = []
    if tag == 'a':
        url = safe_link(attrs.get('href') or '')
        if url is not None:
            kept += [('href', url), ('target', '_blank'), ('rel', 'noopener noreferrer')]
        if attrs.get('title'):
            kept.append(('title', str(attrs['title'])))
    elif tag == 'span':
        classes = (attrs.get('class') or '').split()
        if classes and all(name in _TOKEN_CLASSES for name in classes):
            kept.append(('class', ' '.join(classes)))
    elif tag == 'div' and attrs.get('class') == 'codehilite':
        kept.append(('class', 'codehilite'))
    elif tag == 'code' and _LANGUAGE_CLASS.fullmatch(attrs.get('class') or ''):
        kept.append(('class', str(attrs['class'])))
    elif tag in ('th', 'td'):
        alignment = _ALIGNMENT.fullmatch((attrs.get('style') or '').strip())
        if alignment:
            kept.append(('style', f'text-align:{alignment.group(1)}'))
    elif tag == 'ol' and re.fullmatch(r'[0-9]{1,9}', attrs.get('start') or ''):
        kept.append(('start', str(attrs['start'])))
    return kept
