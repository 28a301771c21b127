"""`POST /v1/messages` at the server root is the Anthropic route too (ANTHROPIC_BASE_URL = the server):
its errors, before any engine is involved, come in the Anthropic envelope."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize('path', ['/v1/messages', '/v1/messages/count_tokens', '/anthropic/v1/messages'])
async def test_invalid_input_is_a_400_in_the_anthropic_envelope(client: httpx.AsyncClient, alice_key: str,
                                                                path: str) -> None:
    response = await client.post(path, headers={'X-API-Key': alice_key}, json={
        'model': 'llama3.2', 'max_tokens': 10, 'output_config': {'effort': 'extreme'},
        'messages': [{'role': 'user', 'content': 'hi'}]})
    assert response.status_code == 400
    assert response.json() == {'type': 'error', 'error': {
        'type': 'invalid_request_error',
        'message': "'output_config.effort' must be one of low, medium, high, xhigh, max; got 'extreme'."}}


async def test_a_missing_key_is_a_401_in_the_anthropic_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post('/v1/messages?beta=true', json={})
    assert response.status_code == 401
    assert response.json()['type'] == 'error' and response.json()['error']['type'] == 'authentication_error'


async def test_unknown_paths_below_it_answer_in_the_anthropic_dialect(client: httpx.AsyncClient) -> None:
    response = await client.get('/v1/messages/batches')
    assert response.status_code == 404
    assert response.json()['error']['type'] == 'not_found_error' and response.json()['type'] == 'error'
