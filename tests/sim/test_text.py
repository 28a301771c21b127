"""The deterministic-answer rule that tests elsewhere rely on."""

from __future__ import annotations

from sim import VOCABULARY, chat_seed_text, count_prompt_tokens, expected_text, expected_tokens
from sim.text import apply_stop, chat_prompt, embedding_vector, vision_seed_text


def test_answers_are_deterministic_and_prefix_stable() -> None:
    assert expected_text('hello', 5) == expected_text('hello', 5)
    assert expected_text('hello', 100).startswith(expected_text('hello', 70) + ' ')
    assert expected_text('hello', 5) != expected_text('hello!', 5)
    tokens = expected_tokens('hello', 5)
    assert ''.join(tokens) == expected_text('hello', 5)
    assert tokens[0] in VOCABULARY and all(t.startswith(' ') and t[1:] in VOCABULARY for t in tokens[1:])
    assert expected_text('x', 0) == ''


def test_seed_and_prompt_count() -> None:
    messages = [
        {'role': 'system', 'content': 'be brief'},
        {'role': 'user', 'content': 'first question'},
        {'role': 'assistant', 'content': 'an answer'},
        {'role': 'user', 'content': [{'type': 'text', 'text': 'second'}, {'type': 'image_url', 'image_url': {}}]},
    ]
    assert chat_seed_text(messages) == 'second'
    assert chat_seed_text([{'role': 'system', 'content': 'only'}]) == 'only'
    assert chat_seed_text([]) == ''
    assert count_prompt_tokens(['be brief', 'first question', 'an answer', 'second']) == 11
    # A chat that ends with a tool result is answered from that result.
    tool_turn = [*messages, {'role': 'assistant', 'content': ''}, {'role': 'tool', 'content': 'sunny'}]
    assert chat_seed_text(tool_turn) == 'sunny'
    assert chat_prompt(tool_turn) == (
        count_prompt_tokens(['be brief', 'first question', 'an answer', 'second', '', 'sunny']),
        'sunny',
    )
    assert vision_seed_text('look', 2) == 'look\n[images: 2]' and vision_seed_text('look', 0) == 'look'


def test_stop_cuts_inside_a_token() -> None:
    tokens = ('alpha', ' beta', ' gamma')
    assert apply_stop(tokens, ['et']) == (['alpha', ' b'], 2, 'et')
    assert apply_stop(tokens, ['alpha']) == ([], 1, 'alpha')
    assert apply_stop(tokens, ['zeta']) == (tokens, 3, None)


def test_embeddings_are_unit_vectors() -> None:
    v = embedding_vector('text', 40)
    assert len(v) == 40 and abs(sum(x * x for x in v) - 1) < 1e-9
    assert embedding_vector('text', 40) == v and embedding_vector('other', 40) != v
