"""Speech budgets hold for the whole fleet: each worker adds its requests' characters and audio seconds in Redis,
seeded once from the audit trail (SQLite and MariaDB); without Redis they are read from the audit trail."""

from __future__ import annotations

import pytest

from core.accounts import service as accounts
from core.accounts.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.models import RequestLog
from core.quotas.guard import QuotaGuard
from core.quotas.speech import SpeechQuota, SpeechUnit
from core.quotas.token_meter import RedisTokenMeter
from core.registry.view import RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.resp import RespClient


async def speaker(database: Database) -> Principal:
    """A user with a text-to-speech and a speech-to-text request earlier this month in the audit trail."""
    async with database.session() as session:
        user = await accounts.create_user(session, username='speaker', role='student')
        assert user.id is not None
        session.add(RequestLog(request_id='spoke', user_id=user.id, endpoint='/v1/audio/speech', model='kokoro',
                               status='completed', speech_chars=300))
        session.add(RequestLog(request_id='heard', user_id=user.id, endpoint='/v1/audio/transcriptions',
                               model='whisper', status='completed', audio_seconds=12.25))
        await session.commit()
        return Principal(key_id=1, key_status='active', key_expires_at=None, user_id=user.id, username='speaker',
                         user_active=True, role='student', is_admin=False, scheduler_weight=1,
                         tts_char_budget=1000, stt_seconds_budget=60)


async def test_two_workers_spend_one_speech_budget_seeded_from_the_audit_trail(
        database: Database, redis_url: str, redis_prefix: str) -> None:
    principal = await speaker(database)
    ledger = LocalLedger(RegistryView())
    workers = []
    for _ in range(2):
        meters = {unit: RedisTokenMeter(RespClient.from_url(redis_url), prefix=f'{redis_prefix}:{unit}', fresh=0)
                  for unit in SpeechUnit}
        workers.append((SpeechQuota(database, QuotaGuard(database, ledger), meters=meters), meters))
    (first, first_meters), (second, second_meters) = workers
    try:
        assert await first.used(principal.user_id, SpeechUnit.chars) == 300
        assert await first.used(principal.user_id, SpeechUnit.seconds) == 12.25
        first.record(principal.user_id, SpeechUnit.chars, 700, has_budget=True)
        first.record(principal.user_id, SpeechUnit.seconds, 40.5, has_budget=True)
        for meter in first_meters.values():
            await meter.flush()
        assert await second.used(principal.user_id, SpeechUnit.seconds) == 52.75  # the other worker sees it
        await second.admit(principal, SpeechUnit.seconds)
        with pytest.raises(LimitExceeded, match='1,000 of 1,000 characters'):
            await second.admit(principal, SpeechUnit.chars)
        second.record(principal.user_id, SpeechUnit.seconds, 8, has_budget=True)
        for meter in second_meters.values():
            await meter.flush()
        with pytest.raises(LimitExceeded, match='61 of 60 seconds'):
            await first.admit(principal, SpeechUnit.seconds)
    finally:
        await first.close()
        await second.close()


async def test_without_redis_speech_is_read_from_the_audit_trail(database: Database) -> None:
    principal = await speaker(database)
    quota = SpeechQuota(database, QuotaGuard(database, LocalLedger(RegistryView())))
    assert await quota.used(principal.user_id, SpeechUnit.chars) == 300
    quota.record(principal.user_id, SpeechUnit.chars, 650, has_budget=True)
    await quota.admit(principal, SpeechUnit.chars)  # 950 of 1,000
    quota.record(principal.user_id, SpeechUnit.chars, 50, has_budget=True)
    with pytest.raises(LimitExceeded) as refused:
        await quota.admit(principal, SpeechUnit.chars)
    assert refused.value.retry_after > 0
