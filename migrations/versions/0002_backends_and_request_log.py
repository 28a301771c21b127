"""Backends, the models each one serves, and the request log (audit trail).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mariadb').with_variant(mysql.MEDIUMTEXT(), 'mysql')


def upgrade() -> None:
    op.create_table(
        'backends',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('url', sa.String(length=255), nullable=False),
        sa.Column('engine', sa.String(length=16), nullable=False),
        sa.Column('max_concurrent', sa.Integer(), nullable=False),
        sa.Column('node_id', sa.Integer(), nullable=True),
        sa.Column('gpu_indices', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('simulated', sa.Boolean(), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_checked_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backends')),
        sa.UniqueConstraint('name', name=op.f('uq_backends_name')),
        sa.UniqueConstraint('url', name=op.f('uq_backends_url')),
    )
    op.create_index(op.f('ix_backends_node_id'), 'backends', ['node_id'])

    op.create_table(
        'backend_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('backend_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('family', sa.String(length=64), nullable=True),
        sa.Column('context_length', sa.Integer(), nullable=True),
        sa.Column('parameter_size', sa.String(length=32), nullable=True),
        sa.Column('quantization', sa.String(length=32), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('capabilities', sa.JSON(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('discovered_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['backend_id'], ['backends.id'], name=op.f('fk_backend_models_backend_id_backends'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backend_models')),
        sa.UniqueConstraint('backend_id', 'name', name=op.f('uq_backend_models_backend_id')),
    )
    op.create_index(op.f('ix_backend_models_backend_id'), 'backend_models', ['backend_id'])
    op.create_index(op.f('ix_backend_models_name'), 'backend_models', ['name'])

    op.create_table(
        'request_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('request_id', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('model', sa.String(length=255), nullable=False),
        sa.Column('backend_id', sa.Integer(), nullable=True),
        sa.Column('backend_name', sa.String(length=100), nullable=True),
        sa.Column('stream', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('http_status', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('queue_ms', sa.Float(), nullable=False),
        sa.Column('ttft_ms', sa.Float(), nullable=True),
        sa.Column('total_ms', sa.Float(), nullable=False),
        sa.Column('client_ip', sa.String(length=45), nullable=True),
        sa.Column('user_agent', sa.String(length=255), nullable=True),
        sa.Column('prompt', _LONG_TEXT, nullable=True),
        sa.Column('response', _LONG_TEXT, nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('completed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_request_log_api_key_id_api_keys'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['backend_id'], ['backends.id'], name=op.f('fk_request_log_backend_id_backends'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_request_log_user_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_request_log')),
        sa.UniqueConstraint('request_id', name=op.f('uq_request_log_request_id')),
    )
    op.create_index('ix_request_log_created', 'request_log', ['created_at'])
    op.create_index(op.f('ix_request_log_model'), 'request_log', ['model'])
    op.create_index('ix_request_log_user_created', 'request_log', ['user_id', 'created_at'])


def downgrade() -> None:
    op.drop_table('request_log')  # its indexes go with it
    op.drop_table('backend_models')
    op.drop_table('backends')
