"""Reading telemetry: the cluster now (from memory), a node's history (from gpu_samples, optionally averaged
into fixed buckets) and rows for export.

Bucketing is done here in Python rather than in SQL: epoch arithmetic on DATETIME differs between SQLite
(strftime) and MariaDB (UNIX_TIMESTAMP, which applies the session time zone), and one implementation is
easier to keep correct than two. The row caps keep a careless query from loading a month into memory.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.errors import InvalidRequest
from core.models import Backend, BackendSample, GpuSample, Node, NodeStatus, utcnow
from core.models.telemetry import BACKEND_FIGURES, GPU_FIGURES
from core.registry import nodes
from core.registry.view import RegistryView
from core.telemetry.poller import NodePoller
from core.telemetry.sidecar import summarize

HISTORY_SPAN = timedelta(hours=1)  # history without `since`
EXPORT_SPAN = timedelta(days=1)  # export without `since`
MAX_POINTS = 10_000  # buckets per GPU in one history answer
MAX_ROWS = 500_000  # rows one history or export request may read
EXPORT_KINDS = ('gpu', 'backend')

Row = dict[str, Any]


def parse_time(value: str | None, *, param: str) -> datetime | None:
    """An ISO 8601 time from a query parameter; a time without a zone is taken as UTC."""
    if value is None or value == '':
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(' ', '+'))  # an unencoded '+' in a URL arrives as ' '
    except ValueError:
        raise InvalidRequest(f'{param} must be an ISO 8601 time like 2026-01-31T12:00:00Z, not {value!r}',
                             param=param) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def window(since: str | None, until: str | None, *, default_span: timedelta,
           now: datetime | None = None) -> tuple[datetime, datetime]:
    """[since, until): `until` defaults to now, `since` to `default_span` before `until`."""
    end = parse_time(until, param='until') or (now or utcnow())
    start = parse_time(since, param='since') or end - default_span
    if start >= end:
        raise InvalidRequest('since must be before until', param='since')
    return start, end


def _round(value: float | None) -> float | None:
    # MariaDB FLOAT is single precision: 63.72 reads back as 63.720001220703125.
    return round(value, 3) if value is not None else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(sum(known) / len(known), 3) if known else None


def _total(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(sum(known), 3) if known else None


def bucket(points: Sequence[Row], step: int) -> list[Row]:
    """Average consecutive points (sorted by taken_at) into `step`-second buckets aligned to the Unix epoch,
    so the same bucket has the same edges whatever window asked for it. Nulls are left out of a mean."""
    groups: dict[int, list[Row]] = defaultdict(list)
    for point in points:
        stamp = int(point['taken_at'].timestamp())
        groups[stamp - stamp % step].append(point)
    return [{'taken_at': datetime.fromtimestamp(start, UTC), 'samples': len(group),
             **{name: _mean(point[name] for point in group) for name in GPU_FIGURES}}
            for start, group in sorted(groups.items())]


def node_series(per_gpu: dict[int, list[Row]]) -> list[Row]:
    """The node as a whole at each time: mean utilisation, summed memory and power, hottest GPU."""
    at: dict[datetime, list[Row]] = defaultdict(list)
    for points in per_gpu.values():
        for point in points:
            at[point['taken_at']].append(point)
    return [{'taken_at': when, 'gpu_count': len(group),
             'utilization_gpu': _mean(p['utilization_gpu'] for p in group),
             'memory_used_gb': _total(p['memory_used_gb'] for p in group),
             'memory_total_gb': _total(p['memory_total_gb'] for p in group),
             'power_draw_watts': _total(p['power_draw_watts'] for p in group),
             'temperature_gpu_max': max((p['temperature_gpu'] for p in group if p['temperature_gpu'] is not None),
                                        default=None)}
            for when, group in sorted(at.items())]


async def node_history(database: Database, *, node_id: int, since: datetime, until: datetime,
                       step: int | None) -> Row:
    if step is not None and (until - since).total_seconds() / step > MAX_POINTS:
        raise InvalidRequest(f'that window holds more than {MAX_POINTS} steps of {step} s: ask for a larger step',
                             param='step')
    async with database.session() as session:
        node = await nodes.get_node(session, node_id=node_id)  # NodeNotFound: 404
    columns = [col(GpuSample.gpu_index), col(GpuSample.taken_at), *(getattr(GpuSample, n) for n in GPU_FIGURES)]
    query = (select(*columns)
             .where(col(GpuSample.node_id) == node_id, col(GpuSample.taken_at) >= since,
                    col(GpuSample.taken_at) < until)
             .order_by(col(GpuSample.gpu_index), col(GpuSample.taken_at)).limit(MAX_ROWS + 1))
    async with database.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    if len(rows) > MAX_ROWS:
        raise InvalidRequest(f'more than {MAX_ROWS} samples in that window: narrow since/until', param='since')
    per_gpu: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        per_gpu[row['gpu_index']].append({'taken_at': row['taken_at'], 'samples': 1,
                                          **{name: _round(row[name]) for name in GPU_FIGURES}})
    if step is not None:
        per_gpu = {index: bucket(points, step) for index, points in per_gpu.items()}
    return {'node_id': node_id, 'node_name': node.name, 'since': since, 'until': until, 'step': step,
            'gpus': [{'gpu_index': index, 'points': points} for index, points in sorted(per_gpu.items())],
            'node': node_series(per_gpu)}


def export_columns(kind: str) -> tuple[str, ...]:
    if kind == 'gpu':
        return ('taken_at', 'node_id', 'node_name', 'gpu_index', *GPU_FIGURES)
    if kind == 'backend':
        return ('taken_at', 'backend_id', 'backend_name', 'in_flight', 'max_concurrent', 'healthy', *BACKEND_FIGURES)
    raise InvalidRequest(f'kind must be one of {", ".join(EXPORT_KINDS)}, not {kind!r}', param='kind')


async def export_rows(database: Database, *, kind: str, since: datetime, until: datetime) -> list[Row]:
    """Every sample of `kind` in [since, until), oldest first, with its node's or backend's name."""
    names = export_columns(kind)
    if kind == 'gpu':
        query = (select(*(getattr(GpuSample, n) for n in names if n != 'node_name'), col(Node.name).label('node_name'))
                 .join(Node, col(Node.id) == col(GpuSample.node_id))
                 .where(col(GpuSample.taken_at) >= since, col(GpuSample.taken_at) < until)
                 .order_by(col(GpuSample.taken_at), col(GpuSample.node_id), col(GpuSample.gpu_index)))
    else:
        query = (select(*(getattr(BackendSample, n) for n in names if n != 'backend_name'),
                        col(Backend.name).label('backend_name'))
                 .join(Backend, col(Backend.id) == col(BackendSample.backend_id))
                 .where(col(BackendSample.taken_at) >= since, col(BackendSample.taken_at) < until)
                 .order_by(col(BackendSample.taken_at), col(BackendSample.backend_id)))
    async with database.connect() as conn:
        rows = (await conn.execute(query.limit(MAX_ROWS + 1))).mappings().all()
    if len(rows) > MAX_ROWS:
        raise InvalidRequest(f'more than {MAX_ROWS} rows in that window: narrow since/until', param='since')
    return [{name: _round(row[name]) if isinstance(row[name], float) else row[name] for name in names}
            for row in rows]


async def overview(database: Database, poller: NodePoller, registry: RegistryView) -> Row:
    """The cluster now: nodes from the database with the poller's latest readings, backends from the view."""
    async with database.session() as session:
        node_rows = await nodes.list_nodes(session)
    node_list = []
    for node in node_rows:
        snapshot = poller.snapshots.get(node.id) if node.id is not None else None
        node_list.append({'id': node.id, 'name': node.name, 'status': node.status, 'gpu_count': node.gpu_count,
                          'last_seen_at': node.last_seen_at, 'last_error': node.last_error,
                          'summary': summarize(list(snapshot.gpus)) if snapshot is not None else None})
    backend_list = [{'id': b.id, 'name': b.name, 'engine': b.engine, 'status': b.status, 'healthy': b.healthy,
                     'node_id': b.node_id, 'gpu_indices': b.gpu_indices, 'in_flight': b.total_in_flight,
                     'max_concurrent': b.max_concurrent, 'gpu': poller.backend_figures(b.node_id, b.gpu_indices)}
                    for b in sorted(registry.backends, key=lambda b: b.id)]
    live = summarize([gpu for n in node_rows if n.id in poller.snapshots for gpu in poller.snapshots[n.id].gpus])
    totals = {'nodes': len(node_list), 'nodes_online': sum(n.status == NodeStatus.online for n in node_rows),
              'gpus': live['gpu_count'], 'utilization_gpu': live['utilization_gpu'],
              'memory_used_gb': live['memory_used_gb'], 'memory_total_gb': live['memory_total_gb'],
              'power_draw_watts': live['power_draw_watts'], 'backends': len(backend_list),
              'backends_healthy': sum(b['healthy'] is True for b in backend_list),
              'in_flight': sum(b.total_in_flight for b in registry.backends),
              'max_concurrent': sum(b.max_concurrent for b in registry.backends)}
    return {'taken_at': utcnow().replace(microsecond=0), 'totals': totals, 'nodes': node_list,
            'backends': backend_list}


def export_csv(columns: tuple[str, ...], rows: list[Row]) -> str:
    """`export_rows` as CSV, each cell spelled as the JSON export spells it: ISO times, true/false, empty for
    null. The admin API's export and the console's download are this one function."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(columns)
    writer.writerows([_cell(row[name]) for name in columns] for row in rows)
    return buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '' if value is None else value
