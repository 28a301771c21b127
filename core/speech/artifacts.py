"""The audio of speech requests, kept next to their audit rows when an admin turns audio capture on
(AUDIT_LOG_AUDIO, a run-time setting): `<ARTIFACT_STORAGE_PATH>/audio/<YYYY-MM-DD>/<request id>.<ext>`, written off
the event loop, deleted after AUDIO_RETENTION_DAYS (`prune`, a periodic job).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

from core.models import utcnow

log = logging.getLogger('mindrouter.speech')

_EXTENSIONS = {'ogg': 'ogg', 'opus': 'ogg', 'webm': 'webm', 'mp4': 'm4a', 'pcm': 'pcm'}


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root / 'audio'

    async def save(self, request_id: str, data: bytes, container: str, *, now: datetime | None = None) -> str | None:
        """Write the audio; its path relative to the artifact folder (what the audit row keeps), or None when it
        could not be written (logged: a full disk must not fail the request that was already answered)."""
        day = (now or utcnow()).date().isoformat()
        relative = Path('audio') / day / f'{request_id}.{_EXTENSIONS.get(container, container or "bin")}'
        target = self.root.parent / relative
        try:
            await asyncio.to_thread(_write, target, data)
        except OSError as exc:
            log.error('could not keep the audio of request %s: %s', request_id, exc)
            return None
        return relative.as_posix()

    async def prune(self, retention_days: int, *, today: date | None = None) -> int:
        """Delete the days of audio older than the retention; the number of day folders deleted."""
        return await asyncio.to_thread(self._prune, (today or utcnow().date()) - timedelta(days=retention_days))

    def _prune(self, cutoff: date) -> int:
        if not self.root.is_dir():
            return 0
        removed = 0
        for folder in self.root.iterdir():
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if day < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
