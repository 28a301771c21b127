"""Telemetry history: samples from the poller's readings (a backend gets only its own GPUs), a node's series and
its buckets, JSON and CSV exports that agree, retention, and the errors."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, insert, select

from core.db import Database
from core.models import Backend, BackendSample, GpuSample, utcnow
from core.models.telemetry import GPU_FIGURES
from core.telemetry.history import TelemetryRecorder
from sim.server import SimServer
from sim.sidecar import SidecarConfig, SidecarSim, gpu_reading

KEY = 'node-secret-4f7a'
T0 = 1_750_000_000.0  # the sidecar's frozen clock
BASE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # sample times: on a minute, so 30 s buckets split cleanly
HISTORY = '/api/admin/telemetry/nodes/{}/history'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'NODE_POLL_INTERVAL': '3600', 'TELEMETRY_SAMPLE_INTERVAL': '3600'}  # tests sample when they want


@dataclass
class Cluster:
    node_id: int
    backend_id: int
    sidecar: SidecarSim
    app: FastAPI

    @property
    def recorder(self) -> TelemetryRecorder:
        recorder: TelemetryRecorder = self.app.state.telemetry
        return recorder

    async def sample_at(self, sidecar_time: float, at: datetime) -> None:
        """Poll the node with the sidecar's clock at `sidecar_time`, then record a sample taken at `at`."""
        self.sidecar.config.time_s = sidecar_time
        await self.app.state.node_poller.poll(self.node_id)
        await self.recorder.sample_now(at=at)


@pytest.fixture
async def cluster(app: FastAPI, admin: httpx.AsyncClient) -> AsyncIterator[Cluster]:
    """A 4-GPU node, and an Ollama backend on its GPUs 1 and 2."""
    async with SidecarSim(SidecarConfig(gpus=4, key=KEY, time_s=T0)) as sidecar, SimServer('ollama') as engine:
        node = await admin.post('/api/admin/nodes/register', json={
            'name': 'gpu1', 'hostname': 'gpu1.example.edu', 'sidecar_url': sidecar.url, 'sidecar_key': KEY})
        assert node.status_code == 201, node.text
        backend = await admin.post('/api/admin/backends/register', json={
            'name': 'half', 'url': engine.url, 'engine': 'ollama', 'node_id': node.json()['id'],
            'gpu_indices': [1, 2]})
        assert backend.status_code == 201, backend.text
        yield Cluster(node_id=node.json()['id'], backend_id=backend.json()['id'], sidecar=sidecar, app=app)


def reading(cluster: Cluster, index: int, t: float = T0) -> dict[str, Any]:
    return gpu_reading(cluster.sidecar.config, index, t)


