"""The API app in-process (its lifespan running) against the migrated test database, and its clients.

A test module sets extra settings for its app by overriding the `app_env` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.factory import create_api_app
from core.accounts import service as accounts
from core.config import reset_settings
from core.db import Database


@pytest.fixture
def app_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def app(database: Database, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[FastAPI]:
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    application = create_api_app()
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://mindrouter.test') as http:
        yield http


@pytest.fixture
async def admin(client: httpx.AsyncClient, database: Database) -> httpx.AsyncClient:
    """The client, with an administrator's key."""
    async with database.session() as session:
        await accounts.create_user(session, username='root', role='admin')
        _, key = await accounts.create_api_key(session, username='root')
    client.headers['X-API-Key'] = key
    return client


@pytest.fixture
async def alice_key(database: Database) -> str:
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student')
        _, plaintext = await accounts.create_api_key(session, username='alice')
    return plaintext
