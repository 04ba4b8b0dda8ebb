"""facts imported for Nova's hosts, and the decisions given to nova-scheduler

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 03:00:00

``imported_hosts`` and ``imported_links`` hold what ``kvmplace hosts import``
read from an inventory file (hosts no agent reports on); ``nova_decisions``
records every answer given to kvmplace's filter and weigher in
nova-scheduler (kvmplace.conductor.decisions).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'imported_hosts',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('facts', sa.JSON(), nullable=False),
        sa.Column('imported_at', sa.Float(), nullable=False),
        sa.Column('source_file', sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint('name'))
    op.create_table(
        'imported_links',
        sa.Column('a', sa.String(length=255), nullable=False),
        sa.Column('b', sa.String(length=255), nullable=False),
        sa.Column('mbps', sa.Float(), nullable=False),
        sa.Column('imported_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('a', 'b'))
    op.create_table(
        'nova_decisions',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('instance_uuid', sa.String(length=36), nullable=False),
        sa.Column('operation', sa.String(length=32), nullable=False),
        sa.Column('source', sa.String(length=255), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('candidates', sa.Integer(), nullable=False),
        sa.Column('passed', sa.Integer(), nullable=False),
        sa.Column('best', sa.String(length=255), nullable=True),
        sa.Column('request', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('elapsed_ms', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_nova_decisions_instance_uuid', 'nova_decisions', ['instance_uuid'])
    op.create_index('ix_nova_decisions_created_at', 'nova_decisions', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_nova_decisions_created_at', 'nova_decisions')
    op.drop_index('ix_nova_decisions_instance_uuid', 'nova_decisions')
    op.drop_table('nova_decisions')
    op.drop_table('imported_links')
    op.drop_table('imported_hosts')
