"""The web console's chat, below the page: conversations and messages (core.chat.conversations) and the files
attached to them (core.chat.files). The page (pages/chat.py) calls these services; they never import NiceGUI.
docs/chat-storage.md describes the tables, the files on disk and the flow of one message."""

from core.chat.errors import AttachmentNotFound, ConversationNotFound

__all__ = ['AttachmentNotFound', 'ConversationNotFound']
