"""Run-time settings: the few an admin may change without a restart, kept in the `site_settings` table.

The environment (and `.env`) sets every setting at start; a value stored here wins over it, at start
(`apply_stored`, from the API lifespan) and from the moment an admin changes it (`change`), because the change
is assigned to the live `Settings` object that the request path reads per request. Resetting a setting deletes
the stored value and puts the environment's back. Every change and reset is written to the admin log.

The process that takes the change applies it at once; every other worker and replica follows within seconds
(core.admin.settings_sync: a Redis message, and a periodic re-read of the table).

Secrets (kind `secret`, e.g. brave_api_key) are stored encrypted (core.secretbox) and never shown: the listing
says `(hidden)` when one is set, and the admin log records a short fingerprint, never the value. URLs are shown
with any password masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import runtime
from core.audit import admin_log
from core.config import Settings, get_settings
from core.db import Database, get_database
from core.errors import InvalidRequest, NotFound
from core.models import AdminAction, SiteSetting, utcnow
from core.secretbox import SecretBox, SecretBoxError

log = logging.getLogger('mindrouter.site_settings')

CHANGE = 'setting.change'
RESET = 'setting.reset'
HIDDEN = '(hidden)'
Source = Literal['default', 'environment', 'console']
Kind = Literal['int', 'bool', 'float', 'choice', 'url', 'secret']
MAX_TEXT = 2000  # characters of a url or secret setting


@dataclass(frozen=True, slots=True)
class Editable:
    name: str  # the Settings field
    label: str
    kind: Kind  # url: an http(s) URL or empty; secret: shown as (hidden), stored encrypted
    help: str
    minimum: int | float | None = None  # as core.config says
    # Not in core.config: a typing slip in the console must not take the gateway down (a timedelta of 10**30
    # days overflows; a context cap of billions makes every Ollama load fail).
    maximum: int | float | None = None
    choices: tuple[str, ...] = ()  # kind choice: the values allowed


EDITABLE: dict[str, Editable] = {rule.name: rule for rule in (
    Editable('context_length_cap', 'Context length cap', 'int', minimum=512, maximum=10_000_000,
             help="num_ctx sent to Ollama: the model's context length, but never more than this (tokens)."),
    Editable('ollama_override_num_ctx', "Override the caller's num_ctx", 'bool',
             help="Replace a caller's own Ollama num_ctx with the capped context length."),
    Editable('audit_log_prompts', 'Keep prompts in the audit log', 'bool',
             help='Store the prompt text of each request in its audit row.'),
    Editable('audit_log_responses', 'Keep responses in the audit log', 'bool',
             help='Store the answer text of each request in its audit row.'),
    Editable('audit_content_retention_days', 'Audit content retention (days)', 'int', minimum=0, maximum=36_500,
             help='Prompts, answers, chat conversations and files, and stored responses older than this are '
                  'deleted; the audit rows stay. 0: kept forever.'),
    Editable('audit_metadata_retention_days', 'Audit record retention (days)', 'int', minimum=0, maximum=36_500,
             help='Audit rows (who, when, model, tokens, status) older than this are deleted. 0: kept forever.'),
    Editable('audit_log_audio', 'Keep the audio of speech requests', 'bool',
             help='Store the speech produced and the files transcribed under ARTIFACT_STORAGE_PATH/audio, next to the '
             'audit row (deleted after the audio retention).'),
    Editable('telemetry_retention_days', 'Telemetry retention (days)', 'int', minimum=1, maximum=36_500,
             help='GPU and backend telemetry history older than this is deleted.'),
    Editable('search_provider', 'Web search provider', 'choice', choices=('none', 'searxng', 'brave'),
             help='The provider POST /v1/search uses by default; none turns web search off.'),
    Editable('searxng_url', 'SearXNG URL', 'url',
             help="Base URL of a SearXNG instance whose settings.yml lists json under search.formats; empty: none."),
    Editable('brave_api_key', 'Brave Search API key', 'secret',
             help='Subscription token for the Brave Search API; never shown once saved. Empty: none.'),
    Editable('local_login', 'Local (password) sign-in', 'bool',
             help='Username and password sign-in on the login page. Off: single sign-on only; '
                  '`mindrouter local-login on` turns it back on from the shell.'),
    Editable('search_timeout', 'Web search timeout (seconds)', 'float', minimum=1, maximum=300,
             help='Seconds one call to the search provider may take before the search answers 504.'),
)}


@dataclass(slots=True)
class SettingState:
    """One editable setting as the console and the admin API show it."""

    name: str
    label: str
    kind: str
    help: str
    minimum: int | float | None
    maximum: int | float | None
    value: Any  # in force now (a secret: '(hidden)' when set, '' when not; a URL: its password masked)
    environment_value: Any  # what a reset returns to (shown the same way)
    source: Source
    changed_at: datetime | None = None  # source 'console': when and by whom (the admin log's latest change)
    changed_by: str | None = None
    changed_via: str | None = None
    choices: list[str] | None = None  # kind choice: the values allowed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['changed_at'] = self.changed_at.isoformat() if self.changed_at else None
        return data


def rule_for(name: str) -> Editable:
    rule = EDITABLE.get(name)
    if rule is not None:
        return rule
    if name in Settings.model_fields:
        raise InvalidRequest(f'{name} cannot be changed at run time; set it in the environment and restart.',
                             param='name')
    raise NotFound(f'There is no setting named {name!r}.')


def validate(name: str, value: Any) -> int | bool | float | str:
    """The value as the setting takes it, or InvalidRequest naming the setting."""
    rule = rule_for(name)
    if rule.kind in ('float', 'choice', 'url', 'secret'):
        return _validate_more(rule, value)
    if rule.kind == 'bool':
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {'true', 'false'}:
            return value.strip().lower() == 'true'
        raise InvalidRequest(f'{name} must be true or false.', param=name)
    number = _whole_number(value)
    low, high = rule.minimum, rule.maximum
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        bounds = f' between {low} and {high}' if low is not None and high is not None else \
            f' of at least {low}' if low is not None else ''
        raise InvalidRequest(f'{name} must be a whole number{bounds}.', param=name)
    return number


async def load(session: AsyncSession, settings: Settings | None = None) -> dict[str, Any]:
    """The stored values that are still valid (a value a later release would refuse is skipped, and said).
    Secrets are decrypted with `settings`' SECRET_KEY (one that cannot be, after a rotation, is skipped)."""
    values: dict[str, Any] = {}
    box: SecretBox | None = None
    for row in await session.exec(select(SiteSetting)):
        if row.name not in EDITABLE:
            continue
        try:
            value = row.value
            if EDITABLE[row.name].kind == 'secret' and value:
                box = box or _box(settings or get_settings())
                value = box.open(str(value))
            values[row.name] = validate(row.name, value)
        except InvalidRequest as exc:
            log.warning('stored setting ignored: %s', exc.message)
        except SecretBoxError as exc:
            log.warning('stored setting %s ignored: %s; enter it again', row.name, exc)
    return values


