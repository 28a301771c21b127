"""The log formats (app/logs.py): JSON a collector can parse, one object per line, and the id of the inference
request being served on every line logged while it is."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime

import orjson
from starlette.requests import Request

from app.inference import Exchange
from app.logs import REQUEST_ID, DropFormats, JsonFormatter, TextFormatter, logging_config
from core.accounts.api_keys import Principal

ALICE = Principal(key_id=7, key_status='active', key_expires_at=None, user_id=3, username='alice', user_active=True,
                  role='faculty', is_admin=False, scheduler_weight=3)


def record(message: str, *args: object, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord('mindrouter.registry', level, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def as_json(made: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(made)
    assert '\n' not in line
    parsed: dict[str, object] = orjson.loads(line)
    return parsed


def new_exchange() -> Exchange:
    """What an inference route creates first: the request's id is set from here on."""
    return Exchange(Request({'type': 'http', 'method': 'POST', 'path': '/v1/chat/completions', 'headers': []}),
                    ALICE, '/v1/chat/completions')


def test_a_json_line_has_time_level_logger_and_message_and_nothing_else_outside_a_request() -> None:
    entry = as_json(record('backend %s is unhealthy:\n%s', 'gpu1', 'connection refused'))

    assert set(entry) == {'time', 'level', 'logger', 'message'}
    assert entry['level'] == 'warning' and entry['logger'] == 'mindrouter.registry'
    assert entry['message'] == 'backend gpu1 is unhealthy:\nconnection refused'  # escaped: still one line
    time = str(entry['time'])
    assert time.endswith('Z')
    assert abs(datetime.fromisoformat(time).timestamp() - datetime.now(UTC).timestamp()) < 5


def test_an_exception_travels_as_text_in_exc_info() -> None:
    try:
        raise ValueError('no such model')
    except ValueError:
        made = record('backend check failed', level=logging.ERROR)
        made.exc_info = sys.exc_info()
    entry = as_json(made)

    assert entry['level'] == 'error'
    assert 'Traceback' in str(entry['exc_info']) and 'ValueError: no such model' in str(entry['exc_info'])


def test_an_access_line_keeps_its_fields_as_an_object() -> None:
    fields = {'method': 'GET', 'path': '/v1/models', 'status': 200, 'duration_ms': 1.5, 'user': 'alice', 'key_id': 7}
    entry = as_json(record('GET /v1/models 200 1.5 ms', http=fields, color_message='\x1b[1mnot this\x1b[0m'))

    assert entry['http'] == fields
    assert 'color_message' not in entry  # only the fields we mean to publish


async def test_each_request_s_lines_carry_its_own_id_and_no_other_line_does() -> None:
    lines: dict[str, dict[str, object]] = {}

    async def serve(name: str) -> str:
        exchange = new_exchange()
        await asyncio.sleep(0)  # both requests in flight at once
        lines[name] = as_json(record('failover on %s', name))
        return exchange.request_id

    first, second = await asyncio.gather(serve('first'), serve('second'))

    assert first != second
    assert lines['first']['request_id'] == first and lines['second']['request_id'] == second
    assert 'request_id' not in as_json(record('between requests'))  # the requests' tasks kept their ids
    assert REQUEST_ID.get() is None


async def test_the_text_format_puts_the_request_id_on_the_first_line_before_a_traceback() -> None:
    async def serve() -> tuple[str, str]:
        exchange = new_exchange()
        try:
            raise RuntimeError('engine went away')
        except RuntimeError:
            made = record('relay failed', level=logging.ERROR)
            made.exc_info = sys.exc_info()
        return exchange.request_id, TextFormatter().format(made)

    request_id, text = await asyncio.create_task(serve())
    first, *rest = text.splitlines()

    assert first.endswith(f'ERROR mindrouter.registry: relay failed [{request_id}]')
    assert datetime.fromisoformat(first.split(' ')[0]).tzinfo == UTC
    assert rest[0].startswith('Traceback') and rest[-1] == 'RuntimeError: engine went away'



def test_websocket_frames_and_handshake_headers_are_never_logged_even_at_debug() -> None:
    """websockets dumps every frame of the console's websocket at debug: a password typed at sign-in, the session
    cookie of the handshake. The filter sits on the one handler, so it holds for whichever logger websockets gets;
    the other debug lines still come through. (End to end: tests/hostile/test_log_secrets.py.)"""
    config = logging_config('debug', 'json')
    assert config['handlers']['stderr']['filters'] == ['wire_dumps']
    spec = dict(config['filters']['wire_dumps'])
    assert spec.pop('()') == 'app.logs.DropFormats'
    wire_dumps = DropFormats(**spec)

    def passes(message: str, *args: object) -> bool:
        return wire_dumps.filter(logging.LogRecord('uvicorn.error', logging.DEBUG, __file__, 1, message, args, None))

    assert not passes('< %s', "TEXT '42[\"event\",{\"args\":[\"hunter2-password\"]}]' [68 bytes]")
    assert not passes('> %s', "TEXT '42[\"update\"]' [16 bytes]")
    assert not passes('< %s: %s', 'Cookie', 'session=signed-session-id')
    assert passes('%s - "WebSocket %s" [accepted]', '127.0.0.1:5000', '/_nicegui_ws/socket.io/')
