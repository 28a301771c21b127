"""The fleet-wide admission ledger: slot counts in one Redis that every API worker and gateway replica shares.

A backend's `max_concurrent` is the engine's own limit. Counted per process, N workers would put up to
N x max_concurrent requests on one engine; so the counts live in Redis, and each acquire and each release is
one Lua script (one atomic round trip: check and increment cannot interleave between workers, no locks).

Keys (`{P}` = `{<prefix>:ledger}`; one hash tag, so that a Redis Cluster keeps them all in one slot):
  {P}:backends         hash    backend id -> slots held, fleet-wide (absent at 0)
  {P}:users            hash    user id -> requests running, fleet-wide (absent at 0)
  {P}:workers          set     ids of the workers that may hold leases
  {P}:leases:<worker>  hash    lease id -> 'backend_id:user_id' (user empty for none)
  {P}:cut:<worker>:<lease> string  (PX 60 s) the lease was given back before its acquire arrived: see RELEASE
  {P}:alive:<worker>   string  with PX = heartbeat_ttl, refreshed every heartbeat_ttl / 3
  {P}:waiting          string  exists while some worker has requests queued (PX 3 s, refreshed every second)
  {P}:freed            pub/sub '<worker> <backend id>,...' after a release while {P}:waiting exists, so waiters
                               on other workers look again (nobody waiting: no message, no wake-ups)
The fleet's fair share (core.scheduler.fair_queue's clock, shared; expires after a fairness window unused):
  {P}:vtime            string  virtual time: the start tag of the latest request granted
  {P}:finish           hash    user id -> finish tag
  {P}:seen             zset    user id -> time of its latest request (users unseen for a window are forgotten)
  {P}:queue:<model>    zset    ticket -> start tag, for every request queued for that model on any worker
  {P}:tickets:<worker> hash    ticket -> model, so reconcile can remove a crashed worker's queued requests

A worker that crashes stops refreshing its `alive` key; the next heartbeat of any other worker finds it gone
and gives back all of its leases (reconcile). A crash costs at most about heartbeat_ttl of capacity, never a
slot for good.

The acquire and the release run on our own small client (`core.scheduler.resp`: pipelined on one connection,
~25 µs of CPU per call instead of redis-py's ~90+); everything else (heartbeat, reconcile, pub/sub, the waiting
flag) stays on redis-py.

Redis down: admission falls back to this process's own counts (each worker then keeps `max_concurrent` on
its own, as a single process would), with one warning per outage. Such leases are local-only and never sent
to Redis. Releases of Redis leases wait in memory and are retried with backoff; should the worker die before
Redis returns, the TTL above gives them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Sequence

import redis.asyncio as redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from core.registry.view import BackendState, RegistryView
from core.scheduler.ledger import FairAsk, Lease
from core.scheduler.redis_scripts import ACQUIRE, RECONCILE, RELEASE
from core.scheduler.resp import RespClient, RespConnectionError, RespError, RespTimeoutError, Script

log = logging.getLogger('mindrouter.scheduler')

_ERRORS = (RedisError, OSError, RespError)  # OSError covers RespConnectionError and RespTimeoutError
_RETRY_REDIS_AFTER = 1.0  # seconds an outage sends admission straight to local counts, so requests don't each wait

class RedisLedger:
    """`AdmissionLedger` over Redis; `backend.in_flight` stays this process's own count, as with LocalLedger.
    `client` (redis-py) serves everything but the acquire and release scripts, which go through `resp`: by default
    a RespClient to the same server, database and credentials as `client`. The ledger closes `resp` in stop()."""

    def __init__(self, client: redis.Redis, registry: RegistryView, *, worker_id: str | None = None,
                 prefix: str = 'mindrouter', heartbeat_ttl: float = 15.0, resp: RespClient | None = None,
                 burst_tokens: float = 512.0, fairness_window: float = 300.0) -> None:
        self._client = client
        self._resp = resp or _resp_client_like(client)
        self._registry = registry
        self.worker_id = worker_id or f'{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}'
        self._ttl = heartbeat_ttl
        self._base = f'{{{prefix}:ledger}}'
        self._hashes = [f'{self._base}:backends', f'{self._base}:users']
        self._workers = f'{self._base}:workers'
        self._leases = f'{self._base}:leases:{self.worker_id}'
        self._alive = f'{self._base}:alive:{self.worker_id}'
        self.channel = f'{self._base}:freed'
        self._waiting_flag = f'{self._base}:waiting'
        # Fair share across the fleet (core.scheduler.fair_queue's clock, kept here): see redis_scripts.ACQUIRE.
        self.burst_tokens, self.fairness_window = burst_tokens, fairness_window
        self._finish, self._seen = f'{self._base}:finish', f'{self._base}:seen'
        self._vtime, self._tickets = f'{self._base}:vtime', f'{self._base}:tickets:{self.worker_id}'
        self._queues = f'{self._base}:queue:'
        self._local_waiters = 0  # requests queued in this process (the picker tells us)
        self._flagger: asyncio.Task[None] | None = None
        self._acquire = Script(ACQUIRE)
        self._release = Script(RELEASE)
        self._reconcile = client.register_script(RECONCILE)
        self._owns_client = False
        self._callbacks: list[Callable[[], None]] = []
        self._users: dict[int, int] = {}  # this process's own requests per user
        self._fleet_users: dict[int, int] = {}  # fleet-wide, as last read (and nudged by our own changes)
        self._local_only: set[str] = set()  # leases granted while Redis was down: never sent to it
        self._pending: list[str] = []  # lease ids waiting to be released in Redis
        self._flush_wanted = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._down_until: float | None = None  # monotonic; set while Redis is unreachable
        self._stopped = False

    @classmethod
    def from_url(cls, url: str, registry: RegistryView, *, worker_id: str | None = None,
                 prefix: str = 'mindrouter', heartbeat_ttl: float = 15.0, burst_tokens: float = 512.0,
                 fairness_window: float = 300.0) -> RedisLedger:
        """A ledger with its own client, closed by stop(). Short timeouts and few retries: a request must not
        wait long on an unreachable Redis before falling back to local counts. A blocking pool: under a burst,
        commands wait for a connection instead of failing with MaxConnectionsError. The hot path's RespClient has
        the same timeouts."""
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=2.0, decode_responses=True, socket_connect_timeout=1.0,
            socket_timeout=2.0, retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2))
        client = redis.Redis.from_pool(pool)
        ledger = cls(client, registry, worker_id=worker_id, prefix=prefix, heartbeat_ttl=heartbeat_ttl,
                     resp=RespClient.from_url(url, timeout=2.0, connect_timeout=1.0), burst_tokens=burst_tokens,
                     fairness_window=fairness_window)
        ledger._owns_client = True
        return ledger

    async def try_acquire(self, candidates: Sequence[BackendState], *, user_id: int | None) -> Lease | None:
        lease, _ = await self._acquire_on(candidates, user_id, None)
        return lease

    async def acquire_fair(self, candidates: Sequence[BackendState], ask: FairAsk) -> tuple[Lease | None, float | None]:
        """A slot in fleet-wide fair order, and the request's start tag (None while Redis is unreachable: the
        caller then tags it on its own clock). Without a slot, a new request is queued in Redis under its
        ticket, where every worker's grants respect it, until it is granted or `dequeue`d."""
        return await self._acquire_on(candidates, ask.user_id, ask)

    def dequeue(self, ask: FairAsk, *, refund_tokens: float) -> None:
        """A queued request left without a slot: out of the fleet's queue, and its user's charge given back."""
        self._queue_release(f'Q{ask.ticket}|{ask.model}|{ask.user_id}|{-refund_tokens / ask.weight!r}')

    def correct(self, user_id: int, tokens: float, weight: float) -> None:
        """A request used `tokens` more (or fewer) than it was charged."""
        if tokens:
            self._queue_release(f'C{user_id}|{tokens / weight!r}')

    async def fair_state(self) -> tuple[float, dict[int, float]]:
        """The fleet's virtual time and every remembered user's finish tag."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._vtime)
            pipe.hgetall(self._finish)
            virtual, finish = await pipe.execute()
        return float(virtual or 0), {int(user): float(tag) for user, tag in finish.items()}

    async def _acquire_on(self, candidates: Sequence[BackendState], user_id: int | None,
                          ask: FairAsk | None) -> tuple[Lease | None, float | None]:
        lease_id = secrets.token_hex(8)  # chosen here, so that a call cut off midway can still be released
        if candidates and (self._down_until is None or time.monotonic() >= self._down_until):
            user = '' if user_id is None else user_id
            mode = '' if ask is None else 'new' if ask.tag is None else repr(ask.tag)
            args: list[str | int] = [self.worker_id, int(self._ttl * 1000), lease_id, user, mode]
            if ask is None:
                args += ['', '', '', '', '', '', '', '']
            else:
                args += [repr(float(ask.weight)), repr(float(ask.cost)), repr(self.burst_tokens), repr(time.time()),
                         repr(self.fairness_window), self._queues, ask.ticket, ask.model]
            for backend in candidates:
                models = list(backend.models) if ask is not None else []
                args += [backend.id, backend.max_concurrent, len(models), *models]
            keys = [*self._hashes, self._leases, self._workers, self._alive, self._finish, self._seen, self._vtime,
                    self._tickets]
            try:
                got = await self._script(self._acquire, keys, args)
            except _ERRORS as exc:
                self._cut_off(lease_id, ask)  # the script may have run before the connection failed
                self._outage(exc)
            except BaseException:  # cancelled after the script may have run: its slot must come back
                self._cut_off(lease_id, ask)
                raise
            else:
                self._redis_ok()
                backend_id, tag = got if isinstance(got, list) else (None, '')
                start = float(str(tag)) if tag else None
                if backend_id is None:
                    return None, start
                lease = self._grant(lease_id, next(b for b in candidates if b.id == int(str(backend_id))), user_id)
                return lease, start
        for backend in candidates:  # Redis is down: this process's own counts are all we know
            if backend.in_flight < backend.max_concurrent:
                self._local_only.add(lease_id)
                if ask is not None and ask.tag is not None:
                    # It waits in the fleet's queue too: take it out when Redis is back (its charge stands, it is
                    # served), or its low tag would hold other workers' requests back.
                    self.dequeue(ask, refund_tokens=0)
                return self._grant(lease_id, backend, user_id), None
        return None, None

    def release(self, lease: Lease) -> None:
        lease.backend.in_flight -= 1
        if lease.backend.fleet_in_flight:
            lease.backend.fleet_in_flight -= 1
        if lease.user_id is not None:
            for counts in (self._users, self._fleet_users):
                left = counts.get(lease.user_id, 0) - 1
                if left > 0:
                    counts[lease.user_id] = left
                else:
                    counts.pop(lease.user_id, None)
        if lease.id in self._local_only:
            self._local_only.discard(lease.id)
            self._fire()
        else:
            self._queue_release(lease.id)

    async def in_flight(self) -> dict[int, int]:
        try:
            counts = await self._client.hgetall(self._hashes[0])
        except _ERRORS as exc:
            self._outage(exc)
            return {b.id: b.total_in_flight for b in self._registry.backends if b.total_in_flight}
        return {int(backend): int(n) for backend, n in counts.items()}

    def user_in_flight(self, user_id: int) -> int:
        return max(self._fleet_users.get(user_id, 0), self._users.get(user_id, 0))

    def on_freed(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def note_waiting(self, waiters: int) -> None:
        """The picker's queue length changed. While it is not empty, keep the fleet's waiting flag up, so that
        releases on other workers are announced to us."""
        self._local_waiters = waiters
        if waiters and not self._stopped and (self._flagger is None or self._flagger.done()):
            self._flagger = asyncio.get_running_loop().create_task(self._raise_flag(), name='ledger-waiting-flag')

    async def _raise_flag(self) -> None:
        while self._local_waiters and not self._stopped:
            try:
                await self._client.set(self._waiting_flag, '1', px=3000)
            except _ERRORS as exc:
                self._outage(exc)
            # A slot freed elsewhere before the flag was up went unannounced; look again now that it is up.
            self._fire()
            await asyncio.sleep(1.0)

    async def heartbeat(self) -> None:
        """Tell the fleet this worker lives, give back the slots of workers that don't, and read the fleet's
        counts. The background task runs it every heartbeat_ttl / 3; raises when Redis is unreachable."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._alive, '1', px=int(self._ttl * 1000))
            pipe.sadd(self._workers, self.worker_id)
            await self._reconcile(keys=self._reconcile_keys(), args=self._reconcile_args(), client=pipe)
            pipe.hgetall(self._hashes[0])
            pipe.hgetall(self._hashes[1])
            *_, reclaimed, backends, users = await pipe.execute()
        self._redis_ok()
        fleet = {int(backend): int(n) for backend, n in backends.items()}
        for backend in self._registry.backends:
            backend.fleet_in_flight = fleet.get(backend.id, 0)
        self._fleet_users = {int(user): int(n) for user, n in users.items()}
        if reclaimed:
            self._fire()

    async def start(self) -> None:
        self._stopped = False
        try:
            await self.heartbeat()  # registered before the first request
        except _ERRORS as exc:
            self._outage(exc)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beat(), name='ledger-heartbeat'),
                       loop.create_task(self._listen(), name='ledger-subscriber')]
        if self._down_until is None:  # a release published before we listen would wake nobody here
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), self._ttl / 3)
        if self._pending:
            self._queue_release()

    async def stop(self) -> None:
        self._stopped = True
        pending = {*self._tasks, *(task for task in (self._flusher, self._flagger) if task is not None)}
        while pending:  # again and again: on Python 3.11 a redis-py call can swallow a cancellation
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        self._tasks, self._flusher, self._flagger = [], None, None
        self._pending.clear()  # the give-back below covers them: every lease this worker still holds
        try:
            # Without its alive key this worker is one reconcile reclaims: all its leases, then its entry.
            await self._client.delete(self._alive)
            await self._reconcile(keys=self._reconcile_keys(), args=self._reconcile_args())
        except _ERRORS as exc:
            log.warning('admission ledger: could not give back this worker\'s slots (%s); '
                        'they return when its heartbeat expires', exc)
        finally:
            await self._resp.close()
            if self._owns_client:
                await self._client.aclose()

    def _grant(self, lease_id: str, backend: BackendState, user_id: int | None) -> Lease:
        backend.in_flight += 1
        if backend.fleet_in_flight is not None:  # our own change, seen before the next heartbeat reads it
            backend.fleet_in_flight += 1
        if user_id is not None:
            self._users[user_id] = self._users.get(user_id, 0) + 1
            self._fleet_users[user_id] = self._fleet_users.get(user_id, 0) + 1
        return Lease(lease_id, backend, user_id)

    def _queue_release(self, *lease_ids: str) -> None:
        if self._stopped:  # stop() gave back all our leases; a straggler's goes when its alive key expires
            return
        self._pending.extend(lease_ids)
        self._flush_wanted.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name='ledger-release')

    async def _flush(self) -> None:
        """Send every pending release in one call; keep them and retry with backoff while Redis is away."""
        delay = 0.05
        while not self._stopped:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            while self._pending:
                batch = list(self._pending)
                try:
                    await self._script(self._release, [*self._hashes, self._leases, self._waiting_flag,
                                                       self._finish, self._tickets],
                                       [self.channel, self.worker_id, self._queues, *batch])
                except _ERRORS as exc:
                    self._outage(exc)
                    self._fire()  # our local counts did drop, and the fallback admits on them
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                del self._pending[:len(batch)]  # releases queued meanwhile stay for the next round
                delay = 0.05
                self._redis_ok()
                self._fire()  # our own frees: no need to wait for pub/sub

    async def _beat(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.heartbeat()
            except _ERRORS as exc:
                self._outage(exc)
            except Exception:
                log.exception('admission ledger: heartbeat failed')
            self._fire()  # a lost pub/sub message keeps waiters waiting one heartbeat at most

    async def _listen(self) -> None:
        delay = 0.05
        while not self._stopped:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message['type'] == 'subscribe':
                        self._subscribed.set()
                        self._fire()  # frees published while we were not listening are lost: look again
                        delay = 0.05
                    elif message['type'] == 'message':
                        data = message['data']
                        sender = (data.decode() if isinstance(data, bytes) else str(data)).rsplit(' ', 1)[0]
                        if sender != self.worker_id:  # our own frees were announced locally already
                            self._fire()
            except _ERRORS as exc:
                self._outage(exc)
            except Exception:
                log.exception('admission ledger: pub/sub failed')
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _cut_off(self, lease_id: str, ask: FairAsk | None) -> None:
        """An acquire whose answer never came: whatever it did in Redis is undone — the slot it may have taken,
        and, for a new request, the queue entry and the charge it may have made."""
        self._queue_release('!' + lease_id)
        if ask is not None and ask.tag is None:
            self.dequeue(ask, refund_tokens=ask.cost)

    def _reconcile_keys(self) -> list[str]:
        return [*self._hashes, self._workers, self._seen, self._finish]

    def _reconcile_args(self) -> list[str]:
        return [self.channel, self.worker_id, self._base, repr(time.time()), repr(self.fairness_window)]

    def _fire(self) -> None:
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception('admission ledger: on_freed callback failed')

    async def _script(self, script: Script, keys: list[str], args: list[str | int]) -> object:
        """A hot-path script on the RESP client. A connection lost mid-call is tried once more at once, as redis-py's
        retry did: both scripts may run twice (a repeated acquire finds its lease and answers the same, a repeated
        release finds nothing left to give). A timeout is not: Redis is slow or gone, fall back now."""
        try:
            return await self._resp.evalsha(script, keys, args)
        except RespTimeoutError:
            raise
        except RespConnectionError:
            return await self._resp.evalsha(script, keys, args)

    def _outage(self, exc: BaseException) -> None:
        # (No MaxConnectionsError case: the pool of from_url blocks instead of raising it, and the hot path has none.)
        if self._down_until is None:
            log.warning('admission ledger: Redis unreachable (%s); admitting on this worker\'s own counts', exc)
        self._down_until = time.monotonic() + _RETRY_REDIS_AFTER

    def _redis_ok(self) -> None:
        if self._down_until is not None:
            log.info('admission ledger: Redis reachable again; admitting on fleet-wide counts')
            self._down_until = None


def _resp_client_like(client: redis.Redis) -> RespClient:
    """A RespClient to the server, database and credentials of a redis-py client's pool."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    tls = isinstance(pool.connection_class, type) and issubclass(pool.connection_class, SSLConnection)
    return RespClient(kwargs.get('host', 'localhost'), kwargs.get('port', 6379), db=kwargs.get('db', 0),
                      username=kwargs.get('username'), password=kwargs.get('password'), path=kwargs.get('path'),
                      ssl_context=ssl.create_default_context() if tls else None)
