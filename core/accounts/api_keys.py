"""API-key checks on the request path: digest, in-memory cache, usage recording. No database per request.

A key's answer (its owner, role and status, or "no such key") is cached by digest for `ttl` seconds
(at most 5), so a key revoked from another process stops working within that time. Concurrent misses
for one digest share a single database lookup, and when the database is down a key that was valid a
moment ago keeps working while the lookups are retried, instead of failing every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.accounts.security import api_key_digest
from core.errors import AuthenticationFailed, DatabaseUnavailable, PermissionDenied
from core.models import ApiKeyStatus

log = logging.getLogger('mindrouter.auth')

_RETRY_AFTER_FAILURE = 1.0  # seconds between database retries while serving a stale entry


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and its owner, as the request path needs them."""

    key_id: int
    key_status: str
    key_expires_at: float | None  # Unix time
    user_id: int
    username: str
    user_active: bool
    role: str
    is_admin: bool
    scheduler_weight: int  # the user's own weight if an admin set one, else its role's
    token_budget: int = 0  # tokens per quota period; 0: unlimited (override, else role)
    rpm_limit: int = 0  # requests per minute; 0: unlimited
    max_concurrent: int = 0  # requests running at once; 0: unlimited
    key_rpm_limit: int | None = None  # requests per minute through this key, when the key has its own limit
    tts_char_budget: int = 0  # characters read aloud per quota period; 0: unlimited (core.quotas.speech)
    stt_seconds_budget: int = 0  # seconds of audio transcribed per quota period; 0: unlimited


PrincipalLoader = Callable[[str], Awaitable[Principal | None]]


class RefusedKey(AuthenticationFailed):
    """A real key that may not be used now (revoked, expired): `principal` says whose, for the audit trail."""

    def __init__(self, message: str, principal: Principal) -> None:
        super().__init__(message)
        self.principal = principal


class OwnerDisabled(PermissionDenied):
    """A valid key whose owner's account is disabled: `principal` says whose, for the audit trail."""

    def __init__(self, message: str, principal: Principal) -> None:
        super().__init__(message)
        self.principal = principal


@dataclass(slots=True)
class _Entry:
    principal: Principal | None
    fresh_until: float


class ApiKeyAuthenticator:
    def __init__(self, load: PrincipalLoader, *, ttl: float = 3.0, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._known: dict[str, _Entry] = {}  # digest -> answer for real keys
        self._unknown: dict[str, _Entry] = {}  # digest -> None; separate so a flood cannot evict real keys
        self._loading: dict[str, asyncio.Task[Principal | None]] = {}
        self._last_used: dict[int, float] = {}  # key id -> Unix time, drained by the usage writer

    async def authenticate(self, plaintext: str | None) -> Principal:
        """The principal for a presented key, or AuthenticationFailed / PermissionDenied."""
        if not plaintext:
            raise AuthenticationFailed('Missing API key: send "Authorization: Bearer KEY" or "X-API-Key: KEY".')
        return await self.authenticate_digest(api_key_digest(plaintext))

    async def authenticate_digest(self, digest: str) -> Principal:
        """`authenticate` for a key known by its digest: the console calls the API as a user's own web-console
        key, whose plaintext nobody keeps (app/loopback.py)."""
        principal = await self._lookup(digest)
        if principal is None:
            raise AuthenticationFailed('Invalid API key.')
        now = self._wall_clock()
        if principal.key_status == ApiKeyStatus.revoked:
            raise RefusedKey('This API key has been revoked.', principal)
        if principal.key_status != ApiKeyStatus.active or (
                principal.key_expires_at is not None and principal.key_expires_at <= now):
            raise RefusedKey('This API key has expired.', principal)
        if not principal.user_active:
            raise OwnerDisabled('The account that owns this API key is disabled.', principal)
        self._last_used[principal.key_id] = now
        return principal

    def invalidate(self, digest: str | None = None) -> None:
        """Drop cached answers (one digest, or all): used after a change made in this process."""
        if digest is None:
            self._known.clear()
            self._unknown.clear()
        else:
            self._known.pop(digest, None)
            self._unknown.pop(digest, None)

    def drain_usage(self) -> dict[int, float]:
        """Last-use times recorded since the previous drain, for the batch writer."""
        usage, self._last_used = self._last_used, {}
        return usage

    async def _lookup(self, digest: str) -> Principal | None:
        entry = self._known.get(digest) or self._unknown.get(digest)
        if entry is not None and entry.fresh_until > self._clock():
            return entry.principal
        loading = self._loading.get(digest)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load_and_store(digest))
            self._loading[digest] = loading
            loading.add_done_callback(lambda task: self._loading_done(digest, task))
        try:
            # shield: a client that disconnects must not cancel the lookup other requests wait on
            return await asyncio.shield(loading)
        except DatabaseUnavailable as exc:
            if entry is None or entry.principal is None:
                raise
            log.warning('API key lookup failed, serving the cached answer: %s', exc.message)
            entry.fresh_until = self._clock() + _RETRY_AFTER_FAILURE
            return entry.principal

    async def _load_and_store(self, digest: str) -> Principal | None:
        principal = await self._load(digest)
        self._store(digest, principal, self._clock())
        return principal

    def _loading_done(self, digest: str, task: asyncio.Task[Principal | None]) -> None:
        if self._loading.get(digest) is task:
            del self._loading[digest]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited any more is not logged as lost

    def _store(self, digest: str, principal: Principal | None, now: float) -> None:
        table = self._known if principal is not None else self._unknown
        table.pop(digest, None)  # re-insert at the end: the dict's order is the eviction order
        if len(table) >= self._max_entries:
            del table[next(iter(table))]
        table[digest] = _Entry(principal, now + self._ttl)
