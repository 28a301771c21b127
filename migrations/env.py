"""Alembic environment: async engine, batch mode on SQLite, URL from MindRouter's settings."""

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import core.models  # noqa: F401  (registers every table on SQLModel.metadata)
from core.config import get_settings
from core.db import prepare_url
from core.models.base import UtcDateTime

config = context.config
if config.config_file_name is not None and config.attributes.get('configure_logging', True):
    fileConfig(config.config_file_name)

target_metadata = SQLModel.metadata


def _url() -> str:
    return config.attributes.get('database_url') or get_settings().resolved_database_url


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones, so revisions never import application code."""
    if type_ == 'type' and isinstance(obj, UtcDateTime):
        return 'sa.DateTime()'
    if type_ == 'type' and isinstance(obj, AutoString):
        return f'sa.String(length={obj.length})' if obj.length else 'sa.String()'
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == 'sqlite',  # SQLite cannot ALTER most things in place
        compare_type=True,
        render_item=_render_item,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(prepare_url(_url()), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={'paramstyle': 'named'})
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
