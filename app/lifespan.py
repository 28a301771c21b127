"""What the API process holds for its lifetime: database, key authenticator, background writers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.accounts import principal_loader
from core.api_keys import ApiKeyAuthenticator
from core.config import get_settings
from core.db import dispose_database, get_database
from core.key_usage import KeyUsageWriter
from core.migrations import head_revision


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    database = get_database()
    authenticator = ApiKeyAuthenticator(principal_loader(database), ttl=settings.api_key_cache_ttl)
    usage_writer = KeyUsageWriter(authenticator, database, interval=settings.api_key_usage_flush_interval)

    app.state.database = database
    app.state.schema_head = head_revision()  # read from disk once, not per probe
    app.state.authenticator = authenticator
    usage_writer.start()
    try:
        yield
    finally:
        await usage_writer.stop()  # flushes what is still in memory
        await dispose_database()
