"""GPU nodes: registered with their sidecar, polled once per node, figures split by each backend's GPUs,
and an offline node taking its backends out of rotation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from core.db import Database
from sim.server import SimServer
from sim.sidecar import SidecarConfig, SidecarSim

KEY = 'node-secret-4f7a'
CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 2}


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'NODE_POLL_INTERVAL': '3600'}  # the tests poll when they want to


@pytest.fixture
async def sidecar() -> AsyncIterator[SidecarSim]:
    async with SidecarSim(SidecarConfig(gpus=4, key=KEY, time_s=1_750_000_000.0)) as node:
        yield node


async def register_node(admin: httpx.AsyncClient, sidecar: SidecarSim, key: str = KEY) -> dict[str, Any]:
    response = await admin.post('/api/admin/nodes/register', json={
        'name': 'gpu1', 'hostname': 'gpu1.example.edu', 'sidecar_url': sidecar.url, 'sidecar_key': key})
    assert response.status_code == 201, response.text
    node: dict[str, Any] = response.json()
    return node


async def test_a_registered_node_is_polled_and_its_key_never_shows(admin: httpx.AsyncClient, sidecar: SidecarSim,
                                                                   database: Database) -> None:
    node = await register_node(admin, sidecar)
    assert node['status'] == 'online' and node['gpu_count'] == 4 and len(node['gpus']) == 4
    assert node['summary']['gpu_count'] == 4 and node['summary']['memory_total_gb'] > 0
    listing = await admin.get('/api/admin/nodes')
    assert KEY not in listing.text and KEY not in str(node)
    async with database.engine.connect() as conn:
        stored = (await conn.execute(text('SELECT sidecar_key_sealed FROM nodes'))).scalar_one()
    assert KEY not in stored and stored.startswith('v1:')


async def test_a_wrong_key_leaves_the_node_offline_with_the_reason(admin: httpx.AsyncClient,
                                                                   sidecar: SidecarSim) -> None:
    node = await register_node(admin, sidecar, key='not-the-key')
    assert node['status'] == 'offline' and 'key' in node['last_error']


async def test_backends_get_the_figures_of_their_own_gpus_and_the_node_is_polled_once(
        app: FastAPI, admin: httpx.AsyncClient, sidecar: SidecarSim) -> None:
    node = await register_node(admin, sidecar)
    gpus = {gpu['index']: gpu for gpu in node['gpus']}
    async with SimServer('ollama') as engine_a, SimServer('ollama') as engine_b, SimServer('ollama') as engine_c:
        for name, engine, indices in (('a', engine_a, [0, 1]), ('b', engine_b, [2, 3]), ('c', engine_c, None)):
            response = await admin.post('/api/admin/backends/register', json={
                'name': name, 'url': engine.url, 'engine': 'ollama', 'node_id': node['id'], 'gpu_indices': indices})
            assert response.status_code == 201, response.text
        backends = {b['name']: b for b in (await admin.get('/api/admin/backends')).json()}

    assert backends['a']['gpu']['gpu_count'] == 2 and backends['c']['gpu']['gpu_count'] == 4
    assert backends['a']['gpu']['memory_used_gb'] == pytest.approx(
        gpus[0]['memory_used_gb'] + gpus[1]['memory_used_gb'], abs=0.02)
    assert backends['b']['gpu']['power_draw_watts'] == pytest.approx(
        gpus[2]['power_draw_watts'] + gpus[3]['power_draw_watts'], abs=0.2)

    before = sidecar.stats.gpu_info
    await app.state.node_poller.poll_all()  # one interval's work: three backends, one node
    assert sidecar.stats.gpu_info == before + 1


@pytest.mark.parametrize(('placement', 'param'), [({'gpu_indices': [4]}, 'gpu_indices'),
                                                   ({'node_id': 999}, 'node_id')])
async def test_a_backend_cannot_use_gpus_its_node_does_not_have(admin: httpx.AsyncClient, sidecar: SidecarSim,
                                                                placement: dict[str, Any], param: str) -> None:
    node = await register_node(admin, sidecar)
    response = await admin.post('/api/admin/backends/register', json={
        'name': 'x', 'url': 'http://127.0.0.1:9', 'engine': 'ollama', 'node_id': node['id'], **placement})
    assert response.status_code == 400 and response.json()['error']['param'] == param
    assert (await admin.get('/api/admin/backends')).json() == []


async def test_an_offline_node_takes_its_backends_out_and_back_in(admin: httpx.AsyncClient,
                                                                 sidecar: SidecarSim) -> None:
    node = await register_node(admin, sidecar)
    async with SimServer('ollama') as engine:
        registered = await admin.post('/api/admin/backends/register', json={
            'name': 'a', 'url': engine.url, 'engine': 'ollama', 'node_id': node['id']})
        assert registered.status_code == 201
        assert (await admin.post('/v1/chat/completions', json=CHAT)).status_code == 200

        sidecar.config.fault = 'garbage'
        offline = (await admin.post(f'/api/admin/nodes/{node["id"]}/refresh')).json()
        assert offline['status'] == 'offline' and offline['last_error']
        assert (await admin.post('/v1/chat/completions', json=CHAT)).status_code == 503

        sidecar.config.fault = None
        assert (await admin.post(f'/api/admin/nodes/{node["id"]}/refresh')).json()['status'] == 'online'
        assert (await admin.post('/v1/chat/completions', json=CHAT)).status_code == 200

        refused = await admin.delete(f'/api/admin/nodes/{node["id"]}')
        assert refused.status_code == 409 and 'a' in refused.json()['error']['message']
        await admin.patch(f'/api/admin/backends/{registered.json()["id"]}', json={'node_id': None})
        assert (await admin.delete(f'/api/admin/nodes/{node["id"]}')).status_code == 204


async def test_the_log_says_once_that_a_node_went_offline_and_once_that_it_is_back(
        admin: httpx.AsyncClient, sidecar: SidecarSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger='mindrouter')
    node = await register_node(admin, sidecar)
    sidecar.config.fault = 'garbage'
    for _ in range(4):
        await admin.post(f'/api/admin/nodes/{node["id"]}/refresh')
    sidecar.config.fault = None
    for _ in range(3):
        await admin.post(f'/api/admin/nodes/{node["id"]}/refresh')

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == 'mindrouter.telemetry']
    assert [level for level, _ in lines] == ['INFO', 'WARNING', 'INFO']
    assert lines[0][1] == 'node gpu1 is online'
    assert lines[1][1].startswith('node gpu1 is offline: ')
    assert lines[2][1] == 'node gpu1 is online again'


async def test_every_gpu_reading_is_a_prometheus_gauge(admin: httpx.AsyncClient, sidecar: SidecarSim) -> None:
    node = await register_node(admin, sidecar)
    text_format = (await admin.get('/metrics')).text
    samples = {(s.name, s.labels.get('gpu')): s.value
               for family in text_string_to_metric_families(text_format) for s in family.samples
               if s.labels.get('node_id') == str(node['id'])}
    for gpu in node['gpus']:
        assert samples[('mindrouter_gpu_utilization_percent', str(gpu['index']))] == gpu['utilization_gpu']
        assert samples[('mindrouter_gpu_memory_total_gib', str(gpu['index']))] == gpu['memory_total_gb']
