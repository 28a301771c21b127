"""`SimServer`: one fake engine listening on a TCP port, for tests, benchmarks and the CLI."""

from __future__ import annotations

from types import TracebackType

from sim.config import ENGINES, Engine, SimConfig
from sim.engine import BaseEngine
from sim.http import HttpServer
from sim.ollama import OllamaEngine
from sim.stats import SimStats
from sim.vllm import VllmEngine

_ENGINES: dict[Engine, type[BaseEngine]] = {'ollama': OllamaEngine, 'vllm': VllmEngine}


class SimServer:
    """A fake Ollama or vLLM server.

        async with SimServer('vllm', SimConfig(tokens=5)) as sim:
            client = openai.AsyncOpenAI(base_url=f'{sim.url}/v1', api_key='x')
            ...
            sim.config.fault = 'error_500'   # takes effect on the next request
            assert sim.stats.requests_served == 1

    `config` is this server's own copy (engine defaults filled in); change its attributes at any time, or POST
    /_sim/config. After raising max_concurrency in code, call `config_changed()` so that queued requests move on.
    """

    def __init__(self, engine: Engine, config: SimConfig | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f'engine must be one of {", ".join(ENGINES)}')
        self.engine_name: Engine = engine
        self.config = (config or SimConfig()).resolved(engine)
        self.stats = SimStats()
        self.engine = _ENGINES[engine](self.config, self.stats)
        self._http = HttpServer(self.engine.router, server_header=self.engine.server_header)
        self.host = '127.0.0.1'
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234 (add /v1 for OpenAI clients of the fake vLLM)."""
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}'

    async def start(self, host: str = '127.0.0.1', port: int = 0) -> int:
        """Listen on host:port (0 picks a free port) and return the port."""
        self.port = await self._http.start(host, port)
        self.host = host
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection; in-flight requests are cancelled."""
        await self._http.stop()

    def config_changed(self) -> None:
        self.engine.slots.wake()

    async def __aenter__(self) -> SimServer:
        await self.start(self.host, self.port)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
