"""An admin page's handlers check the account each time: an admin demoted or deactivated while a tab is open
gets a refusal and no more data from it, whichever handler fires next (a click, a field, a timer)."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.testing import User
from sqlmodel import select

from components import health_banner
from components.admin_guard import REFUSAL
from core.accounts.service import get_user
from core.db import Database
from core.models import Role
from tests.ui.conftest import ADMIN, sign_in_as_admin

# page, a marker the page shows data in, what the admin does next: click a marker, type into one ('type:'), or
# nothing (None: the page's own timer fires)
PAGES = [
    ('/admin/audit', 'audit-table', 'audit-search'),
    ('/admin/log', 'log-table', 'log-search'),
    ('/admin', 'top-users', 'export-users-csv'),
    ('/admin/queue', 'queue-users', None),
    ('/admin/users', 'users-table', 'type:users-search'),
    ('/admin/nodes', 'node-list', 'nodes-export'),
    ('/admin/backends', 'backend-register', None),
    ('/admin/models', 'models', 'models-refresh'),
    ('/admin/quota-requests', 'quota-requests', 'quota-refresh'),
    ('/admin/settings', 'editable-settings', 'save-context_length_cap'),
]


async def take_admin_rights(database: Database, *, deactivate: bool = False) -> None:
    """What another admin does meanwhile (written directly: the last admin could not be demoted otherwise)."""
    async with database.session() as session:
        account = await get_user(session, username=ADMIN[0])
        if deactivate:
            account.is_active = False
        else:
            account.role_id = (await session.exec(select(Role.id).where(Role.name == 'student'))).one()
        await session.commit()


@pytest.fixture(autouse=True)
def quiet_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The health banner every admin page has refreshes (and so checks) every few seconds; here the page's own
    handler must refuse, not the banner's."""
    monkeypatch.setattr(health_banner, 'REFRESH_SECONDS', 3600.0)


@pytest.mark.parametrize(('path', 'data', 'action'), PAGES)
async def test_a_demoted_admins_open_tab_refuses_and_shows_nothing_more(people: Database, user: User, path: str,
                                                                       data: str, action: str | None) -> None:
    await sign_in_as_admin(user)
    await user.open(path)
    await user.should_see(marker=data, retries=50)
    await asyncio.sleep(0.2)  # the page's first load has run
    await take_admin_rights(people)

    if action is not None and action.startswith('type:'):
        user.find(marker=action.removeprefix('type:')).type('r')
    elif action is not None:
        user.find(marker=action).click()
    await user.should_see(marker='admin-refused', retries=120)  # timers: within a few seconds
    await user.should_see(REFUSAL)
    await user.should_not_see(marker=data)


async def test_a_deactivated_admin_cannot_open_a_request_from_an_open_audit_tab(people: Database,
                                                                                user: User) -> None:
    await sign_in_as_admin(user)
    await user.open('/admin/audit')
    await user.should_see(marker='audit-table', retries=50)
    await take_admin_rights(people, deactivate=True)

    user.find(marker='audit-table').trigger('rowClick', [{}, {'request_id': 'r-1'}, 0])
    await user.should_see(marker='admin-refused', retries=50)
    await user.should_not_see(marker='audit-detail')
    response = await user.http_client.get('/admin/audit')  # and the next page is the login's
    assert response.status_code in (302, 303, 307) and response.headers['location'].startswith('/login')
