"""Single sign-on: providers added in the console, external identities (replacing the unused users.sso_*),
and how each user last signed in.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sso_providers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('display_name', sa.String(length=100), nullable=False),
        sa.Column('metadata_url', sa.String(length=500), nullable=False),
        sa.Column('client_id', sa.String(length=255), nullable=False),
        sa.Column('client_secret', sa.String(length=1000), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('role_claim', sa.String(length=100), nullable=False),
        sa.Column('role_map', sa.JSON(), nullable=False),
        sa.Column('default_role', sa.String(length=32), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_providers')),
        sa.UniqueConstraint('name', name=op.f('uq_sso_providers_name')),
    )
    op.create_table(
        'external_identities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('email', sa.String(length=255), nullable=True),
        sa.Column('display_name', sa.String(length=255), nullable=False),
        sa.Column('claims', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_login_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_external_identities_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_external_identities')),
        sa.UniqueConstraint('issuer', 'subject', name=op.f('uq_external_identities_issuer')),
    )
    op.create_index(op.f('ix_external_identities_user_id'), 'external_identities', ['user_id'])
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('last_login_method', sa.String(length=40), nullable=True))
        # 0001's placeholder for one SSO identity per user, never used: external_identities replaces it
        batch.drop_constraint('uq_users_sso_provider', type_='unique')
        batch.drop_column('sso_subject')
        batch.drop_column('sso_provider')


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('sso_provider', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('sso_subject', sa.String(length=255), nullable=True))
        batch.create_unique_constraint('uq_users_sso_provider', ['sso_provider', 'sso_subject'])
        batch.drop_column('last_login_method')
    op.drop_table('external_identities')  # its index goes with it (MariaDB keeps it while the foreign key needs it)
    op.drop_table('sso_providers')
