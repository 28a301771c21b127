"""Every API route x anonymous / student / another student / admin, against the declared policy (policy.py).

The routes come from the application's own route table (the FastAPI app `mindrouter serve` builds, behind the same
fast path for the inference routes), so a route added later is in the matrix without anyone listing it here.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI, Request

from app.deps import Caller, require_api_key
from app.factory import create_api_app, serve
from app.responses import JSONResponse
from core.accounts import service as accounts
from core.db import Database
from core.models import StoredResponse
from core.responses.store import ResponseStore, Stored
from tests.hostile.matrix import ADMIN, ANONYMOUS, OTHER, OWNER, Endpoint, Violations, body_for, check_api, endpoints
from tests.hostile.policy import API_RULES

OWNER_NAME = 'matrix-owner'


@dataclass
class Cluster:
    app: FastAPI
    http: httpx.AsyncClient
    keys: dict[str, str]
    owner_id: int

    async def call(self, identity: str, endpoint: Endpoint, path: str) -> httpx.Response:
        headers = {'content-type': 'application/json', 'accept': 'application/json, text/event-stream'}
        if identity != ANONYMOUS:
            headers['authorization'] = f'Bearer {self.keys[identity]}'
        return await self.http.request(endpoint.method, path, headers=headers, content=body_for(endpoint.method))

    async def owned(self, parameter: str) -> str:
        """A fresh resource of the owner's for a path parameter (fresh per probe: DELETE may remove it)."""
        if parameter == 'response_id':
            store: ResponseStore = self.app.state.responses
            response_id = f'resp_{secrets.token_hex(12)}'
            store.submit(
                Stored(
                    id=response_id,
                    user_id=self.owner_id,
                    history=[],
                    input_items=[{'type': 'message', 'role': 'user', 'content': 'hi', 'id': 'msg_1'}],
                    response={'id': response_id, 'object': 'response', 'model': 'm', 'output': []},
                )
            )
            await store.flush()
            return response_id
        raise AssertionError(f'the matrix cannot make an owned {parameter!r}: teach Cluster.owned')


async def _cluster(app: FastAPI, database: Database) -> AsyncIterator[Cluster]:
    keys = {}
    async with database.session() as session:
        for identity, username, role in (
            (OWNER, OWNER_NAME, 'student'),
            (OTHER, 'matrix-other', 'student'),
            (ADMIN, 'matrix-admin', 'admin'),
        ):
            user = await accounts.create_user(session, username=username, role=role)
            _, keys[identity] = await accounts.create_api_key(session, username=username)
            if identity == OWNER:
                owner_id = user.id
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(serve(app)), base_url='http://mindrouter.test', timeout=30
        ) as http,
    ):
        assert owner_id is not None
        yield Cluster(app, http, keys, owner_id)


@pytest.fixture
async def cluster(database: Database) -> AsyncIterator[Cluster]:
    async for made in _cluster(create_api_app(), database):
        yield made


async def test_every_api_route_answers_each_caller_as_the_policy_says(cluster: Cluster) -> None:
    routes = endpoints(cluster.app.routes)
    assert len(routes) > 60  # the table was read, not an empty list
    violations = await check_api(routes, API_RULES, cluster.call, cluster.owned, OWNER_NAME)
    assert not violations.found, (
        f'{len(violations.found)} departures from tests/hostile/policy.py:\n{violations.report()}'
    )


# The matrix catches what it is for: an application with routes that forgot their guard.


def _leaky_app() -> FastAPI:
    app = create_api_app()

    async def settings_without_guard() -> JSONResponse:
        return JSONResponse({'secret': 'admin only'})

    async def models_without_key() -> JSONResponse:
        return JSONResponse({'data': []})

    async def any_response(response_id: str, request: Request, caller: Caller) -> JSONResponse:
        database: Database = request.app.state.database
        async with database.session() as session:  # reads the row without asking whose it is
            row = await session.get(StoredResponse, response_id)
        return JSONResponse({'id': response_id, 'found': row is not None})

    async def undecided() -> JSONResponse:
        return JSONResponse({})

    before = len(app.router.routes)
    app.add_api_route('/api/admin/leaky-settings', settings_without_guard, methods=['GET'])
    app.add_api_route('/v1/leaky-models', models_without_key, methods=['GET'])
    app.add_api_route('/v1/responses/{response_id}/leaky', any_response, methods=['GET'])
    app.add_api_route('/brand-new-surface', undecided, methods=['GET'], dependencies=[Depends(require_api_key)])
    # ahead of the catch-alls for unknown paths (app/routers/fallback.py), as a router included in the factory is
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    return app


@pytest.fixture
async def leaky(database: Database) -> AsyncIterator[Cluster]:
    async for made in _cluster(_leaky_app(), database):
        yield made


async def test_the_matrix_catches_routes_that_forgot_their_guard(leaky: Cluster) -> None:
    violations: Violations = await check_api(
        endpoints(leaky.app.routes), API_RULES, leaky.call, leaky.owned, OWNER_NAME
    )

    found = set(violations.found)
    assert found == {
        'GET /api/admin/leaky-settings as owner: got 200, expected 403 (policy: admin, the admin API)',
        'GET /api/admin/leaky-settings as other user: got 200, expected 403 (policy: admin, the admin API)',
        'GET /api/admin/leaky-settings as anonymous: got 200, expected 401 (policy: admin, the admin API)',
        'GET /v1/leaky-models as anonymous: got 200, expected 401 (policy: key, OpenAI API)',
        'GET /v1/responses/{response_id}/leaky as other user: got 200, expected 404 (policy: own, a stored '
        "response is its creator's only (other users: 404, not 403))",
        'GET /v1/responses/{response_id}/leaky as admin: got 200, expected 404 (policy: own, a stored '
        "response is its creator's only (other users: 404, not 403))",
        'GET /brand-new-surface as anyone: no policy rule covers this route: decide who may call it in '
        'tests/hostile/policy.py',
    }
