"""Ollama requests carry num_ctx = the model's context length, capped; vLLM requests are left alone."""

from __future__ import annotations

import pytest

from core.gateway.engines import adapter_for
from core.gateway.service import Gateway
from core.gateway.upstream import UpstreamPool
from core.registry.view import BackendState, ModelInfo, RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.scheduler import FairScheduler
from core.translate.canonical import ChatRequest, Message


def gateway(*, override: bool = True) -> Gateway:
    view = RegistryView()
    picker = FairScheduler(view, LocalLedger(view), queue_timeout=1)
    return Gateway(registry=view, picker=picker, adapters=adapter_for,
                   upstream=UpstreamPool(connect_timeout=1, read_timeout=1), context_cap=32768,
                   override_num_ctx=override)


def backend(engine: str, context: int | None, override: int | None = None) -> BackendState:
    return BackendState(id=1, name='b', url='http://b', engine=engine, max_concurrent=1, status='healthy',
                        models={'m': ModelInfo(name='m', context_length=context, context_override=override)})


def request(**options: int) -> ChatRequest:
    return ChatRequest(model='m', messages=[Message(role='user', content='hi')], backend_options=dict(options))


def num_ctx(gw: Gateway, engine: str, context: int | None, **options: int) -> object:
    _, body = adapter_for(engine).chat_request(gw.for_backend(request(**options), backend(engine, context)))
    return body.get('options', {}).get('num_ctx')


@pytest.mark.parametrize(('context', 'expected'), [(131072, 32768), (8192, 8192), (None, None)])
def test_ollama_gets_the_model_context_capped(context: int | None, expected: int | None) -> None:
    assert num_ctx(gateway(), 'ollama', context) == expected


def test_a_users_num_ctx_is_replaced_unless_the_site_allows_it() -> None:
    assert num_ctx(gateway(override=True), 'ollama', 8192, num_ctx=65536) == 8192
    assert num_ctx(gateway(override=False), 'ollama', 8192, num_ctx=4096) == 4096


def test_vllm_requests_are_left_alone() -> None:
    assert num_ctx(gateway(), 'vllm', 131072) is None


def test_an_admins_override_replaces_the_cap_but_never_exceeds_the_model() -> None:
    gw = gateway()
    for context, override, expected in ((131072, 65536, 65536), (8192, 65536, 8192), (None, 4096, 4096)):
        _, body = adapter_for('ollama').chat_request(gw.for_backend(request(), backend('ollama', context, override)))
        assert body['options']['num_ctx'] == expected
