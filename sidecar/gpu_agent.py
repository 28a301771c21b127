"""MindRouter GPU sidecar: per-node GPU metrics for the gateway, `GET /health` and `GET /gpu-info`.

Deployed alone on every GPU node (fastapi + uvicorn + nvidia-ml-py, nothing else from the repository). Run:

    SIDECAR_SECRET_KEY=... python gpu_agent.py            # from the sidecar folder
    SIDECAR_SECRET_KEY=... python -m sidecar.gpu_agent    # from the repository root

Env: SIDECAR_SECRET_KEY (required), GPU_AGENT_PORT (8007), GPU_AGENT_HOST (0.0.0.0). Every endpoint requires the
header X-Sidecar-Key equal to SIDECAR_SECRET_KEY. The wire format is that of the sidecars already in the field.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

if __package__:
    from . import collect, ipmi, nvml
else:  # `python gpu_agent.py`: the sidecar folder is sys.path[0], so the sibling modules are top-level there
    import collect  # type: ignore[import-not-found,no-redef,unused-ignore]
    import ipmi  # type: ignore[import-not-found,no-redef,unused-ignore]
    import nvml  # type: ignore[import-not-found,no-redef,unused-ignore]

KEY_HEADER = 'X-Sidecar-Key'
DEFAULT_PORT = 8007
DEFAULT_HOST = '0.0.0.0'  # the container binds everywhere; docker publishes it on 127.0.0.1 only (see README)

Json = dict[str, object]
PowerReader = Callable[[], Json]


def read_version() -> str:
    try:
        return (Path(__file__).resolve().parent / 'VERSION').read_text().strip() or 'unknown'
    except OSError:
        return 'unknown'


def key_matches(presented: str | None, secret: bytes) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a guessed key was right."""
    if presented is None:
        return False
    # Bytes, not str: compare_digest rejects non-ASCII str, and a header may carry any latin-1 byte.
    return hmac.compare_digest(presented.encode('utf-8', 'surrogateescape'), secret)


def create_app(
    secret_key: str,
    *,
    nvml_api: nvml.NvmlApi | None = None,
    power_reader: PowerReader | None = None,
    hostname: str | None = None,
    version: str | None = None,
) -> FastAPI:
    """The agent as an ASGI app. Tests pass a fake `nvml_api` and `power_reader`; production uses the defaults."""
    if not secret_key:
        raise ValueError('secret_key must not be empty')
    secret = secret_key.encode('utf-8')
    reader = collect.GpuReader(nvml_api if nvml_api is not None else nvml.Nvml())
    read_power: PowerReader = power_reader if power_reader is not None else ipmi.read_server_power
    host_name = hostname or socket.gethostname()
    sidecar_version = version or read_version()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        reader.shutdown()

    # No /docs or /openapi.json: the sidecar is a machine-to-machine endpoint, and less surface is less to secure.
    app = FastAPI(title='MindRouter GPU sidecar', docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.middleware('http')
    async def require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # A middleware rather than a route dependency: every path, unknown ones included, is behind the key.
        if not key_matches(request.headers.get(KEY_HEADER), secret):
            body = {'status': 'error', 'error': f'missing or invalid {KEY_HEADER} header'}
            return JSONResponse(body, status_code=401)
        return await call_next(request)

    @app.get('/health')
    def health() -> JSONResponse:
        # A sync endpoint: FastAPI runs it in its threadpool, so blocking NVML calls never stall the event loop.
        try:
            count = reader.gpu_count()
        except collect.NvmlNotReady as e:
            body: Json = {'status': 'error', 'error': str(e), 'sidecar_version': sidecar_version}
            return JSONResponse(body, status_code=503)
        return JSONResponse({'status': 'ok', 'gpu_count': count, 'sidecar_version': sidecar_version})

    @app.get('/gpu-info')
    async def gpu_info() -> JSONResponse:
        # NVML and ipmitool (up to 5 s) both block; read them in parallel worker threads.
        gpus_task = asyncio.to_thread(_gpu_part, reader)
        power_task = asyncio.to_thread(_safe_power, read_power)
        gpus, server_power = await asyncio.gather(gpus_task, power_task)
        body: Json = {
            'hostname': host_name,
            'timestamp': datetime.now(UTC).isoformat(),
            **gpus,
            'server_power': server_power,
            'sidecar_version': sidecar_version,
        }
        return JSONResponse(body, status_code=503 if 'error' in gpus else 200)

    return app


def _gpu_part(reader: collect.GpuReader) -> Json:
    try:
        return reader.gpu_info()
    except collect.NvmlNotReady as e:
        return {'driver_version': None, 'cuda_version': None, 'gpu_count': 0, 'gpus': [], 'error': str(e)}


def _safe_power(read_power: PowerReader) -> Json:
    # Server power is a nice-to-have: whatever goes wrong, /gpu-info still answers.
    try:
        return read_power()
    except Exception as e:
        return {'error': f'server power unavailable: {collect.reason(e)}'}


def _fail(message: str) -> int:
    print(f'gpu_agent: {message}', file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, *, nvml_api: nvml.NvmlApi | None = None) -> int:
    """Read the environment, refuse to start without a key, serve until SIGINT/SIGTERM. `nvml_api` lets a test
    entry point run the real server over a fake NVML."""
    del argv  # configured by environment only, as the deployed sidecars are
    key = os.environ.get('SIDECAR_SECRET_KEY', '')
    if not key.strip():
        return _fail(
            'SIDECAR_SECRET_KEY is not set; refusing to start without it '
            '(generate one: python3 -c "import secrets; print(secrets.token_hex(32))")'
        )
    host = os.environ.get('GPU_AGENT_HOST', '').strip() or DEFAULT_HOST
    port_text = os.environ.get('GPU_AGENT_PORT', '').strip() or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return _fail(f'GPU_AGENT_PORT must be a TCP port number (1-65535), got {port_text!r}')

    import uvicorn  # here, not at the top: tests import the app without needing a server

    app = create_app(key, nvml_api=nvml_api)
    print(f'gpu_agent {read_version()} listening on {host}:{port_text}', file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=int(port_text), log_level='warning', access_log=False)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
