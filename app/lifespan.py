"""What the API process holds for its lifetime: database, key authenticator, the backend registry, the
admission ledger and gateway, the background jobs (core.jobs.background), and the background writers (audit trail,
key usage) that are flushed at shutdown."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI

from app.demo import DemoCluster, remove_simulated
from app.loopback import Loopback
from app.shutdown import GracefulShutdown
from core import runtime
from core.accounts.api_keys import ApiKeyAuthenticator
from core.accounts.key_usage import KeyUsageWriter
from core.accounts.service import principal_loader
from core.accounts.sign_in import close_sign_in_guard
from core.admin import site_settings
from core.admin.settings_sync import SettingsSync
from core.audit.retention import RetentionSweeper
from core.audit.writer import AuditWriter
from core.chat import files as chat_files
from core.config import Settings, get_settings
from core.db import Database, dispose_database, get_database
from core.gateway.engines import adapter_for
from core.gateway.image_fetch import ImageFetcher
from core.gateway.service import Gateway
from core.gateway.speech import SpeechGateway
from core.gateway.upstream import UpstreamPool
from core.jobs.background import BackgroundJobs, Housekeeping, JobIntervals
from core.jobs.leadership import Leadership
from core.migrations import head_revision
from core.models import utcnow
from core.quotas.guard import QuotaGuard
from core.quotas.rate_windows import LocalRateWindows, RateWindows, RedisRateWindows
from core.quotas.speech import SpeechQuota, SpeechUnit
from core.quotas.token_meter import RedisTokenMeter
from core.registry.lifecycle import BackendLifecycle
from core.registry.monitor import RegistryMonitor
from core.registry.view import RegistryView
from core.responses.store import ResponseStore
from core.runtime import Runtime
from core.scheduler.fair_queue import FairQueue
from core.scheduler.ledger import AdmissionLedger, LocalLedger
from core.scheduler.redis_ledger import RedisLedger
from core.scheduler.scheduler import FairScheduler
from core.secretbox import SecretBox
from core.speech.artifacts import AudioStore
from core.status.cluster import ClusterStats
from core.status.loop_lag import LoopLagMonitor
from core.status.metrics import GatewayMetrics
from core.telemetry.history import TelemetryRecorder
from core.telemetry.poller import NodePoller

log = logging.getLogger('mindrouter')


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    await site_settings.apply_stored(settings)  # what admins changed at run time outlives a restart
    database = get_database()
    authenticator = ApiKeyAuthenticator(principal_loader(database), ttl=settings.api_key_cache_ttl)
    usage_writer = KeyUsageWriter(authenticator, database, interval=settings.api_key_usage_flush_interval)
    audit = AuditWriter(database, interval=settings.audit_flush_interval, batch_size=settings.audit_batch_size,
                        buffer_limit=settings.audit_buffer_limit)
    registry = RegistryView()
    # For control-plane calls (discovery, health, /api/ps): short timeouts, apart from the inference pools.
    control_client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0), trust_env=False)
    monitor = RegistryMonitor(database, registry, control_client, unhealthy_after=settings.backend_unhealthy_after)
    upstream = UpstreamPool(connect_timeout=settings.backend_connect_timeout,
                            read_timeout=settings.backend_read_timeout)
    ledger: AdmissionLedger = LocalLedger(registry)  # one process: slots counted in memory
    if settings.redis_url:  # several workers or replicas: slots counted where all of them see it
        # A dead worker's slots come back within the lease period, as its cluster-wide jobs do.
        ledger = RedisLedger.from_url(settings.redis_url, registry, prefix=settings.redis_prefix,
                                      heartbeat_ttl=settings.leader_lease_ttl,
                                      burst_tokens=settings.scheduler_burst_tokens,
                                      fairness_window=settings.scheduler_fairness_window)
    scheduler = FairScheduler(registry, ledger, queue_timeout=settings.queue_timeout,
                              fair_queue=FairQueue(burst_tokens=settings.scheduler_burst_tokens,
                                                   window=settings.scheduler_fairness_window))

    app.state.settings = settings
    app.state.shutdown = shutdown = GracefulShutdown(settings.shutdown_grace_seconds)
    app.state.database = database
    app.state.schema_head = head_revision()  # read from disk once, not per probe
    app.state.authenticator = authenticator
    app.state.audit = audit
    app.state.responses = responses = ResponseStore(database)
    app.state.registry = registry
    app.state.monitor = monitor
    app.state.ledger = ledger
    app.state.scheduler = scheduler
    windows: RateWindows = LocalRateWindows()
    meter: RedisTokenMeter | None = None
    if settings.redis_url:  # requests per minute and token budgets that hold across workers
        windows = RedisRateWindows.from_url(settings.redis_url, prefix=settings.redis_prefix)
        meter = RedisTokenMeter.from_url(settings.redis_url, prefix=settings.redis_prefix)
    app.state.quota = quota = QuotaGuard(database, ledger, period=settings.quota_period, windows=windows,
                                         meter=meter)
    speech_meters = {unit: RedisTokenMeter.from_url(settings.redis_url, prefix=f'{settings.redis_prefix}:{unit}')
                     for unit in SpeechUnit} if settings.redis_url else None
    app.state.speech_quota = speech_quota = SpeechQuota(database, quota, meters=speech_meters)
    app.state.audio_store = audio_store = AudioStore(settings.resolved_artifact_path)
    lifecycle = BackendLifecycle(database, monitor, ledger, settle=settings.registry_reload_interval)
    app.state.lifecycle = lifecycle
    app.state.secret_box = secret_box = SecretBox(settings.resolved_secret_key())
    node_poller = NodePoller(database, control_client, secret_box, on_status_change=monitor.reload)
    app.state.node_poller = node_poller
    loop_lag = LoopLagMonitor(interval=settings.loop_lag_interval, stall_threshold=settings.loop_stall_ms / 1000,
                              trace=settings.loop_stall_trace)
    app.state.metrics = GatewayMetrics(registry, lambda: scheduler.waiting, lambda: node_poller.snapshots,
                                       loop_lag=loop_lag, audit=audit)
    app.state.cluster_stats = ClusterStats(database, registry)
    telemetry = TelemetryRecorder(database, node_poller, registry,
                                  retention_days=lambda: settings.telemetry_retention_days)
    app.state.telemetry = telemetry
    app.state.retention = retention = RetentionSweeper(database, lambda: settings)

    async def flush_writes() -> None:
        """What is buffered in memory, written now: a user's erasure must not be followed by their late rows."""
        while audit.pending and await audit.flush():
            pass
        await responses.flush()
    app.state.flush_writes = flush_writes
    jobs = BackgroundJobs(leadership=Leadership(database, ttl=settings.leader_lease_ttl), monitor=monitor,
                          poller=node_poller, telemetry=telemetry, lifecycle=lifecycle, registry=registry,
                          fair_queue=scheduler.fair_queue, quota=quota,
                          intervals=JobIntervals(registry_reload=settings.registry_reload_interval,
                                                 node_poll=settings.node_poll_interval,
                                                 backend_check=settings.backend_check_interval,
                                                 telemetry_sample=settings.telemetry_sample_interval,
                                                 lease_ttl=settings.leader_lease_ttl),
                          housekeeping=[Housekeeping('chat-uploads', UNSENT_UPLOAD_SWEEP,
                                                     lambda: _purge_unsent_uploads(database, settings)),
                                        Housekeeping('stored-responses', STORED_RESPONSE_SWEEP,
                                                     lambda: _prune_stored_responses(responses, settings)),
                                        Housekeeping('audit-retention', RETENTION_SWEEP,
                                                     lambda: _enforce_retention(retention, database, settings)),
                                        Housekeeping('stored-audio', STORED_AUDIO_SWEEP,
                                                     lambda: _prune_audio(audio_store, settings))])
    app.state.jobs = jobs
    app.state.control_client = control_client
    app.state.gateway = Gateway(registry=registry, picker=scheduler, upstream=upstream, adapters=adapter_for,
                                max_attempts=settings.backend_max_attempts,
                                settings=settings,  # context cap and num_ctx override read live
                                cooldown=settings.backend_cooldown, on_failure=monitor.check_soon,
                                on_ollama_timings=monitor.note_ollama_timings)
    app.state.speech = SpeechGateway(app.state.gateway)
    app.state.images = ImageFetcher(
        max_bytes=settings.image_max_bytes, timeout=settings.image_fetch_timeout,
        allow_private=settings.image_fetch_allow_private,
        allowed_hosts=[h.strip() for h in settings.image_fetch_allowed_hosts.split(',') if h.strip()])
    app.state.settings_sync = settings_sync = SettingsSync(
        database, settings, interval=settings.settings_reload_interval, redis_url=settings.redis_url,
        prefix=settings.redis_prefix)
    demo = DemoCluster() if app.state.demo else None
    try:
        if demo is not None:
            await demo.start(database, monitor, node_poller, secret_box)
        else:
            await remove_simulated(database)
        await monitor.reload()
    except Exception as exc:  # unreachable or not migrated: /readyz says so, and the reload loop keeps trying
        log.warning('could not load the backend registry yet: %s', exc)
    runtime.install(Runtime(settings=settings, database=database, registry=registry, monitor=monitor,
                            lifecycle=lifecycle, scheduler=scheduler, ledger=ledger, cluster=app.state.cluster_stats,
                            poller=node_poller, secret_box=app.state.secret_box, control_client=control_client,
                            authenticator=authenticator, quota=app.state.quota, api=Loopback(app),
                            flush_writes=app.state.flush_writes,
                            settings_sync=settings_sync))
    usage_writer.start()
    audit.start()
    await settings_sync.start()
    responses.start()
    await ledger.start()
    await jobs.start()
    if settings.loop_lag_interval:
        loop_lag.start()
    if settings.gc_freeze:  # what start-up built lives as long as the process (docs/performance.md)
        gc.collect()
        gc.freeze()
    shutdown.listen()  # after the server installed its signal handlers: ours chain onto them
    if settings.gc_gen0_threshold:  # young collections when garbage accumulates, not every few requests
        gc.set_threshold(settings.gc_gen0_threshold, *gc.get_threshold()[1:])
    try:
        yield
    finally:
        shutdown.close()
        runtime.install(None)
        await settings_sync.stop()
        loop_lag.stop()
        await jobs.stop()
        await monitor.stop()
        await ledger.stop()
        await quota.close()
        await speech_quota.close()
        if demo is not None:
            await demo.stop()
        await upstream.aclose()
        await app.state.images.aclose()
        await control_client.aclose()
        await audit.stop()  # flushes what is still in memory
        await responses.stop()
        await usage_writer.stop()
        await close_sign_in_guard()  # the login page's (its Redis connection)
        await dispose_database()


