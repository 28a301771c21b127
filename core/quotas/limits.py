"""Who may use how much: each role's defaults (weight, token budget, requests per minute, running
requests) and each user's overrides, which an admin edits; a None override column means "the role's".

Changes reach the request path with the key cache (API_KEY_CACHE_TTL, at most 5 s), since a key's
cached principal carries its user's effective limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import UnknownRole
from core.models import QuotaOverride, Role, User, utcnow

LIMIT_FIELDS = ('scheduler_weight', 'token_budget', 'rpm_limit', 'max_concurrent', 'tts_char_budget',
                'stt_seconds_budget')


class RoleLimits(SQLModel):
    """PATCH /api/admin/roles/{name}: only the fields sent change. 0 means unlimited (not for the weight)."""

    scheduler_weight: int | None = Field(default=None, ge=1, le=1000)
    token_budget: int | None = Field(default=None, ge=0)
    rpm_limit: int | None = Field(default=None, ge=0)
    max_concurrent: int | None = Field(default=None, ge=0)
    tts_char_budget: int | None = Field(default=None, ge=0)  # characters read aloud per quota period
    stt_seconds_budget: int | None = Field(default=None, ge=0)  # seconds of audio transcribed per quota period


class UserLimits(SQLModel):
    """A user's overrides; null: the role's value."""

    scheduler_weight: int | None = Field(default=None, ge=1, le=1000)
    token_budget: int | None = Field(default=None, ge=0)
    rpm_limit: int | None = Field(default=None, ge=0)
    max_concurrent: int | None = Field(default=None, ge=0)
    tts_char_budget: int | None = Field(default=None, ge=0)
    stt_seconds_budget: int | None = Field(default=None, ge=0)
    note: str = Field(default='', max_length=255)


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    username: str
    role: str
    role_limits: dict[str, int]
    overrides: dict[str, int | None]
    effective: dict[str, int]
    note: str


async def list_roles(session: AsyncSession) -> list[Role]:
    return list(await session.exec(select(Role).order_by(Role.scheduler_weight.desc())))  # type: ignore[attr-defined]


async def update_role(session: AsyncSession, *, name: str, changes: RoleLimits) -> Role:
    role = (await session.exec(select(Role).where(Role.name == name))).first()
    if role is None:
        known = ', '.join(r.name for r in await list_roles(session))
        raise UnknownRole(f'no role named {name!r}; the roles are {known}', param='name')
    for field, value in changes.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(role, field, value)
    session.add(role)
    await session.commit()
    await session.refresh(role)
    return role


async def limits_of(session: AsyncSession, *, user: User) -> EffectiveLimits:
    role = await session.get(Role, user.role_id)
    assert role is not None and user.id is not None
    override = await session.get(QuotaOverride, user.id)
    role_limits = {field: getattr(role, field) for field in LIMIT_FIELDS}
    overrides = {field: getattr(override, field) if override else None for field in LIMIT_FIELDS}
    effective = {field: role_limits[field] if overrides[field] is None else overrides[field]
                 for field in LIMIT_FIELDS}
    return EffectiveLimits(username=user.username, role=role.name, role_limits=role_limits, overrides=overrides,
                           effective=effective, note=override.note if override else '')  # type: ignore[arg-type]


async def set_user_limits(session: AsyncSession, *, user: User, limits: UserLimits) -> EffectiveLimits:
    """Replace the user's overrides (a null field: the role's value); all null removes the override row."""
    assert user.id is not None
    override = await session.get(QuotaOverride, user.id)
    values = {field: getattr(limits, field) for field in LIMIT_FIELDS}
    if all(value is None for value in values.values()):
        if override is not None:
            await session.delete(override)
    else:
        override = override or QuotaOverride(user_id=user.id)
        for field, value in values.items():
            setattr(override, field, value)
        override.note, override.updated_at = limits.note, utcnow()
        session.add(override)
    await session.commit()
    return await limits_of(session, user=user)


async def raise_user_limits(session: AsyncSession, *, user: User, note: str, token_budget: int | None = None,
                            rpm_limit: int | None = None, max_concurrent: int | None = None,
                            tts_char_budget: int | None = None, stt_seconds_budget: int | None = None) -> None:
    """Set the given overrides, keeping the others (an approved quota request); not committed."""
    assert user.id is not None
    override = await session.get(QuotaOverride, user.id) or QuotaOverride(user_id=user.id)
    for field, value in (('token_budget', token_budget), ('rpm_limit', rpm_limit),
                         ('max_concurrent', max_concurrent), ('tts_char_budget', tts_char_budget),
                         ('stt_seconds_budget', stt_seconds_budget)):
        if value is not None:
            setattr(override, field, value)
    override.note, override.updated_at = note[:255], utcnow()
    session.add(override)
