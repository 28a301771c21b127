"""The chat's own errors: a conversation or a file that is not the caller's reads exactly as one that does not
exist (404, no hint that the id is taken)."""

from __future__ import annotations

from core.errors import NotFound


class ConversationNotFound(NotFound):
    code = 'conversation_not_found'


class AttachmentNotFound(NotFound):
    code = 'attachment_not_found'
