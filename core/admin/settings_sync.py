"""Run-time settings changed in one process reach every other process within seconds.

An admin's change (core.admin.site_settings) is stored in `site_settings` and assigned to the live `Settings` of
the process that took it. Every other API worker and replica holds its own `Settings`; this keeps them equal to
what is stored:

- with Redis, the changing process publishes the setting's name on `<prefix>:settings:changed` and every
  process re-reads the table at once (one SELECT of a handful of rows);
- in every case, each process re-reads the table every SETTINGS_RELOAD_INTERVAL seconds, which catches a lost
  message (Redis restarting) and is all there is without Redis.

A value that disappeared from the table (a reset elsewhere) goes back to the environment's. The request path reads
the live `Settings` object as before: no database read per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlmodel import select

from core.admin import site_settings
from core.config import Settings
from core.db import Database
from core.models import SiteSetting

log = logging.getLogger('mindrouter.site_settings')

_ERRORS = (RedisError, OSError)


class SettingsSync:
    def __init__(self, database: Database, settings: Settings, *, interval: float, redis_url: str = '',
                 prefix: str = 'mindrouter') -> None:
        self._database = database
        self._settings = settings
        self._interval = interval
        self._redis_url = redis_url
        self.channel = f'{prefix}:settings:changed'
        self._client: redis.Redis | None = None
        self._stored: dict[str, Any] | None = None  # the rows as last read (values as stored, secrets sealed)
        self._environment: dict[str, Any] = {}  # what a reset returns to: read once, the environment is fixed
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing = asyncio.Lock()
        self._failing = False

    async def start(self) -> None:
        environment = await asyncio.to_thread(site_settings.environment_settings)  # reads .env: off the loop
        self._environment = {name: getattr(environment, name) for name in site_settings.EDITABLE}
        with contextlib.suppress(Exception):  # the lifespan applied them already; this only records what was read
            self._stored = await self._read()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._poll(), name='settings-reload')]
        if self._redis_url:
            # A publish gives up after 2 s (the periodic re-read covers it); a subscriber waits without limit.
            self._client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
            self._tasks.append(loop.create_task(self._listen(), name='settings-subscriber'))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def announce(self, name: str) -> None:
        """Tell the other processes that `name` changed (after the change is committed). Best effort: a process
        that misses it reads the change at its next periodic re-read."""
        if self._client is None:
            return
        try:
            await self._client.publish(self.channel, name)
        except _ERRORS as exc:
            log.warning('run-time settings: could not announce the change of %s (%s); other processes read it '
                        'within %g s', name, exc, self._interval)

    async def refresh(self) -> list[str]:
        """Read the stored settings; apply what changed since the last read. The names whose value changed."""
        async with self._refreshing:
            stored = await self._read()
            if stored == self._stored:
                return []
            self._stored = stored
            async with self._database.session() as session:
                values = await site_settings.load(session, self._settings)  # validated, secrets opened
            wanted = {**self._environment, **values}
            changed = [name for name, value in wanted.items() if getattr(self._settings, name) != value]
            site_settings.apply(self._settings, {name: wanted[name] for name in changed})
            if changed:
                log.info('run-time settings changed in another process: %s',
                         ', '.join(f'{name}={site_settings.shown(name, wanted[name])}' for name in changed))
            return changed

    async def _read(self) -> dict[str, Any]:
        async with self._database.session() as session:
            return {row.name: row.value for row in await session.exec(select(SiteSetting))}

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            if not self._failing:  # once per outage
                log.warning('run-time settings: could not re-read them: %s', str(exc).splitlines()[0])
            self._failing = True
        else:
            if self._failing:
                log.info('run-time settings: re-read again')
            self._failing = False

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._refresh_logged()

    async def _listen(self) -> None:
        assert self._client is not None
        delay = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message['type'] == 'subscribe':
                        delay = 0.1
                        await self._refresh_logged()  # a change announced while we were not listening
                    elif message['type'] == 'message':
                        await self._refresh_logged()
            except _ERRORS:
                pass  # Redis away: the periodic re-read goes on; subscribe again with backoff
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
