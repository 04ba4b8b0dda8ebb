"""The statuses of migrations, drains and their steps: the one vocabulary.

Every place that sets, stores, filters, validates or shows a status - the
workflow, the drain executor, the database models (their partial index and
CHECK constraints are generated from these enums), RPC validation, the CLI
- uses these names. A status that nothing sets has no member: a status that
only appears in a filter or a constraint is a promise nobody keeps (the
old ``aborting`` and ``rolled-back`` were such).

The members are ``str`` (StrEnum), so they compare equal to the plain
strings that cross RPC and come back from the database, and serialize as
those strings.
"""
from __future__ import annotations

import enum


class MigrationStatus(enum.StrEnum):
    """Where one migration record stands (kvmplace.conductor.workflow)."""

    QUEUED = 'queued'
    SCHEDULING = 'scheduling'
    PRECHECKING = 'prechecking'
    PINNING = 'pinning'
    MIGRATING = 'migrating'
    VERIFYING = 'verifying'
    ROLLING_BACK = 'rolling-back'
    COMPLETED = 'completed'
    FAILED = 'failed'
    ABORTED = 'aborted'


#: Unfinished: a workflow drives it (recovery resumes it after a restart).
ACTIVE_MIGRATION_STATUSES: tuple[MigrationStatus, ...] = (
    MigrationStatus.QUEUED, MigrationStatus.SCHEDULING, MigrationStatus.PRECHECKING,
    MigrationStatus.PINNING, MigrationStatus.MIGRATING, MigrationStatus.VERIFYING,
    MigrationStatus.ROLLING_BACK)
#: Ended: nothing changes the record any more.
FINAL_MIGRATION_STATUSES: tuple[MigrationStatus, ...] = (
    MigrationStatus.COMPLETED, MigrationStatus.FAILED, MigrationStatus.ABORTED)
#: Before the copy starts: an abort or a restart starts over / just undoes the pinning.
BEFORE_COPY_STATUSES: tuple[MigrationStatus, ...] = (
    MigrationStatus.QUEUED, MigrationStatus.SCHEDULING, MigrationStatus.PRECHECKING,
    MigrationStatus.PINNING)
#: The list filter that means "every active status" (list_migrations, CLI --status).
ACTIVE_FILTER = 'active'


class DrainStatus(enum.StrEnum):
    """Where a drain or rebalance record stands (kvmplace.conductor.drain)."""

    RUNNING = 'running'
    COMPLETED = 'completed'
    FAILED = 'failed'
    #: The running guests have left, but guests a live migration cannot
    #: move (shut off, suspended, crashed) are still defined on the host:
    #: the record names each and what the operator must do
    #: (kvmplace.conductor.drain_blockers). Not "completed": decommissioning
    #: the host would lose them.
    BLOCKED = 'blocked'


FINAL_DRAIN_STATUSES: tuple[DrainStatus, ...] = (DrainStatus.COMPLETED, DrainStatus.FAILED,
                                                 DrainStatus.BLOCKED)


class JobOutcome(enum.StrEnum):
    """How an agent's migration job ended (``result.status`` of its
    migration_finished cast and get_job): the workflow decides on it."""

    COMPLETED = 'completed'
    FAILED = 'failed'
    ABORTED = 'aborted'
    TIMED_OUT = 'timed-out'
    #: Nothing started: the destination was refused when the migration was
    #: asked for (Nova's conductor or scheduler said no to the host, its
    #: migration record ended 'error'). The workflow tries the next-ranked
    #: host, as for a check_destination refusal.
    REFUSED = 'refused'


class StepStatus(enum.StrEnum):
    """The outcome of one recorded step of a migration (table migration_steps)."""

    RUNNING = 'running'
    OK = 'ok'
    FAILED = 'failed'
    REFUSED = 'refused'
    WAITING = 'waiting'
    CANCELLED = 'cancelled'


def sql_in(column: str, values: tuple[str, ...] | type[enum.StrEnum]) -> str:
    """``column IN ('a', 'b')`` for a partial index or a CHECK constraint,
    generated from the enum so that the schema cannot drift from the code.
    The values are our own identifiers (no quote in any of them)."""
    items = [str(v) for v in values]
    if any("'" in item for item in items):
        raise ValueError('a status must not contain a quote')
    return f"{column} IN ({', '.join(repr(item) for item in items)})"
