"""Writing and reading the admin audit log: who changed what, when, from what to what.

Every admin change goes through `record`, whether it came from the console or the admin API, in the same
transaction as the change itself where the caller has one, so a change and its record stand or fall together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import AdminAction


async def record(session: AsyncSession, *, actor_id: int | None, actor: str, action: str, target: str = '',
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 via: str = 'console', commit: bool = True) -> AdminAction:
    entry = AdminAction(actor_id=actor_id, actor=actor, action=action, target=target[:255],
                        before=_jsonable(before), after=_jsonable(after), via=via)
    session.add(entry)
    if commit:
        await session.commit()
    return entry


async def search(session: AsyncSession, *, actor: str | None = None, action: str | None = None,
                 since: datetime | None = None, until: datetime | None = None, offset: int = 0,
                 limit: int = 50) -> tuple[list[AdminAction], int]:
    """One page of entries, newest first, and how many match in all (for server-side paging)."""
    query = select(AdminAction)
    if actor:
        query = query.where(col(AdminAction.actor) == actor)
    if action:
        query = query.where(col(AdminAction.action).startswith(action))
    if since is not None:
        query = query.where(col(AdminAction.created_at) >= since)
    if until is not None:
        query = query.where(col(AdminAction.created_at) < until)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(query.order_by(col(AdminAction.id).desc()).offset(offset).limit(limit))
    return list(rows), int(total)


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {key: v.isoformat() if isinstance(v, datetime) else v for key, v in value.items()}
