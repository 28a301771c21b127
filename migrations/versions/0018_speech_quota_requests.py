"""Quota requests: users may ask for more speech too (characters read aloud, seconds of audio transcribed).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('quota_requests') as batch:
        batch.add_column(sa.Column('requested_tts_chars', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('requested_stt_seconds', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('quota_requests') as batch:
        batch.drop_column('requested_stt_seconds')
        batch.drop_column('requested_tts_chars')
