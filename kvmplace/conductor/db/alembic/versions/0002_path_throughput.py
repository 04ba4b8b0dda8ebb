"""path throughput learned from finished migrations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'path_throughput',
        sa.Column('source', sa.String(length=255), nullable=False),
        sa.Column('dest', sa.String(length=255), nullable=False),
        sa.Column('mibps', sa.Float(), nullable=False),
        sa.Column('last_mibps', sa.Float(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('last_migration_id', sa.String(length=36), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('source', 'dest'))


def downgrade() -> None:
    op.drop_table('path_throughput')
