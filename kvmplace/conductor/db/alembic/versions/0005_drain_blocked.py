"""drain status ``blocked``: the host still has guests a live migration cannot move

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 03:00:00

A drain used to count only running and paused guests and ended
``completed`` while shut-off, suspended or crashed guests were still
defined on the host (issue 16). It now ends ``blocked`` when only such
guests remain, naming each one and what the operator must do. The drain
CHECK constraint (PostgreSQL) and the triggers that stand for it (SQLite)
are redefined to admit the new status; the migration statuses are
unchanged.

Frozen lists, as in 0004: a revision is history.
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

MIGRATION_STATUSES = ('queued', 'scheduling', 'prechecking', 'pinning', 'migrating',
                      'verifying', 'rolling-back', 'completed', 'failed', 'aborted')
ACTIVE_MIGRATION_STATUSES = ('queued', 'scheduling', 'prechecking', 'pinning', 'migrating',
                             'verifying', 'rolling-back')
DRAIN_STATUSES = ('running', 'completed', 'failed', 'blocked')
OLD_DRAIN_STATUSES = ('running', 'completed', 'failed')


def _in(values: tuple) -> str:
    return 'status IN (' + ', '.join(f"'{v}'" for v in values) + ')'


def _set_drain_check(values: tuple) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        op.drop_constraint('ck_drains_status', 'drains', type_='check')
        op.create_check_constraint('ck_drains_status', 'drains', _in(values))
    elif dialect == 'sqlite':
        for event in ('INSERT', 'UPDATE OF status'):
            name = f"ck_drains_status_{event.split()[0].lower()}"
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON drains "
                f"WHEN (NEW.{_in(values)}) IS NOT 1 "
                f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: "
                f"ck_drains_status'); END")


def upgrade() -> None:
    _set_drain_check(DRAIN_STATUSES)


def downgrade() -> None:
    op.execute("UPDATE drains SET status = 'failed', error = COALESCE(error || ' ', '') || "
               "'(status blocked retired by schema downgrade from 0005)' "
               "WHERE status = 'blocked'")
    _set_drain_check(OLD_DRAIN_STATUSES)
