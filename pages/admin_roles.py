"""The roles section of /admin/users: each role's scheduler weight, token budget, requests per minute and
running requests, as PATCH /api/admin/roles/{name} changes them (core.quotas.quota_admin.update_role, recorded).

Not a page of its own: pages.admin_users shows it under the user list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from components.admin_guard import admin_handler
from components.notify import notify_failure
from components.session import require_admin
from core import runtime
from core.admin.cluster_actions import Actor
from core.db import get_database
from core.models import Role
from core.quotas import limits, quota_admin
from core.quotas.limits import RoleLimits

# (field, label, marker prefix, smallest value); 0 means unlimited except for the weight
ROLE_FIELDS = (('scheduler_weight', 'Weight', 'role-weight', 1),
               ('token_budget', 'Token budget', 'role-budget', 0),
               ('rpm_limit', 'Requests/min', 'role-rpm', 0),
               ('max_concurrent', 'Running', 'role-concurrency', 0),
               ('tts_char_budget', 'Speech chars', 'role-tts-chars', 0),
               ('stt_seconds_budget', 'Audio seconds', 'role-stt-seconds', 0))


class RolesSection:
    def __init__(self) -> None:
        with ui.card().classes('w-full gap-2'):
            ui.label('Roles').classes('text-lg font-semibold')
            ui.label('What every user of a role gets unless their own overrides say otherwise. A higher weight '
                     'means a larger share of the cluster when it is busy; 0 means unlimited for the others. '
                     'Changes reach running requests within a few seconds.').classes('text-sm opacity-70')
            self._rows = ui.column().classes('w-full gap-1').mark('roles')

    async def load(self) -> None:
        try:
            async with get_database().session() as session:
                roles = await limits.list_roles(session)
        except Exception as exc:
            notify_failure(exc)
            return
        self._rows.clear()
        with self._rows:
            for role in roles:
                self._draw(role)

    def _draw(self, role: Role) -> None:
        with ui.row().classes('w-full items-start gap-4 no-wrap').mark(f'role-{role.name}'):
            with ui.column().classes('w-40 gap-0 pt-4'):
                ui.label(role.display_name or role.name).classes('font-semibold')
                ui.label(role.description or ('administrator' if role.is_admin else '')).classes('text-xs opacity-60')
            inputs: dict[str, ui.number] = {}
            for field, label, marker, least in ROLE_FIELDS:
                inputs[field] = ui.number(
                    label, value=getattr(role, field), min=least, step=1, format='%d',
                    validation=whole_number(least, optional=False)).classes('w-36').mark(f'{marker}-{role.name}')

            @admin_handler
            async def save() -> None:
                if not all([element.validate() for element in inputs.values()]):
                    return
                try:
                    me = await require_admin()
                    changes = RoleLimits(**{field: int(element.value) for field, element in inputs.items()})
                    async with get_database().session() as session:
                        await quota_admin.update_role(session, actor=Actor(id=me.id, name=me.username),
                                                      name=role.name, changes=changes)
                    runtime.forget_cached_keys()  # the role's new limits hold from its users' next request
                except Exception as exc:
                    notify_failure(exc)
                    return
                ui.notify(f'Role {role.name} saved', type='positive')

            ui.button('Save', icon='save', on_click=save).props('flat').classes('mt-3').mark(f'role-save-{role.name}')


def whole_number(least: int, *, optional: bool) -> dict[str, Callable[[Any], bool]]:
    """A number field's rule: a whole number from `least` up (or blank, when `optional`)."""
    def ok(value: Any) -> bool:
        if value is None:
            return optional
        return bool(value >= least and float(value).is_integer())
    return {f'A whole number, at least {least}' if optional else f'Required: a whole number, at least {least}': ok}
