"""What a model can do, from what its engine says and, where the engine says nothing, from its family name.

Ollama reports capabilities (`/api/show`: completion, tools, thinking, vision, embedding); vLLM's
`/v1/models` does not, so for vLLM the families below decide. Names are matched lowercased, on substrings,
because served names carry organisations, sizes and tags (`Qwen/Qwen3-8B-AWQ`, `qwen3:0.6b`).

The capability names are Ollama's, plus `rerank` (a cross-encoder behind /v1/rerank and /v1/score), `speech`
(text to speech, /v1/audio/speech) and `transcription` (speech to text, /v1/audio/transcriptions and translations).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from enum import StrEnum


class Reasoning(StrEnum):
    """How a model's thinking is controlled (core.gateway.shaping turns a client's wish into this form)."""

    none = 'none'  # cannot think: thinking requests are dropped
    toggle = 'toggle'  # Qwen3-style: on/off (vLLM chat_template_kwargs.enable_thinking, Ollama think: bool)
    effort = 'effort'  # gpt-oss: always reasons, at a level (reasoning_effort / think: "low"...)
    always = 'always'  # DeepSeek-R1, QwQ: always reasons; nothing to send


_TRANSCRIPTION = ('whisper', 'parakeet', 'canary', 'voxtral', 'granite-speech', '-asr', 'asr-', 'stt', 'wav2vec')
_SPEECH = ('tts', 'kokoro', 'piper', 'xtts', 'orpheus', 'bark', 'chatterbox', 'melo', 'f5-', 'sesame', 'csm-')
_EMBEDDING = ('embed', 'bge-', 'bge_', 'e5-', 'gte-', 'minilm')
_RERANK = ('rerank', 'cross-encoder', 'ms-marco')
_VISION = ('-vl', 'vl-', '_vl', 'vision', 'llava', 'pixtral', 'gemma-3-', 'gemma3', 'minicpm-v', 'internvl',
           'idefics', 'paligemma', 'molmo', 'phi-3.5-vision', 'phi-4-multimodal', 'llama-4', 'llama4',
           'mistral-small-3')
_TEXT_ONLY_SIZES = ('270m', '1b-it', 'gemma3:1b')  # small Gemma 3 models have no vision tower
_ALWAYS = ('deepseek-r1', 'qwq', 'phi4-reasoning', 'phi-4-reasoning', 'magistral', 'thinking-2507', '-thinking')
_EFFORT = ('gpt-oss',)
_TOGGLE = ('qwen3', 'qwen-3', 'glm-4.5', 'glm-4.6', 'hunyuan-a13b', 'granite-3.2', 'granite-3.3')
_NO_THINKING = ('instruct-2507', 'qwen3-coder', 'qwen3-embedding', 'qwen3-reranker')


def vllm_capabilities(name: str) -> list[str]:
    """Capabilities of a model served by vLLM, from its name (vLLM's model list carries no task)."""
    lowered = name.lower()
    if any(marker in lowered for marker in _TRANSCRIPTION):
        return ['transcription']  # vLLM serving Whisper: /v1/audio/transcriptions and /v1/audio/translations
    if any(marker in lowered for marker in _RERANK):
        return ['rerank']
    if any(marker in lowered for marker in _EMBEDDING):
        return ['embedding']
    capabilities = ['completion', 'tools']  # tool calling depends on server flags vLLM does not publish
    if _known_reasoning(lowered) not in (None, Reasoning.none):
        capabilities.append('thinking')
    if any(marker in lowered for marker in _VISION) and not any(size in lowered for size in _TEXT_ONLY_SIZES):
        capabilities.append('vision')
    return capabilities


def reasoning_of(name: str, capabilities: Iterable[str]) -> Reasoning:
    """How `name` thinks, given capabilities that say whether it can (Ollama's `thinking`)."""
    if 'thinking' not in capabilities:
        return Reasoning.none
    # Ollama says it can think and takes think: true/false for every such model it knows no better of
    return _known_reasoning(name.lower()) or Reasoning.toggle


@functools.lru_cache(maxsize=1024)  # asked on every chat request: a few dozen substring scans, once per model
def _known_reasoning(lowered: str) -> Reasoning | None:
    """The reasoning style of a known family; None for a family this module does not know."""
    if any(marker in lowered for marker in _NO_THINKING):
        return Reasoning.none
    if any(marker in lowered for marker in _EFFORT):
        return Reasoning.effort
    if any(marker in lowered for marker in _ALWAYS):
        return Reasoning.always
    if any(marker in lowered for marker in _TOGGLE):
        return Reasoning.toggle
    return None


def speech_capabilities(name: str, *, task: str | None, engine: str) -> list[str]:
    """Capabilities of a model on a speech server: what it says its task is (Speaches' `task`), else its family
    name, else what the engine it runs on does (a `tts` server speaks, an `stt` server transcribes)."""
    if task == 'text-to-speech':
        return ['speech']
    if task == 'automatic-speech-recognition':
        return ['transcription']
    lowered = name.lower()
    if any(marker in lowered for marker in _TRANSCRIPTION):
        return ['transcription']
    if any(marker in lowered for marker in _SPEECH):
        return ['speech']
    return ['speech'] if engine == 'tts' else ['transcription']


def modality(capabilities: Iterable[str]) -> str:
    """The one word /v1/models shows: tts, stt, embedding, reranking, multimodal or chat."""
    caps = set(capabilities)
    if 'speech' in caps:
        return 'tts'
    if 'transcription' in caps:
        return 'stt'
    if 'rerank' in caps:
        return 'reranking'
    if 'embedding' in caps and 'completion' not in caps:
        return 'embedding'
    if 'vision' in caps:
        return 'multimodal'
    return 'chat'
