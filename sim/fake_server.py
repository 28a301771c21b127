"""What the small fakes (GPU sidecar, search providers) share: a TCP server with live knobs, counters and the
/_sim control routes, started in-process or by `python -m sim <kind>` until SIGINT/SIGTERM.

A fake subclasses `FakeServer`, adds its own routes to `router` in its __init__, and calls `listen()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

import orjson

from sim.http import HttpServer, Request, Response, Router


class Knobs(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def update(self, values: Mapping[str, Any]) -> None: ...


@dataclasses.dataclass
class KnobSet:
    """Base of a fake's knobs (a dataclass of its own fields, with `validate()` and usually a `fault`)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError on an invalid combination of knobs."""

    def update(self, values: Mapping[str, Any]) -> None:
        """Set knobs from JSON; raises ValueError and changes nothing on an unknown knob or invalid result."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f'unknown knob(s) {sorted(unknown)}')
        trial = dataclasses.replace(self, **dict(values))
        if getattr(trial, 'fault', None) in ('', 'none'):
            trial.fault = None  # type: ignore[attr-defined]  # both spellings of "no fault" from a JSON client
        trial.validate()
        for name in names:
            setattr(self, name, getattr(trial, name))


class Counters(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def json_response(status: int, body: object, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(body), 'application/json', headers)


class FakeServer:
    config: Knobs
    stats: Counters

    def __init__(self) -> None:
        self.router = Router(self._not_found, self._not_found)
        self.host = '127.0.0.1'
        self.port = 0
        self._http: HttpServer | None = None

    def listen(self, *, server_header: str | None = None) -> None:
        """Add the control routes and make the server (call once the fake's own routes are added)."""
        self.router.add('GET', '/_sim/config', self._get_config)
        self.router.add('POST', '/_sim/config', self._post_config)
        self.router.add('GET', '/_sim/stats', self._get_stats)
        self._http = HttpServer(self.router, server_header=server_header)

    @property
    def url(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}'

    async def start(self, host: str = '127.0.0.1', port: int = 0) -> int:
        assert self._http is not None, 'call listen() in __init__'
        self.port = await self._http.start(host, port)
        self.host = host
        return self.port

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()

    async def __aenter__(self) -> Self:
        await self.start(self.host, self.port)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def serve_until_signalled(self, name: str, host: str, port: int) -> None:
        """The CLI's run: start, print the ready line every fake prints, stop on SIGINT/SIGTERM."""
        bound = await self.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # The same ready line as the engine fakes, so one helper can start any of them.
        print(f'sim {name} listening on {self.url} (port {bound})', flush=True)
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _not_found(self, request: Request) -> Response:
        return json_response(404, {'detail': 'Not Found'})

    async def _get_config(self, request: Request) -> Response:
        return json_response(200, self.config.to_dict())

    async def _post_config(self, request: Request) -> Response:
        try:
            values = orjson.loads(request.body)
            if not isinstance(values, dict):
                raise ValueError('body must be a JSON object of knob values')
            self.config.update(values)
        except (ValueError, TypeError) as e:  # orjson.JSONDecodeError is a ValueError
            return json_response(400, {'error': str(e)})
        return json_response(200, self.config.to_dict())

    async def _get_stats(self, request: Request) -> Response:
        return json_response(200, self.stats.to_dict())
