"""Whether username and password sign-in is on: LOCAL_LOGIN, or the value an admin (or the break-glass command
`mindrouter local-login on`) stored over it.

Read from the database at each use (the login page, a sign-in attempt), not from this process's settings: the
break-glass command runs in another process, and must work without a restart of the one serving the console.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.admin import site_settings
from core.admin.cluster_actions import Actor
from core.config import Settings
from core.models import SiteSetting

SETTING = 'local_login'


async def local_login_enabled(session: AsyncSession, settings: Settings) -> bool:
    row = await session.get(SiteSetting, SETTING)
    if row is not None and isinstance(row.value, bool):
        return row.value
    return settings.local_login


async def set_local_login(session: AsyncSession, settings: Settings, *, enabled: bool, actor: Actor) -> None:
    """Store the choice over LOCAL_LOGIN (and record who made it in the admin log)."""
    await site_settings.change(session, settings, name=SETTING, value=enabled, actor_id=actor.id, actor=actor.name,
                               via=actor.via)
