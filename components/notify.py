"""How a failed console action is shown to the person who took it."""

from __future__ import annotations

from nicegui import ui

from core.errors import MindRouterError


def notify_failure(exc: Exception) -> None:
    """A failed action as the user should see it: the reason, never a stack trace."""
    message = exc.message if isinstance(exc, MindRouterError) else str(exc) or exc.__class__.__name__
    ui.notify(message, type='negative', multi_line=True)
