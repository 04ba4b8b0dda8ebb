"""Tables: host states, migrations, the steps and events of each, drains.

Every step of a migration is a row written *before* the step runs and
updated when it ends, so a conductor that restarts (or is killed) can tell
from the database alone where each migration stood.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer,
                        String, Text, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kvmplace import status as st

#: The partial indexes' and CHECK constraints' conditions, generated from
#: kvmplace.status so that the schema says what the code sets (revision
#: 0004 made the database match; a change of the enums needs a revision).
ACTIVE_MIGRATION_WHERE = st.sql_in('status', st.ACTIVE_MIGRATION_STATUSES)
MIGRATION_STATUS_CHECK = st.sql_in('status', tuple(st.MigrationStatus))
DRAIN_STATUS_CHECK = st.sql_in('status', tuple(st.DrainStatus))
RUNNING_DRAIN_WHERE = f"kind = 'drain' AND status = '{st.DrainStatus.RUNNING.value}'"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class HostRecord(Base):
    """Latest state an agent reported, and the operator's flags."""
    __tablename__ = 'hosts'

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    reported_at: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    maintenance: Mapped[bool] = mapped_column(default=False)
    maintenance_reason: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(default=False)


class MigrationRecord(Base):
    __tablename__ = 'migrations'
    # One active migration per guest, enforced by the database so that it
    # holds for several conductors too (revision 0003, which says why).
    __table_args__ = (
        Index('uq_migrations_active_instance', 'instance', unique=True,
              sqlite_where=text(ACTIVE_MIGRATION_WHERE),
              postgresql_where=text(ACTIVE_MIGRATION_WHERE)),
        CheckConstraint(MIGRATION_STATUS_CHECK, name='ck_migrations_status'),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), index=True)
    instance_uuid: Mapped[Optional[str]] = mapped_column(String(36), nullable=True)
    source: Mapped[str] = mapped_column(String(255))
    dest: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    requested_dest: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    policy: Mapped[dict] = mapped_column(JSON, default=dict)
    estimate: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    pin: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    dest_cpus: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    progress: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    result: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    attempts: Mapped[list] = mapped_column(JSON, default=list)
    drain_id: Mapped[Optional[str]] = mapped_column(String(36), nullable=True, index=True)
    abort_requested: Mapped[bool] = mapped_column(default=False)
    conductor: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)

    steps: Mapped[list[StepRecord]] = relationship(
        back_populates='migration', order_by='StepRecord.seq', cascade='all, delete-orphan')


class StepRecord(Base):
    """One step (check_destination, pre_pin, migrate, ...) or event."""
    __tablename__ = 'migration_steps'

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    migration_id: Mapped[str] = mapped_column(ForeignKey('migrations.id'), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    data: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)

    migration: Mapped[MigrationRecord] = relationship(back_populates='steps')


class DrainRecord(Base):
    """A drain or rebalance: its plan and where it stands."""
    __tablename__ = 'drains'
    # One running drain per host (revision 0003).
    __table_args__ = (
        Index('uq_drains_running_host', 'host', unique=True,
              sqlite_where=text(RUNNING_DRAIN_WHERE),
              postgresql_where=text(RUNNING_DRAIN_WHERE)),
        CheckConstraint(DRAIN_STATUS_CHECK, name='ck_drains_status'),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default='drain')
    host: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    plan: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class PathThroughput(Base):
    """What finished migrations measured on one (source, destination) path.

    ``mibps`` is an exponentially weighted mean of the bandwidth at which
    the model reproduces each migration's measured time
    (kvmplace.estimator.fit_bandwidth); the estimator uses it instead of the
    nominal link rate x link efficiency for this path.
    """
    __tablename__ = 'path_throughput'

    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    dest: Mapped[str] = mapped_column(String(255), primary_key=True)
    mibps: Mapped[float] = mapped_column(Float)
    last_mibps: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    last_migration_id: Mapped[Optional[str]] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def to_dict(row: Any) -> dict:
    """A record as plain data (datetimes as ISO strings) for RPC and the CLI."""
    out = {}
    for col in row.__table__.columns:
        value = getattr(row, col.key)
        if isinstance(value, dt.datetime):
            value = value.isoformat(timespec='milliseconds') + 'Z'
        out[col.key] = value
    return out


class ImportedHost(Base):
    """A host's facts from ``kvmplace hosts import`` (revision 0006).

    For hosts no agent reports on (clouds where kvmplace has no agent beside
    nova-compute yet). An agent's report (``hosts``) overrides these for its
    host; ``imported_at`` is the facts' age, like an agent's ``reported_at``.
    """
    __tablename__ = 'imported_hosts'

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    imported_at: Mapped[float] = mapped_column(Float)
    source_file: Mapped[Optional[str]] = mapped_column(String(1024), nullable=True)


class ImportedLink(Base):
    """A link from ``kvmplace hosts import`` (revision 0006)."""
    __tablename__ = 'imported_links'

    a: Mapped[str] = mapped_column(String(255), primary_key=True)
    b: Mapped[str] = mapped_column(String(255), primary_key=True)
    mbps: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[float] = mapped_column(Float)


class NovaDecision(Base):
    """One answer given to nova-scheduler (revision 0006): what Nova asked
    (instance, flavor, source, candidates) and, per host, kvmplace's verdict
    - so an operator can answer "why did Nova put this guest there?"."""
    __tablename__ = 'nova_decisions'

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    source: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    request_id: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    candidates: Mapped[int] = mapped_column(Integer)
    passed: Mapped[int] = mapped_column(Integer)
    best: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    request: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    elapsed_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
