"""Stored Responses API answers (`store: true`), for `previous_response_id` and `GET /v1/responses/{id}`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')


def upgrade() -> None:
    op.create_table(
        'stored_responses',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=255), nullable=False),
        sa.Column('response', _LONG_TEXT, nullable=False),
        sa.Column('input_items', _LONG_TEXT, nullable=False),
        sa.Column('history', _LONG_TEXT, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_stored_responses_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_responses')),
    )
    with op.batch_alter_table('stored_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_responses_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stored_responses_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('stored_responses')  # its indexes go with it (MariaDB refuses to drop the foreign key's own)
