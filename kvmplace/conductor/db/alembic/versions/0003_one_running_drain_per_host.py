"""one running drain per host, one active migration per guest, in the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:00:00

Database.create_drain and create_migration check, then insert, under a
lock of their own process. Two conductors on one PostgreSQL database do
not share that lock, and under READ COMMITTED neither sees the other's
uncommitted row: both would get through. These partial unique indexes
make the database refuse the second row (the second insert waits for the
first transaction and fails once it commits). SQLite and PostgreSQL have
partial indexes; on other back ends (MySQL) the index would be a plain
unique one and refuse every second drain ever made, so it is not created
there and the per-process lock is all there is.

The status list is this revision's own copy: a later change to
api.ACTIVE_STATUSES needs a revision that redefines the index.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

DRAIN_WHERE = "kind = 'drain' AND status = 'running'"
MIGRATION_WHERE = ("status IN ('queued', 'scheduling', 'prechecking', 'pinning', "
                   "'migrating', 'verifying', 'rolling-back', 'aborting')")


def _partial_indexes() -> bool:
    return op.get_bind().dialect.name in ('sqlite', 'postgresql')


def upgrade() -> None:
    if not _partial_indexes():
        return
    op.create_index('uq_drains_running_host', 'drains', ['host'], unique=True,
                    sqlite_where=sa.text(DRAIN_WHERE), postgresql_where=sa.text(DRAIN_WHERE))
    op.create_index('uq_migrations_active_instance', 'migrations', ['instance'], unique=True,
                    sqlite_where=sa.text(MIGRATION_WHERE),
                    postgresql_where=sa.text(MIGRATION_WHERE))


def downgrade() -> None:
    if not _partial_indexes():
        return
    op.drop_index('uq_migrations_active_instance', table_name='migrations')
    op.drop_index('uq_drains_running_host', table_name='drains')
