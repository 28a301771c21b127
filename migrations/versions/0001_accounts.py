"""Accounts: roles (seeded), users, API keys, quota overrides and quota requests.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name, display name, weight, token budget (per period, 0 = unlimited), RPM, concurrency, admin
_ROLES = [
    ('admin', 'Administrator', 10, 0, 600, 32, True),
    ('faculty', 'Faculty', 3, 20_000_000, 120, 8, False),
    ('staff', 'Staff', 2, 10_000_000, 90, 6, False),
    ('student', 'Student', 1, 2_000_000, 60, 4, False),
]


def upgrade() -> None:
    roles = op.create_table(
        'roles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('display_name', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('scheduler_weight', sa.Integer(), nullable=False),
        sa.Column('token_budget', sa.BigInteger(), nullable=False),
        sa.Column('rpm_limit', sa.Integer(), nullable=False),
        sa.Column('max_concurrent', sa.Integer(), nullable=False),
        sa.Column('is_admin', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
        sa.UniqueConstraint('name', name=op.f('uq_roles_name')),
    )
    op.bulk_insert(roles, [
        {'name': name, 'display_name': display, 'description': '', 'scheduler_weight': weight,
         'token_budget': budget, 'rpm_limit': rpm, 'max_concurrent': concurrent, 'is_admin': is_admin}
        for name, display, weight, budget, rpm, concurrent, is_admin in _ROLES
    ])

    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=255), nullable=True),
        sa.Column('full_name', sa.String(length=255), nullable=False),
        sa.Column('is_active', sa.Boolean(), nullable=False),
        sa.Column('role_id', sa.Integer(), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('sso_provider', sa.String(length=32), nullable=True),
        sa.Column('sso_subject', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('last_login_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_users_role_id_roles'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('email', name=op.f('uq_users_email')),
        sa.UniqueConstraint('sso_provider', 'sso_subject', name=op.f('uq_users_sso_provider')),
        sa.UniqueConstraint('username', name=op.f('uq_users_username')),
    )
    op.create_index(op.f('ix_users_role_id'), 'users', ['role_id'])

    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('digest', name=op.f('uq_api_keys_digest')),
    )
    op.create_index(op.f('ix_api_keys_user_id'), 'api_keys', ['user_id'])

    op.create_table(
        'quota_overrides',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_budget', sa.BigInteger(), nullable=True),
        sa.Column('rpm_limit', sa.Integer(), nullable=True),
        sa.Column('max_concurrent', sa.Integer(), nullable=True),
        sa.Column('scheduler_weight', sa.Integer(), nullable=True),
        sa.Column('note', sa.String(length=255), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_quota_overrides_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_quota_overrides')),
    )

    op.create_table(
        'quota_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('requested_tokens', sa.BigInteger(), nullable=True),
        sa.Column('requested_rpm', sa.Integer(), nullable=True),
        sa.Column('requested_max_concurrent', sa.Integer(), nullable=True),
        sa.Column('justification', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=True),
        sa.Column('review_note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('reviewed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_quota_requests_reviewer_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_quota_requests_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_requests')),
    )
    op.create_index(op.f('ix_quota_requests_status'), 'quota_requests', ['status'])
    op.create_index(op.f('ix_quota_requests_user_id'), 'quota_requests', ['user_id'])


def downgrade() -> None:
    op.drop_table('quota_requests')
    op.drop_table('quota_overrides')
    op.drop_table('api_keys')
    op.drop_table('users')
    op.drop_table('roles')
