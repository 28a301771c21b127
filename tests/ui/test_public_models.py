"""The public model list, as a visitor sees it: what each model is, what it can do and where it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from nicegui.testing import User

from core.db import Database
from sim import SimConfig, SimServer
from sim.sidecar import SidecarConfig, SidecarSim

MODELS = ['meta-llama/Llama-3.2-1B-Instruct', 'BAAI/bge-small-en-v1.5', 'BAAI/bge-reranker-v2-m3']
SIDECAR_KEY = 'node-secret-4f7a'


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('vllm', SimConfig(models=MODELS, context_length=32768)) as sim:
        yield sim


@pytest.fixture
async def on_a_node(admin_api: httpx.AsyncClient, engine: SimServer) -> AsyncIterator[None]:
    """A GPU node 'rack1-node3' with its sidecar, and the vLLM engine registered on it as 'vllm-a'."""
    async with SidecarSim(SidecarConfig(gpus=2, key=SIDECAR_KEY)) as sidecar:
        node = await admin_api.post('/api/admin/nodes/register', json={
            'name': 'rack1-node3', 'hostname': 'rack1-node3.example.edu', 'sidecar_url': sidecar.url,
            'sidecar_key': SIDECAR_KEY})
        assert node.status_code == 201 and node.json()['status'] == 'online', node.text
        backend = await admin_api.post('/api/admin/backends/register', json={
            'name': 'vllm-a', 'url': engine.url, 'engine': 'vllm', 'node_id': node.json()['id']})
        assert backend.status_code == 201 and backend.json()['status'] == 'healthy', backend.text
        yield


def cards(user: User) -> int:
    return len(user.find(marker='model-card').elements)


async def settled() -> None:
    """Let the page's last updates go out before the test ends: NiceGUI's teardown, cancelling its outbox while
    updates are pending, otherwise logs 'Could not cancel tasks within timeout' and waits 2 s."""
    await asyncio.sleep(0)


async def test_a_visitor_sees_every_model_with_what_it_does_and_where_it_runs(
        people: Database, live: FastAPI, on_a_node: None, user: User) -> None:
    await user.open('/models')
    await user.should_see('meta-llama/Llama-3.2-1B-Instruct')
    await user.should_see('BAAI/bge-small-en-v1.5')
    await user.should_see('BAAI/bge-reranker-v2-m3')
    assert cards(user) == 3
    for kind in ('chat', 'embedding', 'reranking'):
        await user.should_see(kind, marker='model-modality')
    await user.should_see('Context: 32,768 tokens')
    await user.should_see('tools', marker='model-capability')
    await user.should_see('vllm-a')  # the backend, its engine and the node it runs on
    await user.should_see('vLLM')
    await user.should_see('rack1-node3')
    await user.should_see('3 models', marker='model-count')


async def test_the_search_box_and_the_kind_narrow_the_list(
        people: Database, live: FastAPI, on_a_node: None, user: User) -> None:
    await user.open('/models')
    await user.should_see('3 models')

    user.find(marker='model-search').type('bge')
    await user.should_see('2 of 3 models')
    assert cards(user) == 2
    await user.should_not_see('meta-llama/Llama-3.2-1B-Instruct')

    user.find(marker='modality-filter').click()
    user.find('Reranking').click()
    await user.should_see('1 of 3 models')
    await user.should_see('BAAI/bge-reranker-v2-m3')
    await user.should_not_see('BAAI/bge-small-en-v1.5')

    user.find(marker='model-search').clear().type('llama')
    await user.should_see(marker='models-no-match')
    await user.should_not_see(marker='model-card')
    await settled()


async def test_a_model_whose_only_backend_fails_leaves_the_list(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, user: User) -> None:
    async with SimServer('ollama') as engine:
        backend = (await admin_api.post('/api/admin/backends/register',
                                        json={'name': 'ollama-a', 'url': engine.url, 'engine': 'ollama'})).json()
        await user.open('/models')
        await user.should_see('llama3.2:latest')
        await user.should_see('Ollama')

        engine.config.fault, engine.config.fault_scope = 'refuse', 'all'
        for _ in range(2):  # two failed checks in a row take it out
            await admin_api.post(f'/api/admin/backends/{backend["id"]}/refresh')
        await user.open('/models')
        await user.should_see(marker='models-empty')
        await user.should_see('No models are available right now')


async def test_an_empty_cluster_gets_a_friendly_empty_state(people: Database, user: User) -> None:
    await user.open('/models')  # no API lifespan here: the list comes from the database alone
    await user.should_see(marker='models-empty')
    await user.should_see('0 models', marker='model-count')


async def test_a_long_list_comes_in_pages(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, user: User) -> None:
    many = [f'org/model-{number:02d}' for number in range(30)]
    async with SimServer('vllm', SimConfig(models=many)) as engine:
        response = await admin_api.post('/api/admin/backends/register',
                                        json={'name': 'big', 'url': engine.url, 'engine': 'vllm'})
        assert response.status_code == 201, response.text
        await user.open('/models')
        await user.should_see('30 models')
        assert cards(user) == 24
        await user.should_not_see('org/model-29')

        with user:
            (pager,) = user.find(marker='model-pager').elements
            pager.set_value(2)
        await user.should_see('org/model-29')
        assert cards(user) == 6
        await settled()
