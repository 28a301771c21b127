"""A Redis and a MariaDB of the test's own, on free ports in a temporary directory, that a test may kill and start
again: the machine's shared servers serve other tests and must never be restarted."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pymysql
import pytest
import redis

from tests.e2e.processes import free_port


def _wait(ready: object, what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except Exception:
            time.sleep(0.1)
    raise AssertionError(f'{what} did not come up:\n{log.read_text() if log.exists() else ""}')


class OwnServer:
    """A server process the test controls: start, kill -9 (a crash), start again on the same port and data."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.root.mkdir(parents=True)
        self.port = free_port()
        self.log = self.root / 'server.log'
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open('a') as log:
            self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        _wait(self.ready, self.__class__.__name__, self.log)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class OwnRedis(OwnServer):
    """No persistence: a restart comes back empty, as a cache node replaced by its orchestrator does."""

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def command(self) -> list[str]:
        return [program('redis-server'), '--port', str(self.port), '--bind', '127.0.0.1', '--dir', str(self.root),
                '--save', '', '--appendonly', 'no']

    def ready(self) -> bool:
        with redis.Redis(port=self.port, socket_timeout=1) as client:
            return bool(client.ping())


class OwnMariaDB(OwnServer):
    """A data directory of its own (mariadb-install-db), root without a password on 127.0.0.1, database `mindrouter`."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root, name)
        self.data = self.root / 'data'
        installed = subprocess.run([program('mariadb-install-db'), '--no-defaults', f'--datadir={self.data}',
                                    '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'],
                                   capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stderr

    @property
    def url(self) -> str:
        return f'mysql+aiomysql://root@127.0.0.1:{self.port}/mindrouter'

    def command(self) -> list[str]:
        return [program('mariadbd'), '--no-defaults', f'--datadir={self.data}', f'--port={self.port}',
                f'--socket={self.root / "mariadb.sock"}', '--bind-address=127.0.0.1', '--user=root',
                f'--pid-file={self.root / "mariadb.pid"}', '--innodb-buffer-pool-size=32M', '--skip-log-bin',
                f'--log-error={self.log}']

    def ready(self) -> bool:
        with pymysql.connect(host='127.0.0.1', port=self.port, user='root', connect_timeout=1) as conn, \
                conn.cursor() as cursor:
            cursor.execute('CREATE DATABASE IF NOT EXISTS mindrouter')
        return True

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with pymysql.connect(host='127.0.0.1', port=self.port, user='root', database='mindrouter',
                             connect_timeout=5) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())


def program(name: str) -> str:
    """Where a server program is (daemons live in /usr/sbin, often off a user's PATH); skip where it is not
    installed, fail in CI, which must run these tests."""
    found = shutil.which(name, path=f'{os.environ.get("PATH", "")}:/usr/sbin:/usr/local/sbin')
    if found is None:
        if os.environ.get('CI'):
            pytest.fail(f'{name} not installed; CI must run the many-process tests')
        pytest.skip(f'{name} not installed')
    return found
