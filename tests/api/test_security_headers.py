"""Security headers on API responses: nosniff everywhere (the inference routes' fast path included), a policy
for the HTML that FastAPI serves, HSTS in production only. The console's pages are checked in a real browser
(tests/browser/test_security_headers.py)."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI

from app.factory import serve


async def test_api_responses_are_nosniff_with_a_referrer_policy_and_no_page_policy(client: httpx.AsyncClient) -> None:
    response = await client.get('/healthz')
    assert response.headers['x-content-type-options'] == 'nosniff'
    assert response.headers['referrer-policy'] == 'strict-origin-when-cross-origin'
    assert 'content-security-policy' not in response.headers and 'x-frame-options' not in response.headers
    assert 'strict-transport-security' not in response.headers  # development


async def test_the_inference_fast_path_answers_nosniff_too(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(serve(app)), base_url='http://t') as http:
        refused = await http.post('/v1/chat/completions', json={'model': 'm', 'messages': []})
        assert refused.status_code == 401
        assert refused.headers['x-content-type-options'] == 'nosniff'


async def test_the_api_reference_page_cannot_be_framed(client: httpx.AsyncClient) -> None:
    page = await client.get('/docs')
    assert page.headers['content-type'].startswith('text/html')
    assert "frame-ancestors 'none'" in page.headers['content-security-policy']
    assert 'https://cdn.jsdelivr.net' in page.headers['content-security-policy']  # where Swagger UI comes from
    assert page.headers['x-frame-options'] == 'DENY'


@pytest.mark.parametrize('app_env', [{'MINDROUTER_ENV': 'production', 'SECRET_KEY': secrets.token_urlsafe(48)}])
async def test_production_answers_with_hsts(client: httpx.AsyncClient) -> None:
    response = await client.get('/healthz')
    assert response.headers['strict-transport-security'] == 'max-age=31536000'
