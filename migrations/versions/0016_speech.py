"""Speech: budgets in their own units (characters spoken, seconds of audio heard) per role and per user, and the
speech figures and stored audio of each request in the audit trail.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('roles') as batch:
        batch.add_column(sa.Column('tts_char_budget', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('stt_seconds_budget', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('quota_overrides') as batch:
        batch.add_column(sa.Column('tts_char_budget', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('stt_seconds_budget', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('request_log') as batch:
        batch.add_column(sa.Column('speech_chars', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('audio_seconds', sa.Float(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('audio_path', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('request_log') as batch:
        batch.drop_column('audio_path')
        batch.drop_column('audio_seconds')
        batch.drop_column('speech_chars')
    with op.batch_alter_table('quota_overrides') as batch:
        batch.drop_column('stt_seconds_budget')
        batch.drop_column('tts_char_budget')
    with op.batch_alter_table('roles') as batch:
        batch.drop_column('stt_seconds_budget')
        batch.drop_column('tts_char_budget')
