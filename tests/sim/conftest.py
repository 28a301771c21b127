"""Fake engines started in-process on a free port, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sim import SimConfig, SimServer

VLLM_CHAT_MODEL = 'meta-llama/Llama-3.2-1B-Instruct'
VLLM_EMBED_MODEL = 'BAAI/bge-small-en-v1.5'
VLLM_THINK_MODEL = 'Qwen/Qwen3-0.6B'


@pytest.fixture
async def vllm() -> AsyncIterator[SimServer]:
    config = SimConfig(models=[VLLM_CHAT_MODEL, VLLM_EMBED_MODEL, VLLM_THINK_MODEL], tokens=6)
    async with SimServer('vllm', config) as server:
        yield server


@pytest.fixture
async def ollama() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=6)) as server:
        yield server
