"""leases: which conductor owns each migration and drain, shared admission

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 03:00:00

Several conductors share one database (kvmplace.conductor.leases says
why and how):

* ``lease_owner`` and ``lease_expires`` (seconds since the epoch) on
  ``migrations`` and ``drains``: the conductor that drives the record and
  until when its claim holds. A conductor claims a record with one
  conditional UPDATE (owner is NULL, itself, or the lease expired), which
  works alike on SQLite and PostgreSQL. Rows from before this revision
  have no owner: the first conductor to look adopts them.
* ``admission_slots``: the migrations admitted to copy, with their hosts,
  links and bandwidth, so the per-link, per-host and total limits hold for
  every conductor together.
* ``uq_drains_running_rebalance``: one running rebalance at a time (as
  revision 0003 allows one running drain per host), on the back ends with
  partial indexes.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

REBALANCE_WHERE = "kind = 'rebalance' AND status = 'running'"


def upgrade() -> None:
    for table in ('migrations', 'drains'):
        op.add_column(table, sa.Column('lease_owner', sa.String(255), nullable=True))
        op.add_column(table, sa.Column('lease_expires', sa.Float(), nullable=True))
        op.create_index(f'ix_{table}_lease_owner', table, ['lease_owner'])
    op.create_table(
        'admission_slots',
        sa.Column('migration_id', sa.String(36), primary_key=True),
        sa.Column('source', sa.String(255), nullable=False),
        sa.Column('dest', sa.String(255), nullable=False),
        sa.Column('links', sa.JSON(), nullable=True),
        sa.Column('mibps', sa.Float(), nullable=False),
        sa.Column('planned', sa.Boolean(), nullable=False),
        sa.Column('conductor', sa.String(255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=True))
    if op.get_bind().dialect.name in ('sqlite', 'postgresql'):
        op.create_index('uq_drains_running_rebalance', 'drains', ['kind'], unique=True,
                        sqlite_where=sa.text(REBALANCE_WHERE),
                        postgresql_where=sa.text(REBALANCE_WHERE))


def downgrade() -> None:
    if op.get_bind().dialect.name in ('sqlite', 'postgresql'):
        op.drop_index('uq_drains_running_rebalance', table_name='drains')
    op.drop_table('admission_slots')
    for table in ('drains', 'migrations'):
        op.drop_index(f'ix_{table}_lease_owner', table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('lease_expires')
            batch.drop_column('lease_owner')
