"""The web console's chat: conversations, their messages, and the files sent with them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'conversations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('model', sa.String(length=255), nullable=True),
        sa.Column('system_prompt', sa.Text(), nullable=False),
        sa.Column('temperature', sa.Float(), nullable=True),
        sa.Column('think', sa.Boolean(), nullable=True),
        sa.Column('web_search', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_conversations_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    )
    op.create_index('ix_conversations_user_updated', 'conversations', ['user_id', 'updated_at'])

    op.create_table(
        'chat_messages',
        sa.Column('id', _BIG_ID, nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('content', _LONG_TEXT, nullable=False),
        sa.Column('reasoning', _LONG_TEXT, nullable=True),
        sa.Column('model', sa.String(length=255), nullable=True),
        sa.Column('request_id', sa.String(length=40), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('citations', sa.JSON(), nullable=True),
        sa.Column('stopped', sa.Boolean(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_chat_messages_conversation_id_conversations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_messages')),
    )
    op.create_index('ix_chat_messages_conversation', 'chat_messages', ['conversation_id', 'id'])

    op.create_table(
        'chat_attachments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=True),
        sa.Column('message_id', _BIG_ID, nullable=True),
        sa.Column('request_id', sa.String(length=40), nullable=True),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('media_type', sa.String(length=100), nullable=False),
        sa.Column('size_bytes', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('storage_path', sa.String(length=500), nullable=False),
        sa.Column('extracted_chars', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_chat_attachments_conversation_id_conversations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['chat_messages.id'],
                                name=op.f('fk_chat_attachments_message_id_chat_messages'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_chat_attachments_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_attachments')),
    )
    op.create_index(op.f('ix_chat_attachments_conversation_id'), 'chat_attachments', ['conversation_id'])
    op.create_index(op.f('ix_chat_attachments_message_id'), 'chat_attachments', ['message_id'])
    op.create_index(op.f('ix_chat_attachments_user_id'), 'chat_attachments', ['user_id'])


def downgrade() -> None:
    op.drop_table('chat_attachments')  # its indexes go with it
    op.drop_table('chat_messages')
    op.drop_table('conversations')
