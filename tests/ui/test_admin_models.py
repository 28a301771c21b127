"""An admin looks at the model catalog on /admin/models and overrides a model's capabilities and context;
the running gateway routes by the override at once (/v1/models shows it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from nicegui.testing import User
from sqlmodel import col, select

from core.db import Database
from core.models import AdminAction
from sim.server import SimServer
from tests.ui.conftest import ADMIN

MODEL = 'llama3.2:latest'


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama') as sim:
        yield sim


@pytest.fixture
async def served(admin_api: httpx.AsyncClient, engine: SimServer) -> httpx.AsyncClient:
    """A backend registered (and its models discovered) the way an operator does it."""
    response = await admin_api.post('/api/admin/backends/register',
                                    json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    assert response.status_code == 201, response.text
    return admin_api


async def open_as_admin(user: User) -> None:
    await user.open('/login?redirect_to=/admin/models')
    user.find(marker='login-username').type(ADMIN[0])
    user.find(marker='login-password').type(ADMIN[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker=f'model-{MODEL}', retries=50)


async def v1_capabilities(api: httpx.AsyncClient) -> list[str]:
    models = {m['id']: m for m in (await api.get('/v1/models')).json()['data']}
    capabilities: list[str] = models[MODEL]['capabilities']
    return capabilities


async def test_the_catalog_shows_where_a_model_runs_and_its_context(
        people: Database, served: httpx.AsyncClient, user: User) -> None:
    await open_as_admin(user)
    await user.should_see('served by gpu-a (ollama, healthy)')
    await user.should_see(marker=f'context-{MODEL}')
    await user.should_see('discovered: completion')


async def test_a_capability_override_reaches_v1_models_at_once_and_can_be_undone(
        people: Database, served: httpx.AsyncClient, user: User) -> None:
    discovered = await v1_capabilities(served)
    assert 'vision' not in discovered
    await open_as_admin(user)
    user.find(marker=f'caps-{MODEL}').click()
    with user.scope(marker=f'model-{MODEL}'):
        user.find('vision').click()  # add vision to what was discovered
    user.find(marker=f'model-save-{MODEL}').click()
    await user.should_see(f'{MODEL} saved')
    await user.should_see(marker=f'overridden-{MODEL}')
    assert await v1_capabilities(served) == sorted({*discovered, 'vision'})

    user.find(marker=f'caps-reset-{MODEL}').click()
    await user.should_see(f'{MODEL}: discovered capabilities')
    await user.should_not_see(marker=f'overridden-{MODEL}')
    assert await v1_capabilities(served) == discovered

    async with people.session() as session:
        entries = list(await session.exec(select(AdminAction).where(col(AdminAction.action) == 'model.settings')))
    assert [(e.via, e.after) for e in entries] == [
        ('console', {'capabilities_override': [c for c in ('completion', 'tools', 'thinking', 'vision', 'embedding',
                                                           'rerank') if c in {*discovered, 'vision'}]}),
        ('console', {'capabilities_override': None})]


async def test_a_context_override_out_of_range_is_refused_inline(
        people: Database, served: httpx.AsyncClient, user: User) -> None:
    await open_as_admin(user)
    user.find(marker=f'ctx-{MODEL}').type('100')
    user.find(marker=f'model-save-{MODEL}').click()
    await user.should_see('Between 512 and')
    user.find(marker=f'ctx-{MODEL}').clear().type('8192')
    user.find(marker=f'model-save-{MODEL}').click()
    await user.should_see(f'{MODEL} saved')
    await user.should_see('requests get 8,192')
    model = {m['name']: m for m in (await served.get('/api/admin/models')).json()}[MODEL]
    assert model['context_length_override'] == 8192


async def test_an_admin_adds_an_alias_that_v1_models_lists_and_deletes_it(
        people: Database, served: httpx.AsyncClient, user: User) -> None:
    await open_as_admin(user)
    await user.should_see(marker='aliases-empty')
    user.find(marker='alias-name').type('claude-sonnet-4-5')
    user.find(marker='alias-target').click()
    with user.scope(marker='aliases'):
        user.find('qwen3:0.6b').click()
    user.find(marker='alias-add').click()
    await user.should_see('claude-sonnet-4-5 → qwen3:0.6b')
    await user.should_see(marker='alias-claude-sonnet-4-5')
    listed = {m['id']: m for m in (await served.get('/v1/models')).json()['data']}
    assert listed['claude-sonnet-4-5']['alias_for'] == 'qwen3:0.6b'

    user.find(marker='alias-name').type(MODEL)  # a served model's name: refused, it would shadow the model
    user.find(marker='alias-target').click()
    with user.scope(marker='aliases'):
        user.find('nomic-embed-text:latest').click()
    user.find(marker='alias-add').click()
    await user.should_see('may not shadow it')

    user.find(marker='alias-delete-claude-sonnet-4-5').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('claude-sonnet-4-5 deleted')
    await user.should_not_see(marker='alias-claude-sonnet-4-5')
    assert 'claude-sonnet-4-5' not in {m['id'] for m in (await served.get('/v1/models')).json()['data']}
    async with people.session() as session:
        entries = list(await session.exec(select(AdminAction).where(col(AdminAction.action).startswith('model_alias'))))
    assert [(e.action, e.via) for e in entries] == [('model_alias.set', 'console'), ('model_alias.delete', 'console')]
