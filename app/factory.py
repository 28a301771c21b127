"""create_api_app(): the FastAPI application with every HTTP surface, and no NiceGUI."""

from __future__ import annotations

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.lifespan import lifespan
from app.routers import admin, anthropic, fallback, health, ollama, openai
from core import __version__


def create_api_app(*, demo: bool = False) -> FastAPI:
    """`demo`: also run simulated engines in-process and register them (see app/demo.py)."""
    app = FastAPI(title='MindRouter', version=__version__, lifespan=lifespan,
                  description='One API (OpenAI, Ollama, Anthropic) over a cluster of Ollama and vLLM servers.')
    app.state.demo = demo
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(ollama.router)
    app.include_router(anthropic.router)
    app.include_router(admin.router)
    fallback.install(app)  # last: answers only what no other route matched
    return app


def create_demo_api_app() -> FastAPI:
    """uvicorn factory for `mindrouter serve --demo --no-ui`."""
    return create_api_app(demo=True)
