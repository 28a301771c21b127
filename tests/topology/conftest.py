"""The production topology, started once for the whole directory (tests/topology/stack.py): nginx with the
shipped configuration, two API processes, the console process, MariaDB, Redis and a simulated engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.topology.stack import Topology, prerequisites, running_topology


@pytest.fixture(scope='session')
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    nginx, database_server, redis_url = prerequisites()
    with running_topology(
        tmp_path_factory.mktemp('topology'), nginx=nginx, database_server=database_server, redis_url=redis_url
    ) as running:
        yield running
