"""An admin reads the admin audit log at /admin/log: who changed what, and what exactly changed."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing import User

from core.audit import admin_log
from core.db import Database
from tests.ui.conftest import ADMIN


@pytest.fixture
async def changes(people: Database) -> Database:
    async with people.session() as session:
        await admin_log.record(session, actor_id=None, actor='root', action='user.role', target='user stu',
                               before={'role': 'student', 'email': 'stu@uni.example', 'rpm_limit': 60},
                               after={'role': 'faculty', 'email': 'stu@uni.example', 'rpm_limit': 120})
        await admin_log.record(session, actor_id=None, actor='ops', action='backend.drain', target='backend 3 (gpu-a)',
                               before={'status': 'healthy'}, after={'status': 'draining'}, via='api')
        await admin_log.record(session, actor_id=None, actor='root', action='user.create', target='user fac',
                               after={'username': 'fac', 'role': 'faculty'})
    return people


async def test_the_log_lists_every_change_newest_first(changes: Database, user: User) -> None:
    await open_log(user)
    await sees_actions(user, 'user.create', 'backend.drain', 'user.role')
    await user.should_see('1 to 3 of 3')
    drain = table(user).rows[1]
    assert (drain['actor'], drain['target'], drain['via'], drain['changed']) == \
        ('ops', 'backend 3 (gpu-a)', 'api', 'status')


async def test_filtering_by_who_and_by_action_prefix(changes: Database, user: User) -> None:
    await open_log(user)
    user.find(marker='log-actor').type('ops')
    user.find(marker='log-search').click()
    await sees_actions(user, 'backend.drain')

    user.find(marker='log-actor').clear()
    user.find(marker='log-action').type('user.')
    user.find(marker='log-search').click()
    await sees_actions(user, 'user.create', 'user.role')

    user.find(marker='log-action').clear().type('quota.')
    user.find(marker='log-search').click()
    await user.should_see('No entries match.')


async def test_opening_an_entry_shows_before_and_after_with_the_changes_highlighted(changes: Database,
                                                                                    user: User) -> None:
    await open_log(user)
    await sees_actions(user, 'user.create', 'backend.drain', 'user.role')
    role_change = table(user).rows[2]
    user.find(marker='log-table').trigger('rowClick', [{}, role_change, 2])
    await user.should_see('Before')
    await user.should_see('student')
    await user.should_see('faculty')
    assert texts(user, 'diff-changed') == ['role', 'rpm_limit']
    assert texts(user, 'diff-same') == ['email']

    created = table(user).rows[0]
    user.find(marker='log-table').trigger('rowClick', [{}, created, 0])
    await user.should_see('(absent)')  # nothing existed before a creation
    assert texts(user, 'diff-changed') == ['username', 'role']


async def test_a_page_turn_shows_older_entries(people: Database, user: User) -> None:
    async with people.session() as session:
        for number in range(55):
            await admin_log.record(session, actor_id=None, actor='root', action=f'setting.{number:02d}',
                                   commit=False)
        await session.commit()
    await open_log(user)
    await user.should_see('1 to 50 of 55')
    user.find(marker='log-older').click()
    await user.should_see('51 to 55 of 55')
    await sees_actions(user, 'setting.04', 'setting.03', 'setting.02', 'setting.01', 'setting.00')


# --- the admin's steps -------------------------------------------------------------------------------------------

async def open_log(user: User) -> None:
    await user.open('/admin/log')  # the gate asks to sign in, then comes back here
    user.find(marker='login-username').type(ADMIN[0])
    user.find(marker='login-password').type(ADMIN[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker='log-table', retries=100)  # a password check takes a moment
    await user.should_not_see('Loading…', retries=50)


def table(user: User) -> ui.table:
    element = next(iter(user.find(marker='log-table').elements))
    assert isinstance(element, ui.table)
    return element


def texts(user: User, marker: str) -> list[str]:
    labels = sorted(user.find(marker=marker).elements, key=lambda element: element.id)
    return [label.text for label in labels if isinstance(label, ui.label)]


async def sees_actions(user: User, *actions: str) -> None:
    for _ in range(40):
        if [row['action'] for row in table(user).rows] == list(actions):
            return
        await asyncio.sleep(0.05)
    assert [row['action'] for row in table(user).rows] == list(actions)