def window(start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    return {'since': start.isoformat(), 'until': end.isoformat(), **extra}


async def test_a_sample_writes_one_row_per_gpu_and_one_per_backend_with_its_own_gpus(
        cluster: Cluster, database: Database) -> None:
    counts = await cluster.recorder.sample_now(at=BASE)
    assert (counts.gpus, counts.backends) == (4, 1)

    async with database.connect() as conn:
        gpus = (await conn.execute(select(GpuSample).order_by(GpuSample.__table__.c.gpu_index))).mappings().all()
        backend = (await conn.execute(select(BackendSample))).mappings().one()
    assert [gpu['gpu_index'] for gpu in gpus] == [0, 1, 2, 3]
    for gpu in gpus:
        assert gpu['node_id'] == cluster.node_id and gpu['taken_at'] == BASE
        expected = reading(cluster, gpu['gpu_index'])
        for name in GPU_FIGURES:
            assert gpu[name] == pytest.approx(expected[name], rel=1e-6), name  # MariaDB FLOAT: single precision

    own = [reading(cluster, 1), reading(cluster, 2)]
    assert backend['backend_id'] == cluster.backend_id and backend['taken_at'] == BASE
    assert (backend['in_flight'], backend['max_concurrent'], backend['healthy']) == (0, 4, True)
    assert backend['memory_used_gb'] == pytest.approx(sum(g['memory_used_gb'] for g in own), abs=0.01)
    assert backend['memory_total_gb'] == pytest.approx(sum(g['memory_total_gb'] for g in own), abs=0.01)
    assert backend['power_draw_watts'] == pytest.approx(sum(g['power_draw_watts'] for g in own), abs=0.1)
    assert backend['utilization_gpu'] == pytest.approx(sum(g['utilization_gpu'] for g in own) / 2, abs=0.1)


async def test_an_offline_node_writes_no_gpu_rows_but_its_backend_is_still_sampled(cluster: Cluster) -> None:
    cluster.sidecar.config.fault = 'garbage'
    await cluster.app.state.node_poller.poll(cluster.node_id)
    counts = await cluster.recorder.sample_now()
    assert (counts.gpus, counts.backends) == (0, 1)


async def test_history_gives_each_gpu_its_series_and_averages_buckets(cluster: Cluster,
                                                                      admin: httpx.AsyncClient) -> None:
    times = [T0 + 37 * k for k in range(4)]  # readings that differ from one sample to the next
    for k, t in enumerate(times):
        await cluster.sample_at(t, BASE + timedelta(seconds=15 * k))

    raw = await admin.get(HISTORY.format(cluster.node_id), params=window(BASE, BASE + timedelta(minutes=1)))
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body['node_name'] == 'gpu1' and body['step'] is None
    assert [gpu['gpu_index'] for gpu in body['gpus']] == [0, 1, 2, 3]
    gpu2 = body['gpus'][2]['points']
    assert [p['taken_at'] for p in gpu2] == [(BASE + timedelta(seconds=15 * k)).isoformat() for k in range(4)]
    assert [p['memory_used_gb'] for p in gpu2] == [reading(cluster, 2, t)['memory_used_gb'] for t in times]
    first = body['node'][0]
    assert first['gpu_count'] == 4 and first['memory_used_gb'] == pytest.approx(
        sum(reading(cluster, i)['memory_used_gb'] for i in range(4)), abs=0.01)

    bucketed = (await admin.get(HISTORY.format(cluster.node_id),
                                params=window(BASE, BASE + timedelta(minutes=1), step=30))).json()
    points = bucketed['gpus'][2]['points']
    assert bucketed['step'] == 30
    assert [(p['taken_at'], p['samples']) for p in points] == [
        (BASE.isoformat(), 2), ((BASE + timedelta(seconds=30)).isoformat(), 2)]
    for point, pair in zip(points, (times[:2], times[2:]), strict=True):
        for name in ('utilization_gpu', 'power_draw_watts', 'clock_sm_mhz'):
            assert point[name] == pytest.approx(sum(reading(cluster, 2, t)[name] for t in pair) / 2, abs=0.01)

    later = (await admin.get(HISTORY.format(cluster.node_id),
                             params=window(BASE + timedelta(seconds=30), BASE + timedelta(minutes=1)))).json()
    assert len(later['gpus'][0]['points']) == 2  # since is inclusive, until exclusive


async def test_history_defaults_to_the_last_hour(cluster: Cluster, admin: httpx.AsyncClient) -> None:
    await cluster.recorder.sample_now()
    await cluster.recorder.sample_now(at=utcnow() - timedelta(hours=2))
    body = (await admin.get(HISTORY.format(cluster.node_id))).json()
    assert [len(gpu['points']) for gpu in body['gpus']] == [1, 1, 1, 1]


@pytest.mark.parametrize('kind', ['gpu', 'backend'])
async def test_json_and_csv_exports_agree(cluster: Cluster, admin: httpx.AsyncClient, kind: str) -> None:
    await cluster.sample_at(T0, BASE)
    await cluster.sample_at(T0 + 50, BASE + timedelta(seconds=30))
    params = window(BASE, BASE + timedelta(minutes=5), kind=kind)

    as_json = await admin.get('/api/admin/telemetry/export', params={**params, 'format': 'json'})
    as_csv = await admin.get('/api/admin/telemetry/export', params={**params, 'format': 'csv'})
    assert as_json.status_code == as_csv.status_code == 200, as_json.text + as_csv.text
    assert as_csv.headers['content-type'].startswith('text/csv')
    assert as_csv.headers['content-disposition'].startswith('attachment; filename="mindrouter-')

    rows = as_json.json()
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == len(table) == (8 if kind == 'gpu' else 2)
    assert list(table[0]) == list(rows[0])  # the same columns, in the same order
    for row, line in zip(rows, table, strict=True):
        for name, value in row.items():
            if isinstance(value, bool):
                assert line[name] == str(value).lower()
            elif isinstance(value, int | float):
                assert float(line[name]) == value, name
            else:
                assert line[name] == ('' if value is None else value), name
    assert rows[0]['taken_at'] == BASE.isoformat()
    assert rows[0]['node_name' if kind == 'gpu' else 'backend_name'] == ('gpu1' if kind == 'gpu' else 'half')


async def test_retention_deletes_old_rows_only(cluster: Cluster, database: Database) -> None:
    old = utcnow().replace(microsecond=0) - timedelta(days=31)
    async with database.connect() as conn:
        await conn.execute(insert(GpuSample), [{'node_id': cluster.node_id, 'gpu_index': i, 'taken_at': old}
                                               for i in range(4)])
        await conn.execute(insert(BackendSample), [{'backend_id': cluster.backend_id, 'taken_at': old,
                                                    'in_flight': 0, 'max_concurrent': 4, 'healthy': True}])
        await conn.commit()
    await cluster.recorder.sample_now(at=utcnow() - timedelta(days=29))

    assert await cluster.recorder.prune() == 5

    async with database.connect() as conn:
        gpu_times = set((await conn.execute(select(GpuSample.taken_at))).scalars())
        backends = (await conn.execute(select(func.count()).select_from(BackendSample))).scalar_one()
    assert len(gpu_times) == 1 and old not in gpu_times and backends == 1


async def test_deleting_a_backend_deletes_its_samples(cluster: Cluster, database: Database) -> None:
    await cluster.recorder.sample_now()
    async with database.connect() as conn:
        await conn.execute(delete(Backend))
        await conn.commit()
        left = (await conn.execute(select(func.count()).select_from(BackendSample))).scalar_one()
    assert left == 0


async def test_the_overview_shows_nodes_backends_and_totals(cluster: Cluster, admin: httpx.AsyncClient) -> None:
    response = await admin.get('/api/admin/telemetry/overview')
    assert response.status_code == 200, response.text
    body = response.json()
    node, backend, totals = body['nodes'][0], body['backends'][0], body['totals']
    assert (node['name'], node['status'], node['gpu_count'], node['summary']['gpu_count']) == ('gpu1', 'online', 4, 4)
    assert (backend['name'], backend['status'], backend['in_flight'], backend['max_concurrent']) == (
        'half', 'healthy', 0, 4)
    assert backend['gpu']['gpu_count'] == 2
    assert backend['gpu']['memory_used_gb'] == pytest.approx(
        reading(cluster, 1)['memory_used_gb'] + reading(cluster, 2)['memory_used_gb'], abs=0.02)
    assert totals['gpus'] == 4 and totals['nodes_online'] == 1 and totals['backends_healthy'] == 1
    assert totals['memory_total_gb'] == pytest.approx(4 * 79.65, abs=0.02)
    assert totals['power_draw_watts'] == node['summary']['power_draw_watts']


async def test_an_unknown_node_is_404_in_the_openai_envelope(admin: httpx.AsyncClient) -> None:
    response = await admin.get(HISTORY.format(999))
    assert response.status_code == 404
    assert response.json()['error']['code'] == 'node_not_found'
    assert response.json()['error']['type'] == 'not_found_error'


@pytest.mark.parametrize(('path', 'params', 'param'), [
    ('/api/admin/telemetry/export', {'format': 'xml'}, 'format'),
    ('/api/admin/telemetry/export', {'kind': 'cpu'}, 'kind'),
    ('/api/admin/telemetry/export', {'since': 'yesterday'}, 'since'),
    ('/api/admin/telemetry/export', {'until': '2026-13-01'}, 'until'),
    ('/api/admin/telemetry/export', {'since': '2026-01-02T00:00:00Z', 'until': '2026-01-01T00:00:00Z'}, 'since'),
    (HISTORY.format(1), {'step': '0'}, 'step'),
    (HISTORY.format(1), {'step': 'soon'}, 'step'),
    (HISTORY.format(1), {'since': '2020-01-01T00:00:00Z', 'step': '1'}, 'step'),
])
async def test_bad_parameters_are_400_naming_the_parameter(cluster: Cluster, admin: httpx.AsyncClient, path: str,
                                                           params: dict[str, str], param: str) -> None:
    response = await admin.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()['error']['param'] == param


async def test_telemetry_is_for_admins_only(client: httpx.AsyncClient, alice_key: str) -> None:
    response = await client.get('/api/admin/telemetry/overview', headers={'X-API-Key': alice_key})
    assert response.status_code == 403


async def test_a_scheduled_tick_samples_and_prunes(cluster: Cluster, database: Database) -> None:
    await cluster.app.state.node_poller.poll(cluster.node_id)
    async with database.connect() as conn:
        await conn.execute(insert(BackendSample), [{'backend_id': cluster.backend_id, 'in_flight': 0,
                                                    'taken_at': utcnow() - timedelta(days=400),
                                                    'max_concurrent': 1, 'healthy': True}])
        await conn.commit()

    await cluster.recorder.tick()
    async with database.connect() as conn:
        taken = list((await conn.execute(select(BackendSample.taken_at))).scalars())
        gpus = (await conn.execute(select(func.count()).select_from(GpuSample))).scalar_one()
    assert len(taken) == 1 and utcnow() - taken[0] < timedelta(minutes=1)  # the new one; the old one pruned
    assert gpus == 4
