"""Logging for every `mindrouter` command and every uvicorn worker: one handler on stderr, text or JSON.

At the default level (info) a running gateway says how it started, then only warnings, errors and changes of
state (a backend unhealthy or healthy again, a node offline or online, a drain done, a new leader): the
libraries that talk on every job run or request (APScheduler, httpx) are kept at WARNING unless LOG_LEVEL is
debug. `logging_config()` is a `logging.config.dictConfig` dictionary, handed to uvicorn as its `log_config`
so that its own lines, and its worker processes (`--workers N` spawns fresh interpreters), log the same way.

Inference requests set `REQUEST_ID` (a ContextVar: every task a request starts inherits it), and every line
logged while one is being served carries its id.
"""

from __future__ import annotations

import logging
import logging.config
import time
from contextvars import ContextVar
from typing import Any, Literal

import orjson

LogFormat = Literal['text', 'json']

REQUEST_ID: ContextVar[str | None] = ContextVar('mindrouter_request_id', default=None)

# Talk on every job run (APScheduler: "Running job ...", "executed successfully") or every control-plane
# request (httpx: "HTTP Request: GET ..."): useful when debugging, noise otherwise.
CHATTY_BELOW_DEBUG = ('apscheduler', 'httpx')
# Talk on every database call or frame even for a debugging operator: never below INFO.
CHATTY_AT_DEBUG = ('aiosqlite', 'httpcore', 'hpack', 'python_multipart', 'multipart', 'asyncio', 'watchfiles')
# websockets' debug lines dump every frame and handshake header of the console's websocket: what people type
# (passwords at sign-in), session cookies. Never logged, whatever the level (tests/hostile/test_log_secrets.py).
WIRE_DUMPS = ('< %s', '> %s', '< %s: %s', '> %s: %s')
# Structured fields a log call may pass with `extra=`, kept as objects in the JSON output.
STRUCTURED_FIELDS = ('http',)


def configure(level: str, log_format: LogFormat) -> None:
    """Set up logging for this process (the CLI calls it first, for every command)."""
    logging.config.dictConfig(logging_config(level, log_format))


def logging_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """Every logger to one stderr handler at `level`, uvicorn's included (they propagate to the root).

    stderr, not stdout: `mindrouter create-key` prints the key, and only it, on stdout."""
    level = level.upper()
    debug = level == 'DEBUG'
    quiet_level = level if debug else logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    quiet = {name: {'level': quiet_level} for name in CHATTY_BELOW_DEBUG}
    never_debug = {name: {'level': 'INFO' if debug else 'NOTSET'} for name in CHATTY_AT_DEBUG}
    formatter = 'JsonFormatter' if log_format == 'json' else 'TextFormatter'
    return {
        'version': 1,
        'disable_existing_loggers': False,  # module loggers (mindrouter.*) exist before this runs
        # By name, not by object: uvicorn hands this dictionary to the worker processes it spawns.
        'formatters': {'mindrouter': {'()': f'{__name__}.{formatter}'}},
        'filters': {
            # Alembic names its dialect and DDL mode on every start; what it migrates is worth a line.
            'alembic_preamble': {'()': f'{__name__}.Drop', 'fragments': ('Context impl', 'Will assume')},
            # A run skipped because the last one is still going is how the jobs are meant to work
            # (max_instances=1, core.jobs.background), not something for an operator to act on.
            'job_still_running': {'()': f'{__name__}.Drop', 'fragments': ('maximum number of running instances',)},
            # On the handler, so it holds for every logger websockets is given (uvicorn passes its own).
            'wire_dumps': {'()': f'{__name__}.DropFormats', 'formats': WIRE_DUMPS},
        },
        'handlers': {'stderr': {'class': 'logging.StreamHandler', 'stream': 'ext://sys.stderr',
                                'formatter': 'mindrouter', 'filters': ['wire_dumps']}},
        'root': {'level': level, 'handlers': ['stderr']},
        'loggers': {
            # uvicorn's own handlers are not installed (this dictionary replaces its default config): its
            # lines reach the root handler. Its access lines stay off: they carry the query string, and
            # ACCESS_LOG has a line of our own (app/access_log.py).
            'uvicorn': {'level': level, 'handlers': [], 'propagate': True},
            'uvicorn.access': {'level': 'WARNING', 'handlers': [], 'propagate': False},
            'alembic.runtime.migration': {'filters': [] if debug else ['alembic_preamble']},
            'apscheduler.scheduler': {'level': quiet_level, 'filters': [] if debug else ['job_still_running']},
            **quiet,
            **never_debug,
        },
    }


class TextFormatter(logging.Formatter):
    """`2026-05-04T10:11:12.345Z WARNING mindrouter.registry: backend gpu1 is unhealthy ... [request id]`"""

    def __init__(self) -> None:
        super().__init__('%(asctime)s %(levelname)s %(name)s: %(message)s%(request)s')

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record)

    def format(self, record: logging.LogRecord) -> str:
        request_id = REQUEST_ID.get()
        record.request = f' [{request_id}]' if request_id else ''  # before a traceback, on the first line
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message; request_id while a request is
    served; exc_info (the traceback as text) for an exception; structured fields (`http` of an access line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {'time': utc_timestamp(record), 'level': record.levelname.lower(),
                                 'logger': record.name, 'message': record.getMessage()}
        request_id = REQUEST_ID.get()
        if request_id:
            entry['request_id'] = request_id
        for name in STRUCTURED_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry['exc_info'] = self.formatException(record.exc_info)
        if record.stack_info:
            entry['stack_info'] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class Drop(logging.Filter):
    """Drops a logger's records whose message (before formatting) contains one of `fragments`."""

    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(fragment in message for fragment in self.fragments)


class DropFormats(logging.Filter):
    """Drops the records logged with exactly one of `formats` as their message (before formatting)."""

    def __init__(self, formats: tuple[str, ...]) -> None:
        super().__init__()
        self.formats = frozenset(formats)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg in self.formats)


def utc_timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC to the millisecond: 2026-05-04T10:11:12.345Z"""
    seconds = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))
    return f'{seconds}.{int(record.msecs):03d}Z'
