"""statuses from kvmplace.status: retired ones gone, CHECK constraints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00

The migration statuses ``aborting`` and ``rolled-back`` and the drain
status ``aborted`` were listed (in filters, in the partial index of
revision 0003) but nothing ever set them. They are retired: a row that
somehow holds one is moved to the status the workflow treats it as
(``aborting`` was resumed as ``rolling-back``; the two final ones become
``failed``, with the old name kept in the error), the partial index is
redefined without ``aborting``, and the database refuses any status
outside the vocabulary from now on:

* PostgreSQL: CHECK constraints ``ck_migrations_status`` and
  ``ck_drains_status`` (as the models declare them);
* SQLite: a CHECK constraint needs the table rebuilt, which SQLite cannot
  do inside the upgrade's transaction while ``migration_steps`` refers to
  ``migrations`` (foreign keys are on): BEFORE INSERT/UPDATE triggers
  refuse the same values instead.

The status lists are this revision's own frozen copy (a revision is
history: it must not change when kvmplace.status does). The unit test
tests/unit/conductor/test_status.py fails if they no longer match the
enums, so a change of the vocabulary comes with a new revision.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

MIGRATION_STATUSES = ('queued', 'scheduling', 'prechecking', 'pinning', 'migrating',
                      'verifying', 'rolling-back', 'completed', 'failed', 'aborted')
ACTIVE_MIGRATION_STATUSES = ('queued', 'scheduling', 'prechecking', 'pinning', 'migrating',
                             'verifying', 'rolling-back')
DRAIN_STATUSES = ('running', 'completed', 'failed')
#: retired status -> (table, what it becomes)
RETIRED = {('migrations', 'aborting'): 'rolling-back',
           ('migrations', 'rolled-back'): 'failed',
           ('drains', 'aborted'): 'failed'}

OLD_ACTIVE_WHERE = ("status IN ('queued', 'scheduling', 'prechecking', 'pinning', "
                    "'migrating', 'verifying', 'rolling-back', 'aborting')")
OLD_DRAIN_STATUSES = ('running', 'completed', 'failed', 'aborted')
OLD_MIGRATION_STATUSES = MIGRATION_STATUSES + ('aborting', 'rolled-back')


def _in(values: tuple) -> str:
    return 'status IN (' + ', '.join(f"'{v}'" for v in values) + ')'


def _dialect() -> str:
    return op.get_bind().dialect.name


def _set_checks(migrations: tuple, drains: tuple) -> None:
    if _dialect() == 'postgresql':
        op.create_check_constraint('ck_migrations_status', 'migrations', _in(migrations))
        op.create_check_constraint('ck_drains_status', 'drains', _in(drains))
    elif _dialect() == 'sqlite':
        for table, values in (('migrations', migrations), ('drains', drains)):
            for event in ('INSERT', 'UPDATE OF status'):
                name = f"ck_{table}_status_{event.split()[0].lower()}"
                op.execute(
                    f"CREATE TRIGGER {name} BEFORE {event} ON {table} "
                    f"WHEN (NEW.{_in(values)}) IS NOT 1 "
                    f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: "
                    f"ck_{table}_status'); END")


def _drop_checks() -> None:
    if _dialect() == 'postgresql':
        op.drop_constraint('ck_migrations_status', 'migrations', type_='check')
        op.drop_constraint('ck_drains_status', 'drains', type_='check')
    elif _dialect() == 'sqlite':
        for table in ('migrations', 'drains'):
            for event in ('insert', 'update'):
                op.execute(f'DROP TRIGGER IF EXISTS ck_{table}_status_{event}')


def _partial(where: str) -> None:
    if _dialect() not in ('sqlite', 'postgresql'):
        return
    op.drop_index('uq_migrations_active_instance', table_name='migrations')
    op.create_index('uq_migrations_active_instance', 'migrations', ['instance'], unique=True,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    for (table, old), new in RETIRED.items():
        op.execute(sa.text(
            f"UPDATE {table} SET status = :new, error = COALESCE(error || ' ', '') || "
            f":note WHERE status = :old").bindparams(
                new=new, old=old, note=f'(status {old} retired by schema revision 0004)'))
    _partial(_in(ACTIVE_MIGRATION_STATUSES))
    _set_checks(MIGRATION_STATUSES, DRAIN_STATUSES)


def downgrade() -> None:
    _drop_checks()
    _partial(OLD_ACTIVE_WHERE)