def apply(settings: Settings, values: dict[str, Any]) -> None:
    """Put the values into the live settings. Settings is not frozen and does not validate assignments:
    the values must come through `validate` (as `load` and `change` do)."""
    for name, value in values.items():
        if name in EDITABLE:
            setattr(settings, name, value)


async def apply_stored(settings: Settings, database: Database | None = None) -> dict[str, Any]:
    """At start, before any service reads the settings: the stored values over the environment's."""
    try:
        async with (database or get_database()).session() as session:
            values = await load(session, settings)
    except Exception as exc:  # not migrated yet, or unreachable: the environment's values stand
        log.warning('run-time settings not applied (the environment\'s values are used): %s', exc)
        return {}
    apply(settings, values)
    if values:
        log.info('run-time settings from the console: %s',
                 ', '.join(f'{k}={shown(k, v)}' for k, v in values.items()))
    return values


async def refresh(settings: Settings, names: tuple[str, ...], database: Database | None = None) -> None:
    """Bring `names` in this process's live settings up to what the console last said in any process: the stored
    value, or the environment's after a reset. For a job that may run in a process other than the one an admin
    used (the leader's retention sweep)."""
    async with (database or get_database()).session() as session:
        stored = await load(session, settings)
    environment = await asyncio.to_thread(environment_settings) if set(names) - set(stored) else None
    apply(settings, {name: stored[name] if name in stored else getattr(environment, name) for name in names})


