"""The production topology as processes on loopback: what deploy/ describes, run for real.

    nginx (Debian's, the shipped deploy/nginx/mindrouter.conf, a self-signed certificate)
      ├── /v1, /api, /anthropic, ... ─► two API processes, `mindrouter serve --no-ui --workers 2` ("replicas")
      └── everything else ────────────► one console process, `mindrouter serve`
    all on one MariaDB database (created for the run, dropped after) and Redis (a key prefix of the run's own),
    with `sim/` engines behind them.

Addresses: nginx connects to the processes from 127.0.0.2 (`proxy_bind` in the site's upstreams file), and
only 127.0.0.2 is in the processes' FORWARDED_ALLOW_IPS. A test client connects from another loopback address
(CLIENT_ADDRESS), so "what nginx says about the client" and "who connected" are told apart on one machine.

Used by tests/topology/ and by bench/topology.py. The shipped files are used as they are: the generated main
nginx.conf includes deploy/nginx/mindrouter.conf, and its directory links mindrouter/ to deploy/nginx/mindrouter/;
only mindrouter-site/ (addresses, ports, certificate paths: the deployment's own, by design) is written here.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from tests.conftest import _mariadb_admin, mariadb_server_url
from tests.e2e.cluster import BIN, cli
from tests.e2e.processes import REPO, free_port, wait_until_ready

SHIPPED = REPO / 'deploy' / 'nginx'
PROXY_ADDRESS = '127.0.0.2'  # nginx -> processes; the only address the processes trust for X-Forwarded-For
CLIENT_ADDRESS = '127.0.0.3'  # where test clients connect from
ADMIN_PASSWORD = 'topology-pass-1'


@dataclass
class Topology:
    url: str  # https://127.0.0.1:PORT, through nginx
    http_url: str  # nginx's plain-HTTP server (redirects only)
    api: list[str]  # each API process, directly (bypassing nginx)
    console: str  # the console process, directly
    sims: dict[str, str]
    key: str  # alice (faculty, unlimited)
    admin_key: str  # root (admin; password ADMIN_PASSWORD)
    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client that connects from CLIENT_ADDRESS and accepts the test certificate."""
        transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=False)
        return httpx.Client(transport=transport, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log(self, name: str) -> str:
        return (self.root / f'{name}.log').read_text(errors='replace')

    def access_log(self) -> list[str]:
        """nginx's access log: `CLIENT "METHOD PATH HTTP/x" STATUS UPSTREAM` a line (written when a request ends)."""
        return (self.root / 'nginx-access.log').read_text().splitlines()

    def upstream(self, address: str) -> str:
        """Which process an upstream address in the access log is: `api-1`, `api-2` or `console`."""
        names = {url.removeprefix('http://'): f'api-{index + 1}' for index, url in enumerate(self.api)}
        names[self.console.removeprefix('http://')] = 'console'
        return names.get(address, address)


def prerequisites() -> tuple[str, str, str]:
    """nginx, the MariaDB server URL and the Redis URL; skips the test (fails under CI) when one is missing."""
    nginx = shutil.which('nginx') or ('/usr/sbin/nginx' if Path('/usr/sbin/nginx').exists() else '')
    if not nginx:
        _missing('nginx is not installed (apt-get install nginx)')
    database = mariadb_server_url()
    redis_url = os.environ.get('TEST_REDIS_URL', 'redis://127.0.0.1:6379/0')
    try:
        with redis.Redis.from_url(redis_url) as client:
            client.ping()
    except redis.RedisError:
        _missing(f'Redis is not reachable at {redis_url}')
    return nginx, database, redis_url


def _missing(what: str) -> None:
    import pytest

    if os.environ.get('CI'):
        pytest.fail(f'{what}; CI must run the production topology')
    pytest.skip(what)


@contextmanager
def running_topology(
    root: Path,
    *,
    nginx: str,
    database_server: str,
    redis_url: str,
    api_processes: int = 2,
    workers: int = 2,
    console: bool = True,
    token_delay_ms: int = 20,
    max_concurrent: int = 16,
    settings: dict[str, str] | None = None,
) -> Iterator[Topology]:
    """Start everything (in parallel where it can), register one simulated Ollama engine, and stop it all after."""
    prefix = f'mrtest-topology-{secrets.token_hex(4)}'
    name = f'mrtest_topology_{secrets.token_hex(4)}'
    database_url = make_url(database_server).set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        'DATA_DIR': str(root / 'data'),
        'LOG_LEVEL': 'warning',
        'DATABASE_URL': database_url,
        'REDIS_URL': redis_url,
        'REDIS_PREFIX': prefix,
        'MINDROUTER_ENV': 'production',
        'SECRET_KEY': secrets.token_urlsafe(48),
        'FORWARDED_ALLOW_IPS': PROXY_ADDRESS,
        'AUDIT_FLUSH_INTERVAL': '0.2',
        'REGISTRY_RELOAD_INTERVAL': '0.5',
        **(settings or {}),
    }
    with ExitStack() as stack:
        _mariadb_admin(database_server, f'CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci')
        stack.callback(_mariadb_admin, database_server, f'DROP DATABASE IF EXISTS `{name}`')
        stack.callback(_forget_redis_keys, redis_url, prefix)
        sim_port = free_port()
        sims = {'sim-ollama': f'http://127.0.0.1:{sim_port}'}
        starting: list[_Starting] = [
            _Starting(
                'sim-ollama',
                [
                    sys.executable,
                    '-m',
                    'sim',
                    'ollama',
                    '--port',
                    str(sim_port),
                    '--token-delay-ms',
                    str(token_delay_ms),
                ],
                f'{sims["sim-ollama"]}/_sim/config',
            )
        ]
        cli(env, 'migrate')  # once, before any server: they would all run it at the same time otherwise
        cli(env, 'create-user', 'root', '--role', 'admin', '--password', ADMIN_PASSWORD)
        cli(env, 'create-user', 'alice', '--role', 'faculty')
        admin_key = cli(env, 'create-key', 'root').strip()
        key = cli(env, 'create-key', 'alice').strip()
        api = []
        for index in range(api_processes):
            port = free_port()
            api.append(f'http://127.0.0.1:{port}')
            starting.append(
                _Starting(
                    f'api-{index + 1}',
                    [str(BIN / 'mindrouter'), 'serve', '--no-ui', '--workers', str(workers), '--port', str(port)],
                    f'{api[-1]}/healthz',
                )
            )
        console_url = ''
        if console:
            port = free_port()
            console_url = f'http://127.0.0.1:{port}'
            starting.append(
                _Starting('console', [str(BIN / 'mindrouter'), 'serve', '--port', str(port)], f'{console_url}/healthz')
            )
        https_port, http_port = free_port(), free_port()
        conf = _write_nginx_config(
            root, api=api, console=console_url or api[0], https_port=https_port, http_port=http_port
        )
        url = f'https://127.0.0.1:{https_port}'
        processes = stack.enter_context(_running_together(starting, env, root))
        processes.update(
            stack.enter_context(
                _running_together(
                    [
                        _Starting(
                            'nginx',
                            [nginx, '-c', str(conf), '-p', str(root / 'nginx')],
                            f'http://127.0.0.1:{http_port}/',
                        )
                    ],
                    env,
                    root,
                )
            )
        )
        topology = Topology(
            url, f'http://127.0.0.1:{http_port}', api, console_url, sims, key, admin_key, root, env, processes
        )
        with topology.client(headers={'X-API-Key': admin_key}) as admin:
            response = admin.post(
                f'{url}/api/admin/backends/register',
                json={
                    'name': 'sim-ollama',
                    'url': sims['sim-ollama'],
                    'engine': 'ollama',
                    'max_concurrent': max_concurrent,
                },
            )
            assert response.status_code == 201, response.text
            admin.put(
                f'{url}/api/admin/users/alice/quota',
                json={'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'test suite'},
            ).raise_for_status()
        _wait_for_every_process_to_see_the_backend(topology)
        yield topology


@dataclass
class _Starting:
    name: str
    command: list[str]
    ready_url: str


@contextmanager
def _running_together(
    specs: Sequence[_Starting], env: dict[str, str], root: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start every process at once, wait until each answers, and SIGTERM them all at the end (output in
    ROOT/NAME.log: an unread pipe would block a process)."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for spec in specs:
            with (root / f'{spec.name}.log').open('w') as log:
                processes[spec.name] = subprocess.Popen(
                    spec.command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
                )
        for spec in specs:  # several servers start at once on a shared machine: give them time
            wait_until_ready(spec.ready_url, processes[spec.name], root / f'{spec.name}.log', 180)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_every_process_to_see_the_backend(topology: Topology) -> None:
    """Each worker re-reads the registry every REGISTRY_RELOAD_INTERVAL: once a worker of every process lists
    the engine's models, one more interval lets the workers that were not asked catch up."""
    for base in [*topology.api, *([topology.console] if topology.console else [])]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            models = httpx.get(f'{base}/v1/models', headers={'X-API-Key': topology.key}, timeout=10).json()
            if models.get('data'):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"{base} never listed the simulated engine's models")
    time.sleep(float(topology.env.get('REGISTRY_RELOAD_INTERVAL', '5')) + 0.5)


def _write_nginx_config(root: Path, *, api: Sequence[str], console: str, https_port: int, http_port: int) -> Path:
    """The main nginx.conf (this run's pid, logs and temp folders) and the site files; the rest is shipped."""
    conf_dir = root / 'nginx'
    (conf_dir / 'mindrouter-site').mkdir(parents=True)
    (conf_dir / 'temp').mkdir()
    (conf_dir / 'mindrouter').symlink_to(SHIPPED / 'mindrouter', target_is_directory=True)
    certificate, private_key = self_signed_certificate(conf_dir)
    api_servers = ''.join(f'    server {url.removeprefix("http://")} max_fails=3 fail_timeout=10s;\n' for url in api)
    (conf_dir / 'mindrouter-site' / 'upstreams.conf').write_text(
        f'upstream mindrouter_api {{\n    least_conn;\n{api_servers}    keepalive 64;\n}}\n'
        f'upstream mindrouter_ui {{\n    server {console.removeprefix("http://")};\n    keepalive 8;\n}}\n'
        f'proxy_bind {PROXY_ADDRESS};\n'
    )
    (conf_dir / 'mindrouter-site' / 'https.conf').write_text(
        f'listen 127.0.0.1:{https_port} ssl http2;\nserver_name localhost;\n'
        f'ssl_certificate {certificate};\nssl_certificate_key {private_key};\n'
    )
    (conf_dir / 'mindrouter-site' / 'http.conf').write_text(f'listen 127.0.0.1:{http_port};\nserver_name localhost;\n')
    temp = conf_dir / 'temp'
    user = 'user root;\n' if os.geteuid() == 0 else ''  # as root, workers would run as nobody: no access to temp/
    main = conf_dir / 'nginx.conf'
    main.write_text(
        f'daemon off;\n{user}worker_processes 1;\npid {conf_dir}/nginx.pid;\nerror_log {root}/nginx-error.log warn;\n'
        'events {\n    worker_connections 1024;\n}\n'
        'http {\n'
        # Which upstream took each request, and how it ended: the tests read it (Topology.access_log).
        '    log_format topology \'$remote_addr "$request" $status $upstream_addr\';\n'
        f'    access_log {root}/nginx-access.log topology;\n'
        + ''.join(
            f'    {kind}_temp_path {temp}/{kind};\n' for kind in ('client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi')
        )
        + f'    include {SHIPPED / "mindrouter.conf"};\n}}\n'
    )
    result = subprocess.run(
        [shutil.which('nginx') or '/usr/sbin/nginx', '-t', '-q', '-c', str(main), '-p', str(conf_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return main


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made for this run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'MindRouter topology test')])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / 'certificate.pem', folder / 'key.pem'
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


def _forget_redis_keys(redis_url: str, prefix: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(f'*{prefix}*'))
        if keys:
            client.delete(*keys)
