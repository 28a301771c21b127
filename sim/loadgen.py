"""`python -m sim.loadgen`: how many simple non-streaming chat requests per second a fake engine answers.

Raw keep-alive connections, each sending one request at a time (no pipelining), so the figure is the server's
and not an HTTP client library's. Pin the server and the load generator to different cores, e.g.:

    taskset -c 1 python -m sim vllm --port 8000 &
    taskset -c 0 python -m sim.loadgen vllm --port 8000 --pid $!

With --pid, it also reports requests per second of server CPU time (the measure that survives a noisy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Sequence

import orjson

BODIES = {
    'vllm': ('/v1/chat/completions', {'messages': [{'role': 'user', 'content': 'Say something short.'}]}),
    'ollama': (
        '/api/chat',
        {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'Say something short.'}], 'stream': False},
    ),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


async def _connection(host: str, port: int, request: bytes, stop_at: float) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b'\r\n\r\n')
            start = head.lower().find(b'content-length:')
            if start < 0:
                raise RuntimeError('the load generator only reads Content-Length responses')
            end = head.find(b'\r\n', start)
            await reader.readexactly(int(head[start + 15 : end]))
            done += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return done


async def run(host: str, port: int, engine: str, connections: int, seconds: float, pid: int | None) -> str:
    path, body = BODIES[engine]
    data = orjson.dumps(body)
    request = (
        f'POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n'
    ).encode() + data
    warm_until = time.perf_counter() + min(0.5, seconds)
    await asyncio.gather(*(_connection(host, port, request, warm_until) for _ in range(connections)))
    cpu_before = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    counts = await asyncio.gather(*(_connection(host, port, request, started + seconds) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    total = sum(counts)
    rate = total / elapsed
    line = f'{engine} {path}: {total} requests in {elapsed:.2f} s = {rate:.0f} req/s ({connections} connections)'
    if pid:
        cpu = cpu_seconds(pid) - cpu_before
        if cpu > 0:
            line += f'; server CPU {cpu:.2f} s = {total / cpu:.0f} req per server CPU-second'
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m sim.loadgen', description='Measure the non-streaming chat requests/s of a fake engine.'
    )
    parser.add_argument('engine', choices=sorted(BODIES))
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--connections', type=int, default=16)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--pid', type=int, help='server process id, to report requests per server CPU-second')
    args = parser.parse_args(argv)
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # a faster client leaves more of the machine to the server

        runner = uvloop.run
    print(runner(run(args.host, args.port, args.engine, args.connections, args.seconds, args.pid)))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
