from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.factory import create_api_app
from core import accounts
from core.db import Database


@pytest.fixture
async def client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The API app in-process (its lifespan running), against the migrated test database."""
    app = create_api_app()
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://mindrouter.test') as http:
        yield http


@pytest.fixture
async def alice_key(database: Database) -> str:
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student')
        _, plaintext = await accounts.create_api_key(session, username='alice')
    return plaintext
