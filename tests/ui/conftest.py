"""Pages driven by NiceGUI's simulated user (no browser), on a migrated SQLite database.

`people` creates an admin (root/rootpass1) and a student (stu/stupass12); `log_in(user, name, password)` signs
a simulated browser in through the login form. `live` runs the API app's lifespan in the test, so the pages
find the running services (core.runtime) as they do in `mindrouter serve`; `admin_api` is an httpx client on
that app with an admin key, to set up state the way an operator would.

List `people` (or `database`) before `user`: the database must exist when NiceGUI builds the app.

The simulated user acts in the page it has open (`acting_in_the_open_page`), as a browser does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from nicegui import ui
from nicegui.storage import request_contextvar
from nicegui.testing import User

from app.factory import create_api_app
from core.accounts import service as accounts
from core.db import Database

ADMIN = ('root', 'rootpass1')
STUDENT = ('stu', 'stupass12')


@pytest.fixture(params=['sqlite'])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:  # the UI suite runs on SQLite
    return f'sqlite+aiosqlite:///{tmp_path}/ui.db'


@pytest.fixture(autouse=True)
def acting_in_the_open_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser's events carry the request of the page they come from (NiceGUI keeps it per listener), so
    `app.storage.user` is that page's session. The simulated user's clicks and typing run instead with the last
    request the test itself made, which after signing in (a new session id, components/session.py) is the
    signed-out login page's. Every interaction starts with `user.find`: make it act in the open page."""
    find = User.find

    def find_in_open_page(self: User, *args: Any, **kwargs: Any) -> Any:
        if self.client is not None:
            request_contextvar.set(self.client.request)
        return find(self, *args, **kwargs)

    monkeypatch.setattr(User, 'find', find_in_open_page)


@pytest.fixture
async def people(database: Database) -> Database:
    async with database.session() as session:
        await accounts.create_user(session, username=ADMIN[0], role='admin', password=ADMIN[1])
        await accounts.create_user(session, username=STUDENT[0], role='student', password=STUDENT[1])
    return database


@pytest.fixture
async def live(people: Database) -> AsyncIterator[FastAPI]:
    application = create_api_app()
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def admin_api(live: FastAPI, people: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with people.session() as session:
        _, key = await accounts.create_api_key(session, username=ADMIN[0], name='tests')
    async with httpx.AsyncClient(transport=httpx.ASGITransport(live), base_url='http://mindrouter.test',
                                 headers={'X-API-Key': key}) as client:
        yield client


async def log_in(user: User, username: str, password: str) -> None:
    """Fill in and send the login form (the outcome is the test's to check)."""
    await user.open('/login')
    user.find(marker='login-username').type(username)
    user.find(marker='login-password').type(password)
    user.find(marker='login-submit').click()


async def sign_in_as_admin(user: User) -> None:
    """Log in as the admin and wait until it took (argon2 takes a moment on a busy machine)."""
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=50)


def rows_of(user: User, marker: str) -> list[dict[str, Any]]:
    """The rows of the ui.table marked `marker`."""
    table = user.find(marker=marker).elements.pop()
    assert isinstance(table, ui.table)
    return list(table.rows)