UNSENT_UPLOAD_SWEEP = 3600.0  # seconds between sweeps of chat uploads never sent
UNSENT_UPLOAD_AGE = timedelta(days=1)


async def _purge_unsent_uploads(database: Database, settings: Settings) -> None:
    """Uploads a user attached but never sent (a closed tab) are deleted after a day, files included."""
    async with database.session() as session:
        removed = await chat_files.purge_unsent(session, older_than=utcnow() - UNSENT_UPLOAD_AGE, settings=settings)
    if removed:
        log.info('deleted %d chat upload(s) never sent', removed)


RETENTION_SWEEP = 3600.0  # seconds between audit retention sweeps (docs/audit.md#retention)


RETENTION_SETTINGS = ('audit_content_retention_days', 'audit_metadata_retention_days')


async def _enforce_retention(sweeper: RetentionSweeper, database: Database, settings: Settings) -> None:
    # The leader may not be the process whose console an admin used: the periods come from the database.
    await site_settings.refresh(settings, RETENTION_SETTINGS, database)
    await sweeper.sweep()  # it logs what it deleted


STORED_RESPONSE_SWEEP = 3600.0  # seconds between deletions of stored responses past their retention


async def _prune_stored_responses(responses: ResponseStore, settings: Settings) -> None:
    removed = await responses.prune(timedelta(days=settings.responses_retention_days))
    if removed:
        log.info('deleted %d stored response(s) older than %d days', removed, settings.responses_retention_days)


STORED_AUDIO_SWEEP = 3600.0  # seconds between deletions of kept speech audio past its retention


async def _prune_audio(store: AudioStore, settings: Settings) -> None:
    removed = await store.prune(settings.audio_retention_days)
    if removed:
        log.info('deleted %d day(s) of kept speech audio older than %d days', removed, settings.audio_retention_days)
