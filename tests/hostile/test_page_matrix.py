"""Every console page and route x signed out / student / another student / admin, against the declared policy.

The routes are NiceGUI's (the app main.py builds, as `mindrouter serve` serves it, gate included), read from its
route table after every page registered itself, so a page added later is in the matrix without anyone listing it.
Each browser signs in through the login form, as a person does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from nicegui import core
from nicegui.testing import User

from app.factory import create_api_app
from core.accounts import service as accounts
from core.chat import conversations
from core.db import Database
from tests.hostile.matrix import (
    ADMIN,
    ANONYMOUS,
    IDENTITIES,
    OTHER,
    OWNER,
    PLACEHOLDER,
    Violations,
    endpoints,
    fill,
    page_problem,
    path_params,
)
from tests.hostile.policy import PAGE_RULES, Access, rule_for
from tests.ui.conftest import acting_in_the_open_page, log_in  # noqa: F401  (an autouse fixture: the UI suite's)

PEOPLE = {
    OWNER: ('page-owner', 'ownerpass1', 'student'),
    OTHER: ('page-other', 'otherpass1', 'student'),
    ADMIN: ('page-admin', 'adminpass1', 'admin'),
}
SECRET_TITLE = 'Owner-only conversation 7f3a'


@pytest.fixture
async def people(database: Database) -> dict[str, int]:
    ids = {}
    async with database.session() as session:
        for identity, (username, password, role) in PEOPLE.items():
            user = await accounts.create_user(session, username=username, role=role, password=password)
            assert user.id is not None
            ids[identity] = user.id
    return ids


@pytest.fixture
async def live(people: dict[str, int]) -> AsyncIterator[FastAPI]:
    """The API app's lifespan, so the pages find the running services as in `mindrouter serve`."""
    application = create_api_app()
    async with LifespanManager(application):
        yield application


def another_browser() -> User:
    """One more simulated browser on the app `user` runs (NiceGUI's `create_user` fixture would reset the run
    configuration the app was built with: its favicon route would then fail)."""
    return User(httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url='http://test'))


async def test_every_page_answers_each_browser_as_the_policy_says(
    people: dict[str, int], database: Database, live: FastAPI, user: User
) -> None:
    async with database.session() as session:
        owned = await conversations.create_conversation(session, user_id=people[OWNER], title=SECRET_TITLE)
    browsers = {ANONYMOUS: another_browser()}
    for identity in (OWNER, OTHER, ADMIN):
        browser = user if identity == OWNER else another_browser()
        username, password, _ = PEOPLE[identity]
        await log_in(browser, username, password)
        await browser.should_see(marker='nav-logout', retries=50)
        browsers[identity] = browser

    routes = endpoints(core.app.routes)
    assert {'/', '/login', '/dashboard', '/chat', '/admin', '/admin/users'} <= {e.path for e in routes}
    violations = Violations()
    for endpoint in routes:
        rule = rule_for(PAGE_RULES, endpoint.path, endpoint.method)
        if rule is None:
            violations.add(
                endpoint, 'anyone', 'no policy rule covers this page: decide who may open it in tests/hostile/policy.py'
            )
            continue
        if rule.access is Access.page_own and path_params(endpoint.path) != ['conversation_id']:
            violations.add(
                endpoint,
                'anyone',
                'the matrix cannot make an object of the owner for this page: teach test_page_matrix.py',
            )
            continue
        path = fill(endpoint.path, str(owned.id) if rule.access is Access.page_own else PLACEHOLDER)
        for identity in IDENTITIES:
            response = await browsers[identity].http_client.request(endpoint.method, path, follow_redirects=False)
            problem = page_problem(rule, identity, response, SECRET_TITLE)
            if problem is not None:
                violations.add(endpoint, identity, f'{problem} (policy: {rule.access}, {rule.why})')
    assert not violations.found, (
        f'{len(violations.found)} departures from tests/hostile/policy.py:\n{violations.report()}'
    )
