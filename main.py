"""Composition root: the API app with the NiceGUI pages mounted on it, and the `mindrouter` CLI.

`python main.py [serve options]` is `mindrouter serve [serve options]`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from app.cli import main as cli
from core.config import get_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ['cli', 'create_app', 'create_demo_app']


def create_app(*, demo: bool = False) -> ASGIApp:
    """The API (every router) with NiceGUI mounted last, so that no page can shadow an API route, behind
    the inference routes' fast path (app/hotpath.py)."""
    settings = get_settings()
    # NiceGUI reads its storage folder at import time: keep it with the rest of our data.
    os.environ.setdefault('NICEGUI_STORAGE_PATH', str((settings.data_dir / 'nicegui').resolve()))

    from nicegui import ui

    import pages
    from app.factory import create_api_app, serve

    api = create_api_app(demo=demo)
    pages.register_all()
    ui.run_with(api, title='MindRouter', favicon='🧭', dark=None, show_welcome_message=False,
                storage_secret=settings.resolved_secret_key(),
                session_middleware_kwargs={'https_only': settings.is_production, 'same_site': 'lax'})
    return serve(api)


def create_demo_app() -> ASGIApp:
    """uvicorn factory for `mindrouter serve --demo`: simulated engines registered, demo users seeded."""
    return create_app(demo=True)


if __name__ == '__main__':
    if os.environ.get('NICEGUI_USER_SIMULATION'):
        create_app()  # NiceGUI's test fixture runs this file and drives the pages itself
    else:
        sys.exit(cli(['serve', *sys.argv[1:]]))
