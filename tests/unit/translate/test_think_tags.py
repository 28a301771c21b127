"""Reasoning inline as <think>...</think> is split off, however the stream is cut."""

from __future__ import annotations

import pytest

from core.translate.think_tags import ThinkTagSplitter, split_think_tags

ANSWER = '<think>The user wants 2+2.</think>\n\nIt is 4.'


def stream(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    content, reasoning = [], []
    for piece in pieces:
        c, r = splitter.split(piece)
        content.append(c)
        reasoning.append(r)
    c, r = splitter.flush()
    return ''.join(content) + c, ''.join(reasoning) + r


def test_a_whole_answer() -> None:
    assert split_think_tags(ANSWER) == ('It is 4.', 'The user wants 2+2.')
    assert split_think_tags('  \n<think>x</think>y') == ('y', 'x')


@pytest.mark.parametrize('size', [1, 2, 3, 5, 7, 8, 13])
def test_every_cut_gives_the_same_split(size: int) -> None:
    pieces = [ANSWER[i:i + size] for i in range(0, len(ANSWER), size)]
    assert stream(pieces) == ('It is 4.', 'The user wants 2+2.')


def test_reasoning_streams_as_it_comes_holding_back_only_what_may_be_a_tag() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.split('<thi') == ('', '')
    assert splitter.split('nk>Let me') == ('', 'Let me')
    assert splitter.split(' see</th') == ('', ' see')
    assert splitter.split('ink>\n\nFour') == ('Four', '')
    assert splitter.split('.') == ('.', '')


@pytest.mark.parametrize('text', ['Hello <think>not reasoning</think>', '<b>bold</b>', '<thinking>', 'plain'])
def test_text_that_does_not_open_with_the_tag_is_left_alone(text: str) -> None:
    assert split_think_tags(text) == (text, '')
    assert stream(list(text)) == (text, '')


def test_an_unfinished_thought_stays_reasoning_and_a_cut_opening_stays_text() -> None:
    assert stream(['<think>still thinking', ' </thi']) == ('', 'still thinking </thi')
    assert stream(['  <thi']) == ('  <thi', '')
