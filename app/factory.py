"""create_api_app(): the FastAPI application with every HTTP surface, and no NiceGUI; `serve()` puts the
inference routes' fast front door (app/hotpath.py) in front of a finished application, and with ACCESS_LOG the
access line (app/access_log.py) in front of both."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from app.access_log import AccessLog
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
    fallback,
    health,
    mcp,
    nodes,
    ollama,
    openai,
    public,
    search,
    telemetry,
)
from core import __version__
from core.config import get_settings


def create_api_app(*, demo: bool = False) -> FastAPI:
    """`demo`: also run simulated engines in-process and register them (see app/demo.py)."""
    app = FastAPI(title='MindRouter', version=__version__, lifespan=lifespan,
                  description='One API (OpenAI, Ollama, Anthropic) over a cluster of Ollama and vLLM servers.')
    app.state.demo = demo
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(public.router)
    app.include_router(openai.router)
    app.include_router(search.router)
    app.include_router(ollama.router)
    app.include_router(anthropic.router)
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


# The inference routes: high volume, their own body parsing, auth and dialect errors.
HOT_ROUTES: dict[tuple[str, str], Handler] = {
    ('POST', '/v1/chat/completions'): openai.chat_completions,
    ('POST', '/v1/completions'): openai.completions,
    ('POST', '/v1/embeddings'): openai.embeddings,
    ('POST', '/api/chat'): ollama.chat,
    ('POST', '/api/generate'): ollama.generate,
    ('POST', '/api/embed'): ollama.embed,
    ('POST', '/anthropic/v1/messages'): anthropic.messages,
}


def serve(app: FastAPI) -> ASGIApp:
    """The ASGI application to serve: `app` behind the inference routes' fast path (and the access line)."""
    hot_paths = HotPaths(app, HOT_ROUTES)
    return AccessLog(hot_paths) if get_settings().access_log else hot_paths


def serve_api() -> ASGIApp:
    """uvicorn factory for `mindrouter serve --no-ui`."""
    return serve(create_api_app())


def serve_demo_api() -> ASGIApp:
    """uvicorn factory for `mindrouter serve --demo --no-ui`."""
    return serve(create_api_app(demo=True))
