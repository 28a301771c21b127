"""The fake vLLM's `/v1/chat/completions`: plain answers, reasoning, tool calls, structured output and images.

What each feature looks like on the wire is vLLM's (0.32) as its serving code builds it:

* Reasoning (`--reasoning-parser`): `message.reasoning` / `delta.reasoning`. Without the parser (knob
  `reasoning_parser: false`) the reasoning stays in the content: `<think>`, the reasoning, `</think>`, a blank
  line, the answer; streamed, each tag is a chunk of its own (they are special tokens).
* Tool calls (`--enable-auto-tool-choice --tool-call-parser hermes`): `message.tool_calls[{id, type, function:
  {name, arguments: "<JSON>"}}]`; streamed, per call a chunk with `{index, id, type, function: {name}}`, then the
  arguments in fragments `{index, function: {arguments}}`. `content` is null for `auto` calls and "" for forced
  ones; `finish_reason` is `tool_calls`, except for a named `tool_choice`, which keeps `stop` (as OpenAI does).
* Structured output (`response_format`, `structured_outputs`): the content is the constrained JSON text.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Literal

from sim.engine import Job, dumps, is_pooling_model, is_thinking_model, is_vision_model
from sim.http import Request, Response, StreamResponse
from sim.structured import Constraint, constrained_text, json_pieces
from sim.text import chat_prompt, expected_text, reply_tokens, seed_message, vision_seed_text
from sim.tools import TOOL_CALL_TOKENS, ToolCall, argument_fragments, auto_tool_calls, calls_for, tool_names
from sim.vllm_base import DONE, SSE, BadRequest, VllmBase, field_error, int_or_none, rid

ThinkingMode = Literal['never', 'optional', 'always']
ToolChoice = Literal['none', 'auto', 'required', 'named']

THINK_OPEN, THINK_CLOSE, THINK_GAP = '<think>', '</think>', '\n\n'
MEDIA_PARTS = frozenset({'image_url', 'video_url', 'audio_url', 'input_audio'})
STRUCTURED_KEYS = ('json', 'regex', 'choice', 'grammar', 'json_object', 'structural_tag')
_NAMED_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'


@functools.lru_cache(maxsize=1024)
def thinking_mode(model: str) -> ThinkingMode:
    """How a model family reasons under vLLM: Qwen3 and Magistral think unless the request turns it off (Qwen3
    Instruct releases never do, Thinking releases always do); DeepSeek-R1, QwQ and gpt-oss always think."""
    lowered = model.lower()
    if not is_thinking_model(lowered):
        return 'never'
    if 'qwen3' in lowered:
        if 'thinking' in lowered:
            return 'always'
        return 'never' if 'instruct' in lowered else 'optional'
    return 'optional' if 'magistral' in lowered else 'always'


def image_parts(content: Any) -> int:
    return (
        sum(1 for p in content if isinstance(p, Mapping) and p.get('type') == 'image_url')
        if isinstance(content, list)
        else 0
    )


def has_media(messages: Sequence[Any]) -> bool:
    return any(
        isinstance(m, Mapping)
        and isinstance(m.get('content'), list)
        and any(isinstance(p, Mapping) and p.get('type') in MEDIA_PARTS for p in m['content'])
        for m in messages
    )


class _Style:
    """How the answer is rendered: which tool_choice produced the calls, and whether the reasoning is parsed."""

    __slots__ = ('choice', 'wrap')

    def __init__(self, choice: ToolChoice, wrap: bool) -> None:
        self.choice = choice
        self.wrap = wrap  # no reasoning parser: <think>...</think> in the content

    def finish(self, job: Job) -> str:
        if not job.tool_calls:
            return job.finish
        return 'stop' if self.choice == 'named' else 'tool_calls'


def thinking_closed(job: Job) -> bool:
    """Whether the reasoning ended (`</think>`): not when the token limit cut it short."""
    return bool(job.content or job.tool_calls) or job.finish != 'length'


class VllmChat(VllmBase):
    async def chat(self, request: Request) -> Response | StreamResponse:
        try:
            body = self.body(request)
            messages = body.get('messages')
            if messages is None:
                raise field_error('Field required', 'messages')
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise field_error('Input should be a valid list', 'messages')
            model = self.model(body)
            if is_pooling_model(model):
                return await self.not_found(request)  # a pooling model's server has no chat route
            choice, forced = self._tool_choice(body)
            constraint = self._constraint(body)
            media = has_media(messages)
            if media and not is_vision_model(model):
                raise BadRequest('This model does not support multi-modal inputs')
            prompt_tokens, seed = chat_prompt(messages)
            if media:
                seeded = seed_message(messages)
                seed = vision_seed_text(seed, image_parts(seeded.get('content')) if seeded is not None else 0)
            limit = self.limits(body, prompt_tokens, None)
        except BadRequest as e:
            return self.bad(e)
        job = Job(model, prompt_tokens)
        thinking = min(self._thinking_tokens(model, body), limit)
        calls = self._calls(body, choice, forced, messages, self.config.tool_call)
        if calls:
            job.plan_tool_calls(calls, seed, thinking)
        else:
            pieces = None
            if constraint is not None:
                answer = expected_text(seed, self.config.tokens)
                pieces = json_pieces(constrained_text(constraint, seed, answer, self.config.schema_violation))
            elif self.config.reply is not None:
                pieces = reply_tokens(self.config.reply)
            job.plan_answer(seed, self.config.tokens, limit, self.stops(body), thinking, pieces)
        style = _Style(choice, not self.config.reasoning_parser)
        if body.get('stream') is True:
            include_usage, continuous = self.stream_flags(body)
            return StreamResponse(self._chat_events(job, style, include_usage, continuous), SSE)
        await self.complete(job)
        return self.json(self._chat_completion(job, style))

    # -- request features ---------------------------------------------------------------------------------------
    @staticmethod
    def _tool_choice(body: dict[str, Any]) -> tuple[ToolChoice, str | None]:
        """vLLM's `tool_choice` validation; returns the choice and, for a named one, the tool it forces."""
        tools, choice = body.get('tools'), body.get('tool_choice')
        if choice is None:
            return ('auto' if tools else 'none'), None
        if choice == 'none':
            return 'none', None
        if tools is None:
            raise BadRequest('When using `tool_choice`, `tools` must be set.')
        if choice in ('auto', 'required'):
            # OpenAI (and vLLM) treat "required" with an empty tools list as "none".
            return ('none' if not tools else choice), None
        if not isinstance(choice, dict):
            raise BadRequest(
                f'Invalid value for `tool_choice`: {choice}! Only named tools, "none", "auto" or "required" are '
                'supported.'
            )
        function = choice.get('function')
        if not isinstance(function, dict):
            raise BadRequest(f'Invalid value for `function`: `{function}` in `tool_choice`! {_NAMED_USAGE}')
        if 'name' not in function:
            raise BadRequest(f'Expected field `name` in `function` in `tool_choice`! {_NAMED_USAGE}')
        name = function['name']
        if not isinstance(name, str) or not name:
            raise BadRequest(f'Invalid `name` in `function`: `{name}` in `tool_choice`! {_NAMED_USAGE}')
        if name not in tool_names(tools):
            raise BadRequest('The tool specified in `tool_choice` does not match any of the specified `tools`')
        return 'named', name

    @staticmethod
    def _calls(body: dict[str, Any], choice: ToolChoice, forced: str | None, messages: list[Any],
               scripted: dict[str, Any] | None) -> list[ToolCall]:
        if choice == 'named' and forced is not None:
            return calls_for(forced, messages)
        if choice == 'required':
            return calls_for(tool_names(body.get('tools'))[0], messages)
        return auto_tool_calls(body.get('tools'), messages, scripted) if choice == 'auto' else []

    @staticmethod
    def _constraint(body: dict[str, Any]) -> Constraint | None:
        """The structured-output constraint: `response_format` (mapped by vLLM onto `structured_outputs`), else
        `structured_outputs` itself. The removed `guided_*` fields are unknown fields: ignored."""
        fmt = body.get('response_format')
        if isinstance(fmt, dict) and fmt.get('type') == 'json_schema':
            spec = fmt.get('json_schema')
            if spec is None:
                raise BadRequest(
                    "When response_format type is 'json_schema', the 'json_schema' field must be provided.",
                    'response_format',
                )
            schema = spec.get('schema', spec.get('json_schema')) if isinstance(spec, dict) else None
            if not isinstance(schema, dict | bool):
                raise BadRequest('You must use one kind of structured outputs constraint but none are specified')
            return 'schema', schema
        if isinstance(fmt, dict) and fmt.get('type') == 'json_object':
            return 'object', None
        outputs = body.get('structured_outputs')
        if not isinstance(outputs, dict):
            return None
        given = [k for k in STRUCTURED_KEYS if outputs.get(k) is not None and outputs.get(k) is not False]
        if len(given) != 1:
            kind = 'can only use one kind' if given else 'must use one kind'
            which = 'multiple are' if given else 'none are'
            raise BadRequest(f'You {kind} of structured outputs constraint but {which} specified')
        value = outputs[given[0]]
        if given[0] == 'json':
            try:
                schema = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                raise BadRequest('structured_outputs.json is not valid JSON') from None
            return 'schema', schema
        if given[0] == 'json_object':
            return 'object', None
        if given[0] == 'choice' and isinstance(value, list) and value:
            return 'choice', value[0]
        return None  # regex, grammar, structural_tag: not generated, the answer stays unconstrained

    def _thinking_tokens(self, model: str, body: dict[str, Any]) -> int:
        mode = thinking_mode(model)
        if mode == 'never':
            return 0
        if mode == 'optional':
            kwargs = body.get('chat_template_kwargs')
            enable = kwargs.get('enable_thinking') if isinstance(kwargs, dict) else None
            effort = body.get('reasoning_effort')
            if enable is None and effort is not None:
                enable = effort != 'none'  # what vLLM itself does when enable_thinking is absent
            if enable is False:  # the Qwen3 template tests `enable_thinking is false`
                return 0
        n = self.config.thinking_tokens
        budget = int_or_none(body.get('thinking_token_budget'))
        return min(n, budget) if budget is not None and budget >= 0 else n

    # -- answers ------------------------------------------------------------------------------------------------
    def _chat_completion(self, job: Job, style: _Style) -> dict[str, Any]:
        reasoning: str | None = job.reasoning or None
        prefix = ''
        if style.wrap and job.thinking:
            prefix = THINK_OPEN + job.reasoning + (THINK_CLOSE + THINK_GAP if thinking_closed(job) else '')
            reasoning = None
        message: dict[str, Any] = {
            'role': 'assistant',
            'content': prefix + job.text,
            'refusal': None,
            'annotations': None,
            'audio': None,
            'function_call': None,
        }
        if job.tool_calls:
            # The hermes parser gives auto calls the text before them (None when there is none); forced calls
            # (named, required) get "".
            message['content'] = (prefix or None) if style.choice == 'auto' else prefix
            message['tool_calls'] = [
                {
                    'id': f'chatcmpl-tool-{rid()}',
                    'type': 'function',
                    'function': {'name': call.name, 'arguments': json.dumps(call.arguments, ensure_ascii=False)},
                }
                for call in job.tool_calls
            ]
        message['reasoning'] = reasoning
        return {
            'id': f'chatcmpl-{rid()}',
            'object': 'chat.completion',
            'created': int(time.time()),
            'model': job.model,
            'choices': [
                {
                    'index': 0,
                    'message': message,
                    'logprobs': None,
                    'finish_reason': style.finish(job),
                    'stop_reason': job.stop_reason,
                    'token_ids': None,
                }
            ],
            'service_tier': None,
            'system_fingerprint': self.system_fingerprint,
            'usage': self.usage(job),
            'prompt_logprobs': None,
            'prompt_token_ids': None,
            'kv_transfer_params': None,
            'metrics': None,
        }

    async def _chat_events(
        self, job: Job, style: _Style, include_usage: bool, continuous: bool
    ) -> AsyncIterator[bytes]:
        head = {
            'id': f'chatcmpl-{rid()}',
            'object': 'chat.completion.chunk',
            'created': int(time.time()),
            'model': job.model,
        }
        emitted = 0  # completion tokens streamed so far, for continuous usage stats

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return self.sse_chunk({**head, 'choices': choices, **extra}, job, emitted if continuous else None)

        def choice(delta: dict[str, Any]) -> dict[str, Any]:
            return {'index': 0, 'delta': delta, 'logprobs': None, 'finish_reason': None, 'token_ids': None}

        role = event(
            [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'logprobs': None, 'finish_reason': None}],
            prompt_token_ids=None,
        )
        finish = style.finish(job)
        # "length" rides on the last token's chunk; an end of sequence (or a stop string) gets a chunk of its own.
        last = job.step_count() - 1 if finish == 'length' else -1
        fingerprint = {} if include_usage else {'system_fingerprint': self.system_fingerprint}
        sent_role = False
        thinking_open = False  # a <think> sent (no reasoning parser) and its </think> not yet
        i = -1
        async with aclosing(self.steps(job)) as steps:
            async for kind, text in steps:
                i += 1
                if not sent_role:
                    sent_role = True
                    yield role
                deltas: list[dict[str, Any]] = []
                if kind == 'thinking' and style.wrap:
                    if not thinking_open:
                        thinking_open = True
                        deltas.append({'content': THINK_OPEN})
                    deltas.append({'content': text})
                elif kind == 'thinking':
                    deltas.append({'reasoning': text})
                else:
                    if thinking_open:
                        thinking_open = False
                        deltas += [{'content': THINK_CLOSE}, {'content': THINK_GAP}]
                    if kind == 'content':
                        deltas.append({'content': text})
                    else:
                        deltas += self._tool_deltas(int(text), job.tool_calls[int(text)])
                emitted += TOOL_CALL_TOKENS if kind == 'tool' else 1
                for d, delta in enumerate(deltas):
                    if i == last and d == len(deltas) - 1:
                        yield event([{**choice(delta), 'finish_reason': finish, 'stop_reason': None}], **fingerprint)
                    else:
                        yield event([choice(delta)])
        if not sent_role:
            yield role
        emitted = job.completion_tokens
        if last < 0 or i != last:
            if thinking_open and thinking_closed(job):
                for delta in ({'content': THINK_CLOSE}, {'content': THINK_GAP}):
                    yield event([choice(delta)])
            closing = {**choice({} if job.tool_calls else {'content': ''}), 'finish_reason': finish}
            yield event([{**closing, 'stop_reason': job.stop_reason}], **fingerprint)
        if include_usage:
            usage_chunk = {
                **head,
                'choices': [],
                'usage': self.usage(job, details=False),
                'system_fingerprint': self.system_fingerprint,
            }
            yield b'data: ' + dumps(usage_chunk) + b'\n\n'
        yield DONE

    @staticmethod
    def _tool_deltas(index: int, call: ToolCall) -> list[dict[str, Any]]:
        """One call as the hermes parser streams it: the name (with the id) first, then the arguments."""
        header = {'id': f'chatcmpl-tool-{rid()}', 'type': 'function', 'index': index, 'function': {'name': call.name}}
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        return [
            {'tool_calls': [header]},
            *(
                {'tool_calls': [{'index': index, 'function': {'arguments': part}}]}
                for part in argument_fragments(arguments)
            ),
        ]
