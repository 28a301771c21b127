"""Agents ask for model names they know: with aliases set by an admin, the official openai and anthropic
clients name `gpt-5-codex` and `claude-sonnet-4-5` against a real `mindrouter serve`, get answers that carry
the name they asked for, see the aliases in the model lists, and each request is audited with both names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from sim.text import expected_text
from tests.e2e.cluster import Cluster, running_cluster

PROMPT = 'Say hello'
ALIASES = {'claude-sonnet-4-5': 'llama3.2', 'gpt-5-codex': 'meta-llama/Llama-3.2-1B-Instruct'}


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp('aliases'), {'sim-ollama': ('ollama', []),
                                                              'sim-vllm': ('vllm', [])}) as cluster:
        for alias, target in ALIASES.items():
            response = httpx.put(f'{cluster.url}/api/admin/model-aliases/{alias}',
                                 headers={'X-API-Key': cluster.admin_key}, json={'target': target})
            assert response.status_code == 200, response.text
        yield cluster


def audit_row(cluster: Cluster, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = httpx.get(f'{cluster.url}/api/admin/audit/{request_id}', headers={'X-API-Key': cluster.admin_key})
        if found.status_code == 200:
            row: dict[str, Any] = found.json()
            return row
        time.sleep(0.1)
    raise AssertionError(f'no audit row for {request_id}')


def test_the_openai_client_asks_for_an_alias_and_the_answer_names_it(cluster: Cluster) -> None:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model='gpt-5-codex', messages=[{'role': 'user', 'content': PROMPT}], max_tokens=4)
        answer = raw.parse()
        assert answer.model == 'gpt-5-codex'
        assert answer.choices[0].message.content == expected_text(PROMPT, 4)
        assert raw.headers['X-MindRouter-Backend'] == 'sim-vllm'

        chunks = list(client.chat.completions.create(
            model='gpt-5-codex', messages=[{'role': 'user', 'content': PROMPT}], max_tokens=4, stream=True))
        assert {chunk.model for chunk in chunks} == {'gpt-5-codex'}
        assert ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices) == expected_text(PROMPT, 4)

        listed = {model.id: model for model in client.models.list()}
        assert set(ALIASES) <= set(listed)
        assert (listed['gpt-5-codex'].model_extra or {})['alias_for'] == 'meta-llama/Llama-3.2-1B-Instruct'

    row = audit_row(cluster, raw.headers['X-Request-ID'])
    assert row['model'] == 'meta-llama/Llama-3.2-1B-Instruct' and row['requested_model'] == 'gpt-5-codex'


def test_the_anthropic_client_asks_for_an_alias_and_the_answer_names_it(cluster: Cluster) -> None:
    with anthropic.Anthropic(base_url=f'{cluster.url}/anthropic', api_key=cluster.key, max_retries=0) as client:
        raw = client.messages.with_raw_response.create(
            model='claude-sonnet-4-5', max_tokens=4, messages=[{'role': 'user', 'content': PROMPT}])
        message = raw.parse()
        assert message.model == 'claude-sonnet-4-5'
        assert message.content[0].type == 'text' and message.content[0].text == expected_text(PROMPT, 4)
        assert raw.headers['X-MindRouter-Backend'] == 'sim-ollama'

        with client.messages.stream(model='claude-sonnet-4-5', max_tokens=4,
                                    messages=[{'role': 'user', 'content': PROMPT}]) as stream:
            final = stream.get_final_message()
        assert final.model == 'claude-sonnet-4-5'

        assert set(ALIASES) <= {model.id for model in client.models.list()}

    row = audit_row(cluster, raw.headers['X-Request-ID'])
    assert row['model'] == 'llama3.2:latest' and row['requested_model'] == 'claude-sonnet-4-5'
