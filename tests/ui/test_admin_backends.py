"""An admin runs the backends from the console: registers one (a simulated engine here), edits it, drains it
while a request runs and watches the drain finish, disables and enables it, pulls and deletes an Ollama model.
Every change lands in the admin log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.testing import User
from sqlmodel import col, select

from core import runtime
from core.config import reset_settings
from core.db import Database
from core.models import AdminAction, BackendBase, BackendStatus, Role
from core.models import User as Account
from core.registry import store
from core.registry.capacity import CapacityAdvice
from sim.server import SimServer
from tests.ui.conftest import ADMIN, STUDENT, log_in


@pytest.fixture(autouse=True)
def quick_registry(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker sees a status change within 0.2 s, so a drain finishes that soon after its last request."""
    monkeypatch.setenv('REGISTRY_RELOAD_INTERVAL', '0.2')
    reset_settings()


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama') as sim:
        yield sim


async def sign_in(user: User) -> None:
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-logout', retries=50)  # the password check takes a moment


async def eventually(condition: Callable[[], bool], *, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds * 10)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def text(user: User, marker: str) -> str:
    element = user.find(marker=marker).elements.pop()
    return str(getattr(element, 'text', ''))


async def field_error(user: User, marker: str) -> str:
    """The message shown under a form field, once the submit handler has run."""
    field = user.find(marker=marker).elements.pop()
    await eventually(lambda: bool(getattr(field, 'error', None)))
    return str(getattr(field, 'error', None) or '')


async def logged_actions(database: Database) -> list[str]:
    async with database.session() as session:
        return [entry.action for entry in await session.exec(select(AdminAction).order_by(col(AdminAction.id)))]


async def register_from_the_page(user: User, name: str, url: str) -> None:
    user.find(marker='backend-name').type(name)
    user.find(marker='backend-url').type(url)
    user.find(marker='backend-submit').click()


async def test_an_admin_registers_a_backend_and_sees_it_healthy(people: Database, live: FastAPI, engine: SimServer,
                                                                user: User) -> None:
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backends-empty', retries=20)
    await register_from_the_page(user, 'gpu-a', engine.url)
    await user.should_see('Backend gpu-a registered: healthy.', retries=50)
    await user.should_see(marker='backend-1')
    assert text(user, 'backend-1-status') == 'healthy'
    assert text(user, 'backend-1-models') == '3'  # the simulated Ollama's catalogue
    assert text(user, 'backend-1-max') == '4' and text(user, 'backend-1-inflight') == '0'
    await user.should_not_see(marker='backends-empty')
    assert await logged_actions(people) == ['backend.register']


async def test_a_drain_shows_the_requests_finishing_then_the_row_turns_disabled(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    assert (await admin_api.post('/api/admin/backends/register',
                                 json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})).status_code == 201
    services = runtime.current()
    assert services is not None
    model = services.registry.resolve('llama3.2')
    assert model is not None
    slot = await services.scheduler.acquire(model)  # a request running on it
    try:
        await sign_in(user)
        await user.open('/admin/backends')
        await user.should_see(marker='backend-1', retries=20)
        badge = user.find(marker='backend-1-status').elements.pop()
        assert await eventually(lambda: text(user, 'backend-1-inflight') == '1')

        user.find(marker='backend-1-drain').click()
        await user.should_see('draining: 1 request still in flight', retries=30)
        assert badge.text == 'draining'
        await asyncio.sleep(1.0)  # drain jobs run meanwhile: nothing finishes while the request runs
        assert badge.text == 'draining'
    finally:
        slot.release()
    assert await eventually(lambda: badge.text == 'disabled')  # the same element: updated in place
    await user.should_not_see('draining:')
    assert set(user.find(marker='backend-1-status').elements) == {badge}
    await user.should_see(marker='backend-1-enable')
    await user.should_not_see(marker='backend-1-drain')
    assert await logged_actions(people) == ['backend.register', 'backend.drain']


