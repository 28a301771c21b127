"""An admin looks after the GPU nodes in the console: registers one with its sidecar (a simulated one here),
watches its GPUs' charts move, looks back over stored history, exports it, polls and removes the node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.testing import User
from sqlmodel import col, select

from core.config import reset_settings
from core.db import Database
from core.models import AdminAction
from sim.sidecar import SidecarConfig, SidecarSim
from tests.ui.conftest import ADMIN, STUDENT, log_in

KEY = 'sidecar-secret-71b3'


@pytest.fixture(autouse=True)
def fast_polls(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway polls every sidecar several times a second, so the charts have new readings to show."""
    monkeypatch.setenv('NODE_POLL_INTERVAL', '0.5')
    reset_settings()


@pytest.fixture
async def sidecar() -> AsyncIterator[SidecarSim]:
    async with SidecarSim(SidecarConfig(gpus=2, key=KEY, period_s=20.0)) as node:
        yield node


async def sign_in(user: User) -> None:
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-logout', retries=50)  # the password check takes a moment


async def register_from_the_page(user: User, sidecar: SidecarSim, *, name: str = 'gpu1', key: str = KEY) -> None:
    await user.open('/admin/nodes')
    user.find(marker='node-name').type(name)
    user.find(marker='node-url').type(sidecar.url)
    user.find(marker='node-key').type(key)
    user.find(marker='node-submit').click()


async def logged_actions(database: Database) -> list[AdminAction]:
    async with database.session() as session:
        return list(await session.exec(select(AdminAction).order_by(col(AdminAction.id))))


async def eventually(condition: Callable[[], bool], *, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds * 10)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def field_error(user: User, marker: str) -> str:
    """The message shown under a form field, once the submit handler has run."""
    for _ in range(50):
        error = user.find(marker=marker).elements.pop().error
        if error:
            return str(error)
        await asyncio.sleep(0.1)
    return ''


def charts(user: User) -> list[ui.plotly]:
    return [element for element in user.find(ui.plotly).elements if isinstance(element, ui.plotly)]


async def test_an_admin_registers_a_node_and_watches_its_gpus_live(people: Database, live: FastAPI,
                                                                   sidecar: SidecarSim, user: User) -> None:
    await sign_in(user)
    await register_from_the_page(user, sidecar)
    await user.should_see('Node gpu1 registered (online, 2 GPUs).', retries=50)
    await user.should_see(marker='node-1', retries=30)
    await user.should_see(marker='gpu-1-0', retries=30)
    await user.should_see(marker='gpu-1-1')
    await user.should_see('CUDA 12.4')
    assert user.find(marker='node-1-status').elements.pop().text == 'online'

    plots = charts(user)
    assert len(plots) == 2  # one figure per GPU, four panels in it
    before = len(plots[0].figure['data'][0]['x'])
    # The page's timer takes each new reading the poller stored, in place: the same element, more points.
    assert await eventually(lambda: len(plots[0].figure['data'][0]['x']) >= before + 2, seconds=8)
    assert set(charts(user)) == set(plots)
    figure = plots[0].figure
    assert all(len(trace['x']) == len(trace['y']) == len(figure['data'][0]['x']) for trace in figure['data'])
    assert 0 <= figure['data'][0]['y'][-1] <= 100  # utilisation %
    assert figure['data'][2]['y'][-1] == pytest.approx(79.65)  # memory total of a simulated H100

    assert figure['layout']['template'] == 'plotly_white'
    user.find(marker='theme-toggle').click()  # the charts follow the theme, in place
    assert await eventually(lambda: figure['layout']['template'] == 'plotly_dark')

    entry = (await logged_actions(people))[-1]
    assert (entry.action, entry.actor, entry.via, entry.target) == ('node.register', 'root', 'console', 'node 1 (gpu1)')
    assert KEY not in str(entry.after)