def environment_settings() -> Settings:
    """The settings as the environment (and `.env`) alone give them: what a reset returns to."""
    return Settings()


async def describe(session: AsyncSession, settings: Settings) -> list[SettingState]:
    """Every editable setting: its value now, the environment's, and where the value in force comes from."""
    environment = await asyncio.to_thread(environment_settings)  # reads .env: off the event loop
    stored = {row.name: row for row in await session.exec(select(SiteSetting)) if row.name in EDITABLE}
    latest = select(func.max(col(AdminAction.id))).where(col(AdminAction.action) == CHANGE) \
        .where(col(AdminAction.target).in_(list(stored))).group_by(col(AdminAction.target))
    changes = {entry.target: entry for entry in await session.exec(
        select(AdminAction).where(col(AdminAction.id).in_(latest)))} if stored else {}
    states = []
    for name, rule in EDITABLE.items():
        row, entry = stored.get(name), changes.get(name)
        source: Source = 'console' if row is not None else \
            'environment' if name in environment.model_fields_set else 'default'
        states.append(SettingState(
            name=name, label=rule.label, kind=rule.kind, help=rule.help, minimum=rule.minimum, maximum=rule.maximum,
            value=shown(name, getattr(settings, name)), environment_value=shown(name, getattr(environment, name)),
            source=source, changed_at=(entry.created_at if entry else row.updated_at) if row is not None else None,
            changed_by=entry.actor if row is not None and entry else None,
            changed_via=entry.via if row is not None and entry else None,
            choices=list(rule.choices) if rule.choices else None))
    return states


async def change(session: AsyncSession, settings: Settings, *, name: str, value: Any, actor_id: int | None,
                 actor: str, via: str) -> SettingState:
    """Validate, store, apply to the live settings and record in the admin log; the setting as it now is."""
    new = validate(name, value)
    before = getattr(settings, name)
    stored = new
    if EDITABLE[name].kind == 'secret' and new:  # encrypted at rest (HKDF of SECRET_KEY: a file read, a derivation)
        stored = (await asyncio.to_thread(_box, settings)).seal(str(new))
    row = await session.get(SiteSetting, name)
    if row is None:
        session.add(SiteSetting(name=name, value=stored))
    else:
        row.value, row.updated_at = stored, utcnow()
    await admin_log.record(session, actor_id=actor_id, actor=actor, action=CHANGE, target=name,
                           before={name: logged(name, before)}, after={name: logged(name, new)}, via=via,
                           commit=False)
    await session.commit()  # the stored value and its record stand or fall together
    setattr(settings, name, new)
    await _announce(name)
    return await _state(session, settings, name)


async def reset(session: AsyncSession, settings: Settings, *, name: str, actor_id: int | None, actor: str,
                via: str) -> SettingState:
    """Back to the environment's value: the stored one deleted, the live settings set, the admin log told."""
    rule_for(name)
    value = getattr(await asyncio.to_thread(environment_settings), name)
    before = getattr(settings, name)
    row = await session.get(SiteSetting, name)
    if row is None and before == value:
        return await _state(session, settings, name)  # nothing to undo, nothing to record
    if row is not None:
        await session.delete(row)
    await admin_log.record(session, actor_id=actor_id, actor=actor, action=RESET, target=name,
                           before={name: logged(name, before)}, after={name: logged(name, value)}, via=via,
                           commit=False)
    await session.commit()
    setattr(settings, name, value)
    await _announce(name)
    return await _state(session, settings, name)


