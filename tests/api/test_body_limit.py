"""Every route's body is bounded by MAX_REQUEST_BYTES before it is read or the caller authenticated: a declared
length over it is refused at once, a chunked body is cut off once past it, in the caller's dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.factory import serve

LIMIT = 4096  # MAX_REQUEST_BYTES here


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'MAX_REQUEST_BYTES': str(LIMIT)}


@pytest.fixture(params=['app', 'served'])
async def anonymous(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a key, through the FastAPI app itself or through what `mindrouter serve` serves."""
    front = app if request.param == 'app' else serve(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(front), base_url='http://mindrouter.test') as http:
        yield http


class Body:
    """A JSON body sent in 1 KiB chunks as the server asks for them, counting what it asked for."""

    def __init__(self, kib: int) -> None:
        self.kib = kib
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"username": "'
        while self.pulled < self.kib:
            self.pulled += 1
            yield b'a' * 1024
        yield b'"}'


@pytest.mark.parametrize('path', ['/api/admin/users', '/api/account/quota-requests'])
async def test_a_declared_length_over_the_limit_is_refused_before_authentication(
        anonymous: httpx.AsyncClient, path: str) -> None:
    body = Body(60 * 1024)  # 60 MiB, claimed up front
    response = await anonymous.post(path, content=body, headers={
        'Content-Type': 'application/json', 'Content-Length': str(60 * 1024 * 1024 + 16)})

    assert response.status_code == 413, response.text
    assert response.json()['error']['message'] == f'request body is {60 * 1024 * 1024 + 16} bytes; the limit is {LIMIT}'
    assert body.pulled == 0  # not a byte read


@pytest.mark.parametrize('path', ['/api/admin/users', '/api/account/quota-requests'])
async def test_a_chunked_body_over_the_limit_is_cut_off_before_authentication(
        anonymous: httpx.AsyncClient, path: str) -> None:
    body = Body(60 * 1024)
    response = await anonymous.post(path, content=body, headers={'Content-Type': 'application/json'})

    assert response.status_code == 413, response.text
    assert response.json()['error']['message'] == f'request body exceeds the limit of {LIMIT} bytes'
    assert body.pulled <= LIMIT // 1024 + 1  # the rest never read


async def test_within_the_limit_the_route_answers_as_ever(anonymous: httpx.AsyncClient) -> None:
    body = Body(2)
    response = await anonymous.post('/api/admin/users', content=body, headers={'Content-Type': 'application/json'})
    assert response.status_code == 401 and body.pulled == 2


DECLARED = f'request body is {LIMIT + 1} bytes; the limit is {LIMIT}'


@pytest.mark.parametrize(('path', 'expected'), [
    ('/api/show', {'error': DECLARED}),
    ('/anthropic/v1/messages/count_tokens', {'type': 'error', 'error': {'type': 'request_too_large',
                                                                         'message': DECLARED}}),
    ('/api/admin/backends/register', {'error': {'message': DECLARED, 'type': 'invalid_request_error', 'param': None,
                                                'code': 'request_too_large'}}),
])
async def test_the_refusal_speaks_the_callers_dialect(anonymous: httpx.AsyncClient, path: str,
                                                      expected: dict[str, object]) -> None:
    response = await anonymous.post(path, content=b'{}', headers={'Content-Length': str(LIMIT + 1)})
    assert (response.status_code, response.json()) == (413, expected)