async def test_disable_asks_first_and_enable_brings_it_back(people: Database, live: FastAPI,
                                                            admin_api: httpx.AsyncClient, engine: SimServer,
                                                            user: User) -> None:
    await admin_api.post('/api/admin/backends/register', json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-1', retries=20)
    user.find(marker='backend-1-disable').click()
    await user.should_see(marker='confirm-cancel')
    user.find(marker='confirm-cancel').click()
    await user.should_not_see(marker='confirm-cancel')
    assert text(user, 'backend-1-status') == 'healthy'

    user.find(marker='backend-1-disable').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('gpu-a: disabled.', retries=30)
    user.find(marker='backend-1-enable').click()
    await user.should_see('gpu-a: healthy.', retries=30)
    user.find(marker='backend-1-refresh').click()
    await user.should_see('gpu-a: checked, healthy.', retries=30)
    assert await logged_actions(people) == ['backend.register', 'backend.disable', 'backend.enable',
                                            'backend.refresh']


async def test_an_edit_changes_the_row_and_bad_values_are_explained(people: Database, live: FastAPI,
                                                                    admin_api: httpx.AsyncClient, engine: SimServer,
                                                                    user: User) -> None:
    await admin_api.post('/api/admin/backends/register', json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-1', retries=20)
    user.find(marker='backend-1-edit').click()
    await user.should_see('Edit gpu-a')
    user.find(marker='edit-gpus').type('0')  # GPUs need a node: the service says so at the field
    user.find(marker='edit-save').click()
    assert 'needs a node' in await field_error(user, 'edit-gpus')

    user.find(marker='edit-gpus').clear()
    user.find(marker='edit-max').clear().type('8')
    user.find(marker='edit-priority').clear().type('2')
    user.find(marker='edit-save').click()
    await user.should_see('gpu-a saved.', retries=30)
    assert await eventually(lambda: text(user, 'backend-1-max') == '8' and text(user, 'backend-1-priority') == '2')

    async with people.session() as session:
        entry = (await session.exec(select(AdminAction).where(AdminAction.action == 'backend.update'))).one()
    assert entry.before == {'max_concurrent': 4, 'priority': 0} and entry.after == {'max_concurrent': 8, 'priority': 2}
    assert entry.via == 'console' and entry.actor == ADMIN[0]


async def test_wrong_registrations_are_explained_next_to_the_field(people: Database, live: FastAPI,
                                                                   engine: SimServer, user: User) -> None:
    await sign_in(user)
    await user.open('/admin/backends')
    user.find(marker='backend-url').type('gpu1:11434')
    user.find(marker='backend-gpus').type('0,x')
    user.find(marker='backend-max').clear().type('0')
    user.find(marker='backend-submit').click()
    assert await field_error(user, 'backend-name') == 'Required'
    assert 'http(s) URL' in await field_error(user, 'backend-url')
    assert 'separated by commas' in await field_error(user, 'backend-gpus')
    assert 'from 1 to 4096' in await field_error(user, 'backend-max')

    for marker in ('backend-url', 'backend-gpus', 'backend-max'):
        user.find(marker=marker).clear()
    user.find(marker='backend-max').type('4')
    user.find(marker='backend-gpus').type('0')
    await register_from_the_page(user, 'gpu-a', engine.url)
    assert 'needs a node' in await field_error(user, 'backend-gpus')  # the service's own rule

    user.find(marker='backend-gpus').clear()
    user.find(marker='backend-name').clear()
    user.find(marker='backend-url').clear()
    await register_from_the_page(user, 'gpu-a', engine.url)
    await user.should_see(marker='backend-1', retries=50)
    await register_from_the_page(user, 'gpu-a', 'http://127.0.0.1:9')
    assert 'already registered' in await field_error(user, 'backend-name')
    assert await logged_actions(people) == ['backend.register']


async def test_an_ollama_model_is_pulled_with_progress_and_deleted_after_a_confirmation(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await admin_api.post('/api/admin/backends/register', json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-1', retries=20)
    user.find(marker='backend-1-pull').click()
    await user.should_see('Pull a model onto gpu-a')  # the dialog opens once the account is checked
    user.find(marker='pull-model').type('gemma3:1b')
    user.find(marker='pull-start').click()
    await user.should_see('gemma3:1b pulled; the model list is refreshed.', retries=50)
    assert user.find(kind=ui.linear_progress).elements.pop().value == 1
    assert await eventually(lambda: text(user, 'backend-1-models') == '4')

    user.find(marker='backend-1-delete').click()  # the dialog opens once the account is checked
    assert await eventually(lambda: 'gemma3:1b' in user.find(marker='delete-model').elements.pop().options)
    user.find(marker='delete-model').elements.pop().value = 'gemma3:1b'
    user.find(marker='delete-start').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('gemma3:1b deleted from gpu-a.', retries=30)
    assert text(user, 'backend-1-models') == '3'
    assert await logged_actions(people) == ['backend.register', 'backend.model_pull', 'backend.model_delete']


async def test_a_backend_is_deleted_after_a_confirmation_once_nothing_runs_on_it(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await admin_api.post('/api/admin/backends/register', json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    services = runtime.current()
    assert services is not None
    model = services.registry.resolve('llama3.2')
    assert model is not None
    slot = await services.scheduler.acquire(model)  # a request running on it
    try:
        await sign_in(user)
        await user.open('/admin/backends')
        await user.should_see(marker='backend-1', retries=20)
        user.find(marker='backend-1-remove').click()
        await user.should_see('Delete backend gpu-a?')
        user.find(marker='confirm-ok').click()
        await user.should_see('gpu-a has 1 request in flight; drain it first', retries=30)
        await user.should_see(marker='backend-1')
    finally:
        slot.release()

    user.find(marker='backend-1-remove').click()
    await user.should_see(marker='confirm-cancel')
    user.find(marker='confirm-cancel').click()
    await user.should_not_see(marker='confirm-cancel')
    await user.should_see(marker='backend-1')

    user.find(marker='backend-1-remove').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('Backend gpu-a deleted.', retries=30)
    await user.should_not_see(marker='backend-1')
    await user.should_see(marker='backends-empty')
    assert services.registry.backend(1) is None  # out of routing in this process at once
    assert (await admin_api.get('/api/admin/backends')).json() == []
    assert await logged_actions(people) == ['backend.register', 'backend.delete']


async def test_deleting_a_backend_checks_the_admin_again(people: Database, live: FastAPI,
                                                        admin_api: httpx.AsyncClient, user: User) -> None:
    await admin_api.post('/api/admin/backends/register',
                         json={'name': 'typo', 'url': 'http://127.0.0.1:9', 'engine': 'ollama'})
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-1', retries=20)
    async with people.session() as session:  # demoted while the page is open
        account = (await session.exec(select(Account).where(Account.username == ADMIN[0]))).one()
        account.role_id = (await session.exec(select(Role.id).where(Role.name == 'student'))).one()
        await session.commit()
    with contextlib.suppress(AssertionError):  # the page's one-second refresh may have withdrawn it already
        user.find(marker='backend-1-remove').click()
    await user.should_see(marker='admin-refused', retries=30)  # components/admin_guard.py
    await user.should_not_see(marker='confirm-ok')
    async with people.session() as session:
        assert [backend.name for backend, _ in await store.list_backends(session)] == ['typo']
    assert await logged_actions(people) == ['backend.register']


async def test_a_vllm_backend_offers_no_model_management(people: Database, live: FastAPI,
                                                         admin_api: httpx.AsyncClient, user: User) -> None:
    async with SimServer('vllm') as vllm:
        await admin_api.post('/api/admin/backends/register', json={'name': 'v', 'url': vllm.url, 'engine': 'vllm'})
        await sign_in(user)
        await user.open('/admin/backends')
        await user.should_see(marker='backend-1', retries=20)
        await user.should_see(marker='backend-1-drain')
        await user.should_not_see(marker='backend-1-pull')
        await user.should_not_see(marker='backend-1-delete')


async def test_fifty_backends_are_all_listed_and_kept_current(people: Database, live: FastAPI, user: User) -> None:
    async with people.session() as session:
        for port in range(1, 51):  # registered elsewhere, never checked: nothing answers on these ports
            await store.create_backend(session, data=BackendBase(name=f'b{port:02d}', url=f'http://127.0.0.1:{port}',
                                                                 engine='vllm' if port % 2 else 'ollama'))
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-50', retries=30)
    assert len(user.find(kind=ui.badge).elements) == 50  # one status badge a row
    async with people.session() as session:
        await store.set_status(session, backend_id=50, status=BackendStatus.disabled)
    assert await eventually(lambda: text(user, 'backend-50-status') == 'disabled')


async def test_a_student_is_refused(people: Database, user: User) -> None:
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=50)
    assert (await user.http_client.get('/admin/backends')).status_code == 403


async def hidden_queue_seen(people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer) -> None:
    """A backend registered with 4 while the monitor has evidence that its engine runs 2 at once."""
    assert (await admin_api.post('/api/admin/backends/register',
                                 json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})).status_code == 201
    advice = CapacityAdvice(suggested=2, registered=4, signal='ollama_queue_time', observed_at=time.time(),
                            evidence='5 of the last 12 answers waited inside Ollama for a slot')
    async with people.session() as session:
        await store.record_capacity_advice(session, backend_id=1, advice=advice)


async def test_a_hidden_engine_queue_shows_on_its_row_and_is_fixed_in_one_click(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await hidden_queue_seen(people, live, admin_api, engine)
    await sign_in(user)
    await user.open('/admin/backends')
    await user.should_see(marker='backend-1-advice-text', retries=20)
    assert '5 of the last 12 answers waited inside Ollama' in text(user, 'backend-1-advice-text')
    user.find(marker='backend-1-advice-apply').click()
    await user.should_see('gpu-a: max_concurrent is now 2.', retries=30)
    assert await eventually(lambda: text(user, 'backend-1-max') == '2')
    await user.should_not_see(marker='backend-1-advice-text')
    assert await logged_actions(people) == ['backend.register', 'backend.apply_capacity_advice']


async def test_every_admin_page_warns_of_a_hidden_engine_queue(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await hidden_queue_seen(people, live, admin_api, engine)
    await sign_in(user)
    await user.open('/admin/users')
    await user.should_see(marker='capacity-banner-1', retries=30)
    await user.should_see('max_concurrent is 4, the evidence supports 2')
    user.find(marker='capacity-banner-1-apply').click()
    await user.should_see('gpu-a: max_concurrent is now 2.', retries=30)
    await user.should_not_see(marker='capacity-banner-1', retries=30)
    async with people.session() as session:
        assert (await store.get_backend(session, backend_id=1)).max_concurrent == 2
