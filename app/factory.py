"""create_api_app(): the FastAPI application with every HTTP surface, and no NiceGUI; `serve()` puts the
inference routes' fast front door (app/hotpath.py) in front of a finished application, and with ACCESS_LOG the
access line (app/access_log.py) in front of both. Request bodies are bounded in the application and in the fast
front door (app/body_limit.py), so every route, the NiceGUI pages mounted later included, is covered."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from app import intake, openapi
from app.access_log import AccessLog
from app.body_limit import BodyLimit
from app.errors import install_error_handlers
from app.hotpath import Handler, HotPaths
from app.lifespan import lifespan
from app.routers import (
    account,
    admin,
    admin_audit,
    admin_limits,
    admin_model_aliases,
    admin_models,
    admin_queue,
    admin_settings,
    admin_users,
    anthropic,
    audio,
    fallback,
    health,
    mcp,
    nodes,
    ollama,
    openai,
    public,
    responses,
    search,
    telemetry,
)
from app.security_headers import SecurityHeaders
from core import __version__
from core.config import get_settings


def create_api_app(*, demo: bool = False) -> FastAPI:
    """`demo`: also run simulated engines in-process and register them (see app/demo.py)."""
    app = FastAPI(title='MindRouter', version=__version__, lifespan=lifespan,
                  description='One API (OpenAI, Ollama, Anthropic) over a cluster of Ollama and vLLM servers.')
    app.state.demo = demo
    install_error_handlers(app)
    openapi.install(app)  # errors documented as they are answered: in each path's dialect, 400 not 422
    # Every body bounded before any route reads it; the inference routes authenticate first and audit the refusal.
    app.add_middleware(BodyLimit, limit=get_settings().max_request_bytes, audited=intake.audited_paths(),
                       larger=_upload_limits())
    # Outermost: covers every route and the NiceGUI pages mounted on this app later (main.py).
    app.add_middleware(SecurityHeaders, production=get_settings().is_production)
    app.include_router(health.router)
    app.include_router(public.router)
    app.include_router(openai.router)
    app.include_router(audio.router)
    app.include_router(responses.router)
    app.include_router(search.router)
    app.include_router(ollama.router)
    app.include_router(anthropic.router)
    app.include_router(anthropic.root_router)
    app.include_router(admin.router)
    app.include_router(admin_models.router)
    app.include_router(admin_model_aliases.router)
    app.include_router(admin_queue.router)
    app.include_router(admin_limits.router)
    app.include_router(admin_users.router)
    app.include_router(admin_audit.router)
    app.include_router(admin_settings.router)
    app.include_router(account.router)
    app.include_router(nodes.router)
    app.include_router(telemetry.router)
    app.include_router(mcp.router)  # /mcp: the MCP server (its session manager runs in the app's lifespan)
    fallback.install(app)  # last: answers only what no other route matched
    return app


def _upload_limits() -> dict[str, int]:
    """Routes that take files larger than MAX_REQUEST_BYTES: the file's own limit, plus room for the form fields
    (the file itself is measured exactly while it arrives, app/speech.py)."""
    audio = get_settings().audio_max_bytes + 1024 * 1024
    return {'/v1/audio/transcriptions': audio, '/v1/audio/translations': audio}


# The inference routes: high volume, their own body parsing, auth and dialect errors.
HOT_ROUTES: dict[tuple[str, str], Handler] = {
    ('POST', '/v1/chat/completions'): openai.chat_completions,
    ('POST', '/v1/completions'): openai.completions,
    ('POST', '/v1/embeddings'): openai.embeddings,
    ('POST', '/api/chat'): ollama.chat,
    ('POST', '/api/generate'): ollama.generate,
    ('POST', '/api/embed'): ollama.embed,
    ('POST', '/anthropic/v1/messages'): anthropic.messages,
    ('POST', '/v1/messages'): anthropic.root_messages,  # the root alias (ANTHROPIC_BASE_URL = the server)
    ('POST', '/v1/responses'): responses.create_response,  # Codex's whole conversation goes through it
}


def serve(app: FastAPI) -> ASGIApp:
    """The ASGI application to serve: `app` behind the inference routes' fast path (and the access line)."""
    hot_paths = HotPaths(app, HOT_ROUTES, max_body=get_settings().max_request_bytes)
    return AccessLog(hot_paths) if get_settings().access_log else hot_paths


def serve_api() -> ASGIApp:
    """uvicorn factory for `mindrouter serve --no-ui`."""
    return serve(create_api_app())


def serve_demo_api() -> ASGIApp:
    """uvicorn factory for `mindrouter serve --demo --no-ui`."""
    return serve(create_api_app(demo=True))