async def test_wrong_input_is_explained_next_to_the_field(people: Database, live: FastAPI, sidecar: SidecarSim,
                                                          user: User) -> None:
    await sign_in(user)
    await user.open('/admin/nodes')
    user.find(marker='node-url').type('gpu1:8007')
    user.find(marker='node-submit').click()
    assert await field_error(user, 'node-name') == 'Required'
    assert 'http(s) URL' in await field_error(user, 'node-url')
    assert await field_error(user, 'node-key') == 'Required'

    await register_from_the_page(user, sidecar)
    await user.should_see(marker='node-1', retries=50)
    await register_from_the_page(user, sidecar)  # the same name and sidecar again
    assert 'already registered' in await field_error(user, 'node-name')
    assert [entry.action for entry in await logged_actions(people)] == ['node.register']


async def test_a_wrong_key_shows_the_node_offline_with_the_reason(people: Database, live: FastAPI,
                                                                  sidecar: SidecarSim, user: User) -> None:
    await sign_in(user)
    await register_from_the_page(user, sidecar, key='not-the-key')
    await user.should_see(marker='node-1', retries=50)
    await user.should_see('refused the key', retries=30)
    assert user.find(marker='node-1-status').elements.pop().text == 'offline'
    await user.should_not_see(marker='gpu-1-0')


async def test_history_ranges_and_the_csv_export(people: Database, live: FastAPI, sidecar: SidecarSim,
                                                 user: User) -> None:
    await sign_in(user)
    await register_from_the_page(user, sidecar)
    await user.should_see(marker='gpu-1-1', retries=50)
    await live.state.telemetry.sample_now()  # one stored sample of every GPU, as the recorder writes them

    plot = charts(user)[0]
    user.find(marker='nodes-range').elements.pop().value = '1h'
    assert await eventually(lambda: len(plot.figure['data'][0]['x']) == 1)  # the stored sample, in its bucket

    user.find(marker='nodes-export').click()
    download = await user.download.next(timeout=5)
    lines = download.text.splitlines()
    assert lines[0].startswith('taken_at,node_id,node_name,gpu_index,utilization_gpu')
    assert len(lines) == 3 and all(',gpu1,' in line for line in lines[1:])

    user.find(marker='nodes-range').elements.pop().value = 'live'
    assert await eventually(lambda: len(plot.figure['data'][0]['x']) > 1)  # the live window kept filling meanwhile


async def test_polling_and_removing_a_node(people: Database, live: FastAPI, admin_api: httpx.AsyncClient,
                                           sidecar: SidecarSim, user: User) -> None:
    await sign_in(user)
    await register_from_the_page(user, sidecar)
    await user.should_see(marker='node-1', retries=50)
    user.find(marker='node-1-refresh').click()
    await user.should_see('Node gpu1: online.', retries=30)

    # A backend on the node keeps it from being removed: the console says why.
    refused = await admin_api.post('/api/admin/backends/register', json={
        'name': 'on-gpu1', 'url': 'http://127.0.0.1:9', 'engine': 'vllm', 'node_id': 1, 'gpu_indices': [1]})
    assert refused.status_code == 201
    await user.should_see('on-gpu1 (GPU 1)', retries=40)
    user.find(marker='node-1-remove').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('still has backends', retries=30)

    await admin_api.patch('/api/admin/backends/1', json={'node_id': None, 'gpu_indices': None})
    user.find(marker='node-1-remove').click()
    await user.should_see(marker='confirm-cancel')
    user.find(marker='confirm-cancel').click()
    await user.should_see(marker='node-1')  # "no" leaves it
    user.find(marker='node-1-remove').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('Node gpu1 removed.', retries=30)
    await user.should_not_see(marker='node-1')
    await user.should_see(marker='nodes-empty')

    console = [(e.action, e.via) for e in await logged_actions(people) if e.action.startswith('node.')]
    assert console == [('node.register', 'console'), ('node.refresh', 'console'), ('node.delete', 'console')]


async def test_a_student_is_refused(people: Database, user: User) -> None:
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=50)
    assert (await user.http_client.get('/admin/nodes')).status_code == 403
