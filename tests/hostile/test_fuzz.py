"""Schemathesis over every operation of the API's OpenAPI description, against a real `mindrouter serve` process,
as anonymous, as a student and as an admin: no unhandled server error, every error in its route's dialect (the
description's `default` response, app/openapi.py), every answer in the documented status, media type and schema.

Bounded for CI: a few deterministic examples per operation and caller (`derandomize`, no example database), so the
run is the same every time. A longer run, and what it found, is in docs/security.md (Fuzzing).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.factory import create_api_app
from app.openapi import INFERENCE_BODIES
from core.accounts import service as accounts
from core.db import Database
from tests.e2e.processes import free_port, running
from tests.e2e.test_logs import BIN

# The description the server serves is the application's own; read in-process so the tests can be collected
# without a server (test_the_server_serves_this_description checks that they are the same).
DESCRIPTION = create_api_app().openapi()
schema = schemathesis.openapi.from_dict(DESCRIPTION)
# Models the demo's simulated engines serve (sim/config.py): an inference body names one of them in about half
# the cases, so generated fields travel past the translators to an engine and back, not only to "unknown model".
SERVED = ('qwen3:0.6b', 'meta-llama/Llama-3.2-1B-Instruct')
EMBEDDING = 'nomic-embed-text:latest'


@schema.hook
def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
    path = context.operation.path if context.operation is not None else ''
    if path not in INFERENCE_BODIES or not isinstance(body, dict):
        return st.just(body)
    models = (EMBEDDING,) if 'embed' in path else SERVED
    return st.sampled_from([body, *({**body, 'model': model} for model in models)])


EXAMPLES = int(os.environ.get('FUZZ_EXAMPLES', '3'))  # per operation and caller; docs/security.md has a longer run
IDENTITIES = ('anonymous', 'student', 'admin')


def no_unhandled_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 5xx, except 503: the documented answer when something the request needs is unavailable (no healthy
    backend, web search not configured, the database away), in the dialect's envelope like any other error."""
    if response.status_code >= 500 and response.status_code != 503:
        raise ServerError(operation=case.operation.label, status_code=response.status_code)
    return None


CHECKS = [no_unhandled_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Server:
    def __init__(self, url: str, database_url: str) -> None:
        self.url = url
        self.database_url = database_url


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`mindrouter serve --demo --no-ui` (simulated engines, so inference routes reach a backend), on SQLite."""
    data = tmp_path_factory.mktemp('fuzz')
    database_url = f'sqlite+aiosqlite:///{data / "fuzz.db"}'
    port = free_port()
    env = {
        **os.environ,
        'DATA_DIR': str(data),
        'DATABASE_URL': database_url,
        'LOG_LEVEL': 'warning',
        'SECRET_KEY': secrets.token_urlsafe(32),
        'GC_FREEZE': 'false',
    }
    env.pop('LOG_FORMAT', None)
    command = [str(BIN / 'mindrouter'), 'serve', '--demo', '--no-ui', '--port', str(port)]
    url = f'http://127.0.0.1:{port}'
    with running(command, env, log_path=data / 'server.log', ready_url=f'{url}/readyz', ready_within=120):
        yield Server(url, database_url)
    log = (data / 'server.log').read_text()
    assert 'unhandled error' not in log, log[-5000:]


@pytest.fixture
async def headers(server: Server, identity: str) -> dict[str, str]:
    """Fresh credentials for each test: an operation that revokes keys or deactivates users (admins may) harms
    only the account made for it."""
    if identity == 'anonymous':
        return {}
    username = f'fuzz-{identity}-{secrets.token_hex(4)}'
    database = Database(server.database_url)
    try:
        async with database.session() as session:
            await accounts.create_user(session, username=username, role=identity)
            _, key = await accounts.create_api_key(session, username=username)
    finally:
        await database.dispose()
    return {'Authorization': f'Bearer {key}'}


@pytest.mark.parametrize('identity', IDENTITIES)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_every_operation_holds_up_to_generated_input(
    case: Case, identity: str, server: Server, headers: dict[str, str]
) -> None:
    response = case.call(base_url=server.url, headers=headers, timeout=60)
    case.validate_response(response, checks=CHECKS)


def test_the_server_serves_this_description(server: Server) -> None:
    assert httpx.get(f'{server.url}/openapi.json').json() == DESCRIPTION


def test_every_inference_route_documents_its_body() -> None:
    """The inference routes parse their bodies on the fast path; the description has them all the same."""
    for path in INFERENCE_BODIES:
        assert 'requestBody' in DESCRIPTION['paths'][path]['post'], path


def test_every_error_response_is_documented_in_its_dialect() -> None:
    """Every operation documents its errors as its dialect's envelope, and none FastAPI's 422 `{"detail"}`."""
    envelopes = {
        '/anthropic/': 'AnthropicError',
        '/v1/messages': 'AnthropicError',
        '/api/admin/': 'OpenAIError',
        '/api/account/': 'OpenAIError',
        '/api/': 'OllamaError',
        '/': 'OpenAIError',
    }
    for path, operations in DESCRIPTION['paths'].items():
        expected = next(name for prefix, name in envelopes.items() if path.startswith(prefix))
        for method, operation in operations.items():
            assert '422' not in operation['responses'], f'{method} {path}'
            assert operation['responses']['default']['content']['application/json']['schema'] == {
                '$ref': f'#/components/schemas/{expected}'
            }, f'{method} {path}'
