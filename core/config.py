"""Settings, read once from the environment (and `.env`).

Every field here is documented with its default in `.env.example`; a test keeps the two in step.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

log = logging.getLogger('mindrouter.config')

MIN_SECRET_LENGTH = 32
# Values people paste from examples; refusing them in production is cheap insurance.
_PLACEHOLDER_SECRETS = {'changeme', 'change-me', 'changethis', 'secret', 'dev', 'development', 'your-secret-key'}
# Settings whose value an error message never repeats.
_SECRET_SETTINGS = {'secret_key', 'brave_api_key', 'database_url', 'redis_url', 'oidc_client_secret'}
_SHOWN_VALUE_LENGTH = 60


class InvalidSettings(ConfigError):
    """The environment (or `.env`) gives settings a value they cannot take: one problem per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__('; '.join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file='.env', env_file_encoding='utf-8', extra='ignore')

    mindrouter_env: Literal['development', 'production'] = 'development'
    data_dir: Path = Path('data')
    database_url: str = ''  # empty: SQLite file in data_dir
    secret_key: str = ''  # empty in development: generated once and kept in data_dir
    redis_url: str = ''  # empty: single-process, in-memory state
    redis_prefix: str = Field(default='mindrouter', pattern=r'^[A-Za-z0-9_.-]{1,40}$')  # keys: one deployment each
    artifact_storage_path: Path | None = None  # None: data_dir / 'artifacts'
    scheduler_fairness_window: int = Field(default=300, ge=1)  # seconds a user's use is remembered
    scheduler_burst_tokens: int = Field(default=512, ge=0)  # head start of a user back from idle, x its weight
    scheduler_completion_tokens: int = Field(default=512, ge=1)  # charged up front when max_tokens is unset
    quota_period: Literal['day', 'week', 'month'] = 'month'  # token budgets renew at the start of each (UTC)
    host: str = '127.0.0.1'
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal['debug', 'info', 'warning', 'error'] = 'info'
    log_format: Literal['text', 'json'] = 'text'  # json: one object per line, for a log collector
    access_log: bool = False  # a line per request costs CPU on the hot path; the audit log records requests
    # After start-up, move what was built (modules, SDK models, the app) out of the cyclic collector's sight
    # (gc.freeze): full collections stop walking it, which took 20-30 ms pauses off the request path. Off only
    # in test processes that build hundreds of apps, whose frozen cycles would never be freed.
    gc_freeze: bool = True
    # SIGTERM: streams running get this long to finish, then end with their dialect's error event (docs/cluster.md)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=3600)
    # `serve --workers N`: seconds a worker may take to answer the supervisor's health ping before it is killed and
    # replaced. A worker answers its first ping only once it has imported the app: on a busy host (5 to over 30 s
    # at load 8-12 on two cores) uvicorn's own 5 s killed every worker in a loop and the gateway never came up. A
    # worker that dies is still seen at once; this only bounds how long a silent one is waited for.
    worker_healthcheck_timeout: int = Field(default=120, ge=1)
    # Net new container objects between two young collections (Python's default: 700). A request allocates
    # hundreds and frees them, and leaves almost no cyclic garbage, so 700 ran a young collection every few
    # requests and promoted in-flight objects, which then triggered full collections (docs/performance.md). 0: keep
    # Python's default.
    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    # Event-loop lag (docs/performance.md#event-loop-lag): a timer every LOOP_LAG_INTERVAL seconds (0: off) notes
    # how late it runs; later than LOOP_STALL_MS counts as a stall. LOOP_STALL_TRACE (a diagnostic) logs where the
    # loop was during each stall.
    loop_lag_interval: float = Field(default=0.025, ge=0, le=10)
    loop_stall_ms: float = Field(default=5.0, gt=0)
    loop_stall_trace: bool = False
    # Password sign-in (docs/security.md#sign-in): failures per account and per client address start a lock
    # that doubles with each further failure; password checks (64 MiB each) run a bounded number at a time.
    login_max_failures: int = Field(default=5, ge=1)  # per account, before the first lock
    login_max_failures_per_address: int = Field(default=20, ge=1)  # per client address (NAT: many people)
    login_failure_window: float = Field(default=900.0, gt=0)  # seconds a failure is remembered after the last
    login_lockout_seconds: float = Field(default=30.0, gt=0)  # the first lock; doubles with each later failure
    login_lockout_max_seconds: float = Field(default=900.0, gt=0)  # the longest lock
    login_max_concurrent_checks: int = Field(default=4, ge=1)  # argon2 verifies at once in one process
    # Proxies whose X-Forwarded-For names the client (uvicorn's --forwarded-allow-ips): comma-separated IPs or
    # networks, or *. Requests from anywhere else are taken to come from their peer address.
    forwarded_allow_ips: str = '127.0.0.1,::1'
    # Single sign-on (docs/sso.md). With OIDC_METADATA_URL set, the provider `oidc` signs people in at
    # /auth/oidc/login; admins may add more providers in the console. LOCAL_LOGIN=false removes the password form.
    oidc_metadata_url: str = ''  # the provider's .well-known/openid-configuration URL; empty: no env provider
    oidc_client_id: str = ''
    oidc_client_secret: str = ''  # secret
    oidc_display_name: str = Field(default='Sign in with your institution', max_length=100)  # the button's text
    oidc_tenant_id: str = ''  # Entra ID: the tenant GUID; tokens whose tid differs are refused
    oidc_role_claim: str = Field(default='roles', max_length=100)  # the claim whose values map to roles (or groups)
    oidc_role_map: str = ''  # JSON object: claim value -> role name, e.g. {"MindRouter.Admin": "admin"}
    oidc_default_role: str = 'student'  # the role of users no mapped claim value names; empty: they are refused
    oidc_redirect_uri: str = ''  # the callback URL the provider sends people back to; empty: from the request
    local_login: bool = True  # username and password sign-in; `mindrouter local-login on` re-enables it
    api_key_cache_ttl: float = Field(default=3.0, gt=0, le=5.0)
    api_key_usage_flush_interval: float = Field(default=30.0, gt=0)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # larger bodies get 413
    backend_connect_timeout: float = Field(default=5.0, gt=0)
    backend_read_timeout: float = Field(default=600.0, gt=0)  # never shorter than a cold model load
    backend_max_attempts: int = Field(default=3, ge=1, le=10)  # backends tried before the first byte
    queue_timeout: float = Field(default=120.0, gt=0)  # seconds a request waits for a free backend slot
    image_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # one image, inline or fetched
    image_fetch_timeout: float = Field(default=10.0, gt=0)  # seconds for a whole http(s) image fetch
    image_fetch_allow_private: bool = False  # let image URLs reach loopback/private/link-local addresses
    image_fetch_allowed_hosts: str = ''  # comma-separated hosts image URLs may reach even when private
    context_length_cap: int = Field(default=32768, ge=512)  # num_ctx sent to Ollama: min(model max, this)
    ollama_override_num_ctx: bool = True  # replace a user's own num_ctx with the capped context length
    node_poll_interval: float = Field(default=10.0, gt=0)  # seconds between sidecar polls, one per node
    telemetry_sample_interval: float = Field(default=30.0, gt=0)  # seconds between telemetry history rows
    telemetry_retention_days: int = Field(default=30, ge=1)  # telemetry history older than this is deleted
    responses_retention_days: int = Field(default=30, ge=1)  # stored /v1/responses older than this are deleted
    backend_unhealthy_after: int = Field(default=2, ge=1)  # consecutive failed checks that take a backend out
    backend_cooldown: float = Field(default=10.0, ge=0)  # seconds a backend is skipped after a failed request
    backend_check_interval: float = Field(default=30.0, gt=0)  # model discovery and health, per backend
    registry_reload_interval: float = Field(default=5.0, gt=0)  # re-read backends registered elsewhere
    leader_lease_ttl: float = Field(default=15.0, ge=1.0)  # one process runs the cluster-wide jobs; failover time
    settings_reload_interval: float = Field(default=10.0, gt=0)  # re-read run-time settings changed elsewhere
    audit_log_prompts: bool = True
    audit_log_responses: bool = True
    # Retention of the audit trail (docs/audit.md#retention), also editable at run time; 0 keeps forever.
    # Content (prompts, answers, chat conversations and files, stored responses) is blanked or deleted after
    # audit_content_retention_days; the rows themselves (who, when, model, tokens, status) after
    # audit_metadata_retention_days.
    audit_content_retention_days: int = Field(default=0, ge=0)
    audit_metadata_retention_days: int = Field(default=0, ge=0)
    # Speech (docs/voice.md): uploads to /v1/audio/transcriptions and /translations, and the audio itself in the
    # audit trail (off by default: recordings of people's voices; an admin turns it on at run time).
    audio_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)  # one audio file; larger: 413
    audit_log_audio: bool = False  # keep the audio of speech requests under ARTIFACT_STORAGE_PATH/audio
    audio_retention_days: int = Field(default=30, ge=1)  # stored audio older than this is deleted
    audit_flush_interval: float = Field(default=1.0, gt=0)
    audit_batch_size: int = Field(default=500, ge=1)
    audit_buffer_limit: int = Field(default=50_000, ge=100)  # records kept in memory during a database outage
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    db_pool_recycle: int = Field(default=1800, ge=1)
    # Web search (POST /v1/search, docs/search.md). The provider, its URL/key and the timeout are also editable
    # at run time (core.admin.site_settings).
    search_provider: Literal['none', 'searxng', 'brave'] = 'none'  # none: web search is off (503)
    searxng_url: str = ''  # a SearXNG instance's base URL, with the json format enabled
    brave_api_key: str = ''  # Brave Search API subscription token (secret)
    brave_api_url: str = 'https://api.search.brave.com/res/v1/web/search'
    search_timeout: float = Field(default=10.0, gt=0)  # seconds for one whole provider call (then 504)
    search_max_results: int = Field(default=10, ge=1, le=20)  # results per search at most (the default too)

    @field_validator('log_level', 'log_format', mode='before')
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value  # LOG_LEVEL=INFO is what people write

    @field_validator('oidc_metadata_url')
    @classmethod
    def _metadata_over_https(cls, value: str) -> str:
        # tokens and the client secret travel through it: http only for a provider on this machine (tests)
        parts = urlsplit(value.strip())
        loopback = (parts.hostname or '') in ('localhost', '127.0.0.1', '::1')
        if value.strip() and (parts.scheme != 'https' and not (parts.scheme == 'http' and loopback)):
            raise ValueError('must be an https URL (http only on localhost)')
        return value.strip()

    @field_validator('oidc_role_map')
    @classmethod
    def _role_map_is_json_object(cls, value: str) -> str:
        if value.strip():
            try:
                parsed = json.loads(value)
            except ValueError:
                raise ValueError('not JSON') from None
            if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
                raise ValueError('not a JSON object of claim value -> role name') from None
        return value

    @property
    def is_production(self) -> bool:
        return self.mindrouter_env == 'production'

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f'sqlite+aiosqlite:///{(self.data_dir / "mindrouter.db").as_posix()}'

    @property
    def resolved_artifact_path(self) -> Path:
        return self.artifact_storage_path or self.data_dir / 'artifacts'

    def resolved_secret_key(self) -> str:
        """The secret that signs sessions: configured, or (development only) generated once per data folder."""
        if self.is_production:
            _require_strong_secret(self.secret_key)
            return self.secret_key
        if self.secret_key:
            return self.secret_key
        return _development_secret(self.data_dir)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings; InvalidSettings (one line per bad setting, with what it accepts) if the environment is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings([describe_error(error) for error in exc.errors()]) from None


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()


