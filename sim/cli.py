"""`python -m sim ollama|vllm --port N [knobs]`: run one fake engine until SIGINT/SIGTERM.

`python -m sim sidecar --port N [--gpus 4 --key K ...]` runs the fake GPU sidecar (sim/sidecar.py);
`python -m sim searxng --port N` and `python -m sim brave --port N --key K` the fake web search services
(sim/search.py); `python -m sim speech --flavor speaches|kokoro|vllm --port N` (also as `tts` or `stt`) the fake
speech server (sim/speech.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import cast

from sim.config import ENGINES, FAULT_SCOPES, FAULTS, Engine, SimConfig
from sim.server import SimServer

DEFAULT_PORTS: dict[Engine, int] = {'ollama': 11434, 'vllm': 8000}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m sim', description='Run a fake Ollama or vLLM server.')
    parser.add_argument('engine', choices=ENGINES)
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, help='TCP port (default: 11434 for ollama, 8000 for vllm; 0 = any)')
    parser.add_argument('--models', help="comma-separated model names (default: the engine's usual demo models)")
    parser.add_argument('--ttft-ms', type=float, default=0.0, help='delay before the first token')
    parser.add_argument('--token-delay-ms', type=float, default=0.0, help='delay between tokens')
    parser.add_argument('--tokens', type=int, default=20, help='answer length in tokens')
    parser.add_argument('--max-concurrency', type=int, help='requests generating at once (0 = unlimited)')
    parser.add_argument('--queue-limit', type=int, help='requests allowed to wait for a slot (default: unlimited)')
    parser.add_argument('--fault', choices=FAULTS)
    parser.add_argument('--fault-after-tokens', type=int, default=3)
    parser.add_argument('--fault-rate', type=float, default=1.0, help='share of requests (0..1) that get the fault')
    parser.add_argument('--fault-scope', choices=FAULT_SCOPES, default='inference')
    parser.add_argument('--embedding-dim', type=int, default=16)
    parser.add_argument('--context-length', type=int, default=8192)
    parser.add_argument('--thinking-tokens', type=int, default=8)
    parser.add_argument('--load-ms', type=float, default=0.0, help='Ollama: delay when a model is cold')
    parser.add_argument('--version', dest='engine_version', help='version the engine reports')
    parser.add_argument(
        '--schema-violation', action='store_true', help='structured output breaks its schema (valid JSON, wrong shape)'
    )
    parser.add_argument(
        '--no-reasoning-parser',
        dest='reasoning_parser',
        action='store_false',
        help='vLLM: reasoning stays in the content as <think>...</think> (no --reasoning-parser)',
    )
    parser.add_argument('--no-uvloop', action='store_true', help='use the stdlib event loop even if uvloop is there')
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    models = [m.strip() for m in args.models.split(',') if m.strip()] if args.models else None
    return SimConfig(
        models=models,
        ttft_ms=args.ttft_ms,
        token_delay_ms=args.token_delay_ms,
        fault_rate=args.fault_rate,
        tokens=args.tokens,
        max_concurrency=args.max_concurrency,
        queue_limit=args.queue_limit,
        fault=args.fault,
        fault_after_tokens=args.fault_after_tokens,
        fault_scope=args.fault_scope,
        embedding_dim=args.embedding_dim,
        context_length=args.context_length,
        thinking_tokens=args.thinking_tokens,
        load_ms=args.load_ms,
        version=args.engine_version,
        schema_violation=args.schema_violation,
        reasoning_parser=args.reasoning_parser,
    )


async def serve(engine: Engine, config: SimConfig, host: str, port: int) -> None:
    server = SimServer(engine, config)
    bound = await server.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # One line on stdout tells a parent process (tests, benchmarks) the port, and that the server is ready.
    print(f'sim {engine} listening on {server.url} (port {bound})', flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['sidecar']:  # the fake GPU sidecar is not an engine: its own knobs and parser
        from sim.sidecar import main as sidecar_main

        return sidecar_main(argv[1:])
    if argv[:1] in (['speech'], ['tts'], ['stt']):  # the fake speech server (Speaches, Kokoro-FastAPI, vLLM Whisper)
        from sim.speech import main as speech_main

        return speech_main(argv[1:])
    if argv[:1] in (['searxng'], ['brave']):  # fake web search services: their own knobs and parser
        from sim.search import main as search_main

        return search_main(argv)
    args = build_parser().parse_args(argv)
    engine = cast(Engine, args.engine)
    try:
        config = config_from_args(args)
        config.resolved(engine)  # validate before binding the port
    except ValueError as e:
        print(f'python -m sim: {e}', file=sys.stderr)
        return 2
    port = DEFAULT_PORTS[engine] if args.port is None else args.port
    runner = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop  # uvicorn[standard] brings it; about twice the requests/s of the stdlib loop

            runner = uvloop.run
    runner(serve(engine, config, args.host, port))
    return 0
