"""The services of the running gateway, for the pages of the same process.

The API app's lifespan builds the live services (the registry view with its in-flight counts, the scheduler
and its queue, the backend lifecycle, the node poller, cluster figures) and installs them here; the NiceGUI
pages, which live on another ASGI app in the same process, read them from here. Admin pages thus call the
very objects the admin API calls, never a second implementation. Outside a running server (a shell, a unit
test) nothing is installed and `current()` is None: pages show what the database alone can tell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # typing only: importing these pulls in the whole gateway
    import httpx

    from core.accounts.api_keys import ApiKeyAuthenticator
    from core.admin.settings_sync import SettingsSync
    from core.config import Settings
    from core.db import Database
    from core.quotas.guard import QuotaGuard
    from core.registry.lifecycle import BackendLifecycle
    from core.registry.monitor import RegistryMonitor
    from core.registry.view import RegistryView
    from core.scheduler.ledger import AdmissionLedger
    from core.scheduler.scheduler import FairScheduler
    from core.secretbox import SecretBox
    from core.status.cluster import ClusterStats
    from core.telemetry.poller import NodePoller


class StreamedResponse(Protocol):
    status: int
    headers: dict[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


class InferenceClient(Protocol):
    """Calls this process's own API as a user's key (known by its digest), streamed (app/loopback.py)."""

    def stream(self, *, key_digest: str, path: str, body: dict[str, Any] | None = None,
               raw: tuple[bytes, str] | None = None) -> AbstractAsyncContextManager[StreamedResponse]: ...


@dataclass(slots=True, frozen=True)
class Runtime:
    settings: Settings
    database: Database
    registry: RegistryView
    monitor: RegistryMonitor
    lifecycle: BackendLifecycle
    scheduler: FairScheduler
    ledger: AdmissionLedger
    cluster: ClusterStats
    poller: NodePoller
    secret_box: SecretBox
    control_client: httpx.AsyncClient
    authenticator: ApiKeyAuthenticator  # a key revoked in the console is forgotten at once (invalidate)
    quota: QuotaGuard  # the same usage figures /api/account/usage reports
    api: InferenceClient  # the API itself, for the console's chat: every request takes the API's own path
    # Writes what the audit writer and the response store still hold in memory (before a user's data is erased).
    flush_writes: Callable[[], Awaitable[None]] | None = None
    settings_sync: SettingsSync | None = None  # tells the other processes that a run-time setting changed


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Called by the API lifespan at startup (and with None at shutdown)."""
    global _current
    _current = runtime


def current() -> Runtime | None:
    return _current


def forget_cached_keys() -> None:
    """The running gateway in this process drops its cached key checks, which carry their owner's status, role and
    limits: after a change made in the console, as the admin API does. Other processes see it within
    API_KEY_CACHE_TTL."""
    if _current is not None:
        _current.authenticator.invalidate()