def read_only(settings: Settings) -> list[tuple[str, str]]:
    """The other settings, name and value as text, with secrets hidden: shown, never editable."""
    shown = []
    for name in Settings.model_fields:
        if name in EDITABLE:
            continue
        value = getattr(settings, name)
        if 'secret' in name or 'password' in name or name.endswith('_key'):
            text = HIDDEN if value else '(not set)'
        elif name.endswith('_url'):
            text = mask_url(str(value)) if value else '(not set)'
        else:
            text = '(not set)' if value is None or value == '' else str(value)
        shown.append((name, text))
    return shown


def mask_url(url: str) -> str:
    """The URL with its password (and any secret-looking query parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    userinfo, at, hostport = parts.netloc.rpartition('@')
    netloc = f'{userinfo.split(":", 1)[0]}:***@{hostport}' if at and ':' in userinfo else parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [any(word in key.lower() for word in ('pass', 'secret', 'token', 'key')) for key, _ in pairs]
    if netloc == parts.netloc and not any(secret):
        return url  # nothing to hide (and urlunsplit would turn sqlite:/// into sqlite:/)
    query = urlencode([(key, '***' if hide else value) for (key, value), hide in zip(pairs, secret, strict=True)],
                      safe='*') if any(secret) else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def shown(name: str, value: Any) -> Any:
    """An editable setting's value as the console and the API show it: secrets hidden, URL passwords masked."""
    kind = EDITABLE[name].kind if name in EDITABLE else None
    if kind == 'secret':
        return HIDDEN if value else ''
    if kind == 'url' and value:
        return mask_url(str(value))
    return value


def logged(name: str, value: Any) -> Any:
    """The value as the admin log records it: a secret as a short fingerprint (which tells a change from none,
    and reveals nothing of the key), everything else as shown."""
    if name in EDITABLE and EDITABLE[name].kind == 'secret' and value:
        return f'{HIDDEN} sha256:{hashlib.sha256(str(value).encode()).hexdigest()[:8]}'
    return shown(name, value)


def _validate_more(rule: Editable, value: Any) -> float | str:
    """The kinds beyond int and bool: float, choice, url, secret."""
    name = rule.name
    if rule.kind == 'float':
        number = _number(value)
        low, high = rule.minimum, rule.maximum
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            bounds = f' between {low:g} and {high:g}' if low is not None and high is not None else ''
            raise InvalidRequest(f'{name} must be a number{bounds}.', param=name)
        return number
    text = value.strip() if isinstance(value, str) else None
    if rule.kind == 'choice':
        if text is None or text.lower() not in rule.choices:
            raise InvalidRequest(f'{name} must be one of {", ".join(rule.choices)}.', param=name)
        return text.lower()
    if rule.kind == 'url':
        if text is None or len(text) > MAX_TEXT or (text and not _is_http_url(text)):
            raise InvalidRequest(f'{name} must be an http(s) URL such as https://search.example.edu, or empty.',
                                 param=name)
        return text
    if text is None or len(text) > MAX_TEXT or any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidRequest(f'{name} must be text without spaces (at most {MAX_TEXT} characters), or empty.',
                             param=name)
    return text


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        return parts.scheme in ('http', 'https') and bool(parts.hostname) and not any(c.isspace() for c in text)
    except ValueError:
        return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


async def _announce(name: str) -> None:
    """The other processes of a running gateway re-read the settings now (core.admin.settings_sync)."""
    live = runtime.current()
    if live is not None and live.settings_sync is not None:
        await live.settings_sync.announce(name)


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.resolved_secret_key())


async def _state(session: AsyncSession, settings: Settings, name: str) -> SettingState:
    return next(state for state in await describe(session, settings) if state.name == name)


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):  # True is an int to Python, not to an admin
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():
        return int(value.strip())
    return None
