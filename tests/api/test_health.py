from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.factory import create_api_app
from core import migrations
from core.config import reset_settings


async def test_healthz_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get('/healthz')
    assert response.status_code == 200 and response.json() == {'status': 'ok'}


async def test_readyz_reports_the_database_and_schema(client: httpx.AsyncClient) -> None:
    response = await client.get('/readyz')
    assert response.status_code == 200
    assert response.json()['status'] == 'ready'
    assert response.json()['schema'] == migrations.head_revision()


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_readyz_is_503_with_the_reason_when_the_schema_is_not_at_head(configured_url: str) -> None:
    app = create_api_app()  # its database was never migrated
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://t') as http:
        response = await http.get('/readyz')
    assert response.status_code == 503
    assert response.json()['status'] == 'unavailable'
    assert 'mindrouter migrate' in response.json()['reason']


async def test_readyz_is_503_naming_the_host_when_the_database_is_unreachable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('DATABASE_URL', 'mysql+aiomysql://mr:pw@127.0.0.1:9/mindrouter')  # port 9: nobody
    reset_settings()
    app = create_api_app()
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://t') as http:
        response = await http.get('/readyz')
    assert response.status_code == 503
    assert '127.0.0.1:9' in response.json()['reason']
    assert 'pw' not in response.json()['reason']
