"""The public landing page, as a visitor sees it (NiceGUI's simulated user, no browser)."""

from __future__ import annotations

import pytest
from nicegui.testing import User


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_a_visitor_sees_what_mindrouter_is_and_that_it_is_serving(migrated_url: str, user: User) -> None:
    await user.open('/')
    await user.should_see('MindRouter')
    await user.should_see('Serving: database reachable and up to date.')
    await user.should_see('Authorization: Bearer KEY')


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_a_visitor_is_told_when_the_database_needs_migrating(configured_url: str, user: User) -> None:
    await user.open('/')
    await user.should_see('Database schema is out of date')