def describe_error(error: ErrorDetails) -> str:
    """One line for one bad setting: `setting PORT=80000 is invalid: a whole number from 1 to 65535`."""
    name = str(error['loc'][0]) if error['loc'] else ''
    field = Settings.model_fields.get(name)
    if field is None:
        return f'settings are invalid: {error["msg"]}'
    value = str(error['input'])
    if name in _SECRET_SETTINGS:
        shown = f'{name.upper()} (value hidden)'
    else:
        shown = f'{name.upper()}={value if len(value) <= _SHOWN_VALUE_LENGTH else value[:_SHOWN_VALUE_LENGTH] + "..."}'
    return f'setting {shown} is invalid: {accepted_values(field) or error["msg"]}'


def accepted_values(field: FieldInfo) -> str:
    """What a setting accepts, in words, from its type and limits ('' when there is nothing to say)."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return 'one of ' + ', '.join(str(choice) for choice in get_args(annotation))
    if annotation is bool:
        return 'true or false'
    limits = {attribute: getattr(item, attribute) for item in field.metadata
              for attribute in ('ge', 'gt', 'le', 'lt', 'pattern') if getattr(item, attribute, None) is not None}
    kind = 'a whole number' if annotation is int else 'a number' if annotation is float else 'text'
    if 'pattern' in limits:
        return f'{kind} matching {limits["pattern"]}'
    if 'ge' in limits and 'le' in limits:
        return f'{kind} from {limits["ge"]} to {limits["le"]}'
    words = {'ge': 'at least', 'gt': 'greater than', 'le': 'at most', 'lt': 'less than'}
    bounds = ' and '.join(f'{words[name]} {limit}' for name, limit in limits.items())
    return f'{kind}, {bounds}' if bounds else ('' if kind == 'text' else kind)


def _require_strong_secret(secret: str) -> None:
    if not secret:
        raise ConfigError('SECRET_KEY is required when MINDROUTER_ENV=production')
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f'SECRET_KEY is too short for production ({len(secret)} < {MIN_SECRET_LENGTH} characters)')
    if secret.lower() in _PLACEHOLDER_SECRETS or len(set(secret)) < 8:
        raise ConfigError('SECRET_KEY looks like a placeholder; generate one with: python -c '
                          '"import secrets; print(secrets.token_urlsafe(48))"')


def _development_secret(data_dir: Path) -> str:
    path = data_dir / 'secret_key'
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, 'w') as file:
        file.write(secret + '\n')
    log.warning('SECRET_KEY is not set: generated one and saved it to %s (set SECRET_KEY in production)', path)
    return secret
