"""Which process runs the cluster-wide background jobs.

Several API workers (and gateway replicas) share one database. Each of them must keep its own view of
the registry fresh, but the sidecar polls, health checks, telemetry samples and drain completion must
happen once for the whole deployment, not once per process. Whoever holds the `cluster-jobs` lease, a
row in `job_leases` with an expiry, does them; the others read what it wrote. The holder renews the
lease well before it expires; when the holder dies, the lease runs out and the next process to try
takes it over, so the jobs go on within one lease period.

A row lease rather than a Redis lock: it works on the embedded SQLite default (several workers on one
file) and on MariaDB alike, and needs nothing but the database that every process has anyway.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.db import Database
from core.models import JobLease, utcnow

log = logging.getLogger('mindrouter.jobs')


def process_identity() -> str:
    """host-pid-random: unique per process, readable in the lease table."""
    return f'{socket.gethostname()[:80]}-{os.getpid()}-{secrets.token_hex(3)}'


class Leadership:
    def __init__(self, database: Database, *, ttl: float, name: str = 'cluster-jobs',
                 holder: str | None = None) -> None:
        self._database = database
        self._ttl = ttl
        self.name = name
        self.holder = holder or process_identity()
        self._held_until = 0.0  # monotonic time up to which we may act as leader
        self._unreachable = False  # the last renewal failed (warned once)
        self._leading = False  # what the log last said

    @property
    def held(self) -> bool:
        return time.monotonic() < self._held_until

    async def renew(self) -> bool:
        """Take the lease if it is free or expired, extend it if it is ours; whether we hold it now.

        One conditional UPDATE (or the first INSERT) decides, so two processes racing for an expired lease
        cannot both win. When the database cannot be reached we keep acting until our lease would have
        expired anyway, and no longer: by then another process may have taken it."""
        asked = time.monotonic()
        now = utcnow()
        # Rounded up to a whole second: MariaDB's DATETIME keeps none, and a stored expiry cut short would
        # let another process take the lease while this one still believes (for up to a second) it holds it.
        until = _next_whole_second(now + timedelta(seconds=self._ttl))
        table = JobLease.__table__  # type: ignore[attr-defined]
        try:
            async with self._database.connect() as conn:
                taken = await conn.execute(
                    update(table)
                    .where(col(JobLease.name) == self.name,
                           or_(col(JobLease.holder) == self.holder, col(JobLease.expires_at) < now))
                    .values(holder=self.holder, expires_at=until))
                won = taken.rowcount > 0
                if not won:
                    try:
                        await conn.execute(insert(table).values(name=self.name, holder=self.holder, expires_at=until))
                        won = True
                    except IntegrityError:  # the row exists and someone else holds it
                        await conn.rollback()
                await conn.commit()
        except Exception as exc:
            if not self._unreachable:  # once per outage, not on every renewal
                log.warning('leadership: could not renew the %s lease: %s', self.name, exc)
            self._unreachable = True
            self._report_change()  # our lease may have run out meanwhile
            return self.held
        if self._unreachable:
            self._unreachable = False
            log.info('leadership: the %s lease can be renewed again', self.name)
        # Count the lease from when we asked, not when the answer came: never act past its real expiry.
        self._held_until = asked + self._ttl if won else 0.0
        self._report_change()
        return won

    def _report_change(self) -> None:
        """One line when this process starts or stops running the cluster-wide jobs, whatever the cause."""
        leading = self.held
        if leading != self._leading:
            self._leading = leading
            log.info('%s: this process (%s) %s', self.name, self.holder,
                     'now runs the cluster-wide jobs' if leading else 'no longer runs the cluster-wide jobs')

    async def resign(self) -> None:
        """Let go at shutdown, so that another process takes over at once rather than after the TTL."""
        if not self.held:
            return
        self._held_until = 0.0
        self._report_change()
        try:
            async with self._database.connect() as conn:
                await conn.execute(delete(JobLease.__table__).where(  # type: ignore[attr-defined]
                    col(JobLease.name) == self.name, col(JobLease.holder) == self.holder))
                await conn.commit()
        except Exception as exc:
            log.warning('leadership: could not give up the %s lease: %s', self.name, exc)


def _next_whole_second(moment: datetime) -> datetime:
    return moment if moment.microsecond == 0 else moment.replace(microsecond=0) + timedelta(seconds=1)
