"""Database access for the conductor.

Each function is one short transaction that commits before it returns:
the workflow relies on "written before the next step starts". SQLite runs
in WAL mode with a busy timeout so the RPC threads and the workflow threads
can write concurrently. Storage errors (full or read-only disk) become one
clear KvmplaceError and leave the previous records intact (the transaction
rolls back).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import uuid as uuidlib
from typing import Any, Callable, Iterator, Optional

import alembic.command
import alembic.config
import sqlalchemy as sa
from sqlalchemy import event, exc as sa_exc, orm

from kvmplace import objects
from kvmplace.conductor.db import models
from kvmplace.exception import DatabaseError, KvmplaceError, NotFound
from kvmplace.status import (ACTIVE_FILTER, ACTIVE_MIGRATION_STATUSES, FINAL_DRAIN_STATUSES,
                             FINAL_MIGRATION_STATUSES, DrainStatus, MigrationStatus, StepStatus)

#: Kept for callers of the database layer; kvmplace.status is the source.
ACTIVE_STATUSES = ACTIVE_MIGRATION_STATUSES
FINAL_STATUSES = FINAL_MIGRATION_STATUSES


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never echo an unparsable URL
        return '<database url>'


class LeaseLost(KvmplaceError):
    """Another conductor holds this record's lease now (it adopted the
    record after this one's lease expired): this conductor must not change
    it any more (kvmplace.conductor.leases)."""


#: pg_advisory_xact_lock key that serializes schema upgrades ("kvmp").
SCHEMA_LOCK_KEY = 0x6b766d70

class Database:
    """Engine, schema upgrade and the record operations."""

    def __init__(self, url: str):
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa_exc.ArgumentError:
            raise DatabaseError('[database] connection is not a valid SQLAlchemy URL') from None
        kwargs: dict[str, Any] = {'future': True, 'json_serializer': _json_dumps}
        if parsed.get_backend_name() == 'sqlite':
            if parsed.database and parsed.database != ':memory:':
                directory = os.path.dirname(os.path.abspath(parsed.database))
                try:
                    os.makedirs(directory, exist_ok=True)
                except OSError as exc:
                    raise DatabaseError(f'cannot create {directory}: {exc.strerror}') from None
            kwargs['connect_args'] = {'check_same_thread': False, 'timeout': 30}
            if not parsed.database or parsed.database == ':memory:':
                kwargs['poolclass'] = sa.pool.StaticPool
        else:
            kwargs['pool_pre_ping'] = True
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except (ImportError, sa_exc.NoSuchModuleError) as exc:
            module = getattr(exc, 'name', None) or str(exc).split()[-1]
            raise DatabaseError(f'[database] connection: the {parsed.get_backend_name()} '
                                f'driver is not installed ({module})') from None
        if parsed.get_backend_name() == 'sqlite':
            event.listen(self.engine, 'connect', _sqlite_pragmas)
        self._session = orm.sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f'Database({_redact(self.url)})'

    def _error(self, prefix: str, exc: Exception) -> DatabaseError:
        """One line: what failed, SQLite's or the server's reason, and for a
        SQLite file the state of its file system when that is the cause
        (SQLite only says "unable to open database file" when a read-only
        mount keeps it from creating its -shm file)."""
        return DatabaseError(f'{prefix}{_redact(self.url)}: {_short(exc)}{self._storage_hint()}')

    def _storage_hint(self) -> str:
        try:
            parsed = sa.engine.make_url(self.url)
        except sa_exc.ArgumentError:
            return ''
        if parsed.get_backend_name() != 'sqlite' or parsed.database in (None, '', ':memory:'):
            return ''
        try:
            vfs = os.statvfs(os.path.dirname(os.path.abspath(parsed.database)))
        except OSError:
            return ''
        if vfs.f_flag & os.ST_RDONLY:
            return ' (its file system is mounted read-only)'
        if vfs.f_bavail == 0:
            return ' (its file system is full)'
        return ''

    # -- schema ---------------------------------------------------------------
    def upgrade(self) -> None:
        """Bring the schema to the newest alembic revision."""
        try:
            with self.engine.begin() as conn:
                self._upgrade_on(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error('cannot prepare the database ', exc) from None

    def _upgrade_on(self, conn: sa.Connection) -> None:
        """The upgrade inside the caller's transaction.

        On PostgreSQL, DDL is transactional and two conductors starting on
        an empty database would both create the tables: the second blocks
        on the first's uncommitted catalog rows, then fails ("relation
        already exists"). A transaction-scoped advisory lock taken first
        makes the second wait for the first to commit, after which it finds
        the schema at head and does nothing. (SQLite: one conductor.)
        """
        if conn.dialect.name == 'postgresql':
            conn.execute(sa.text('SELECT pg_advisory_xact_lock(:key)'),
                         {'key': SCHEMA_LOCK_KEY})
        cfg = alembic.config.Config()
        cfg.set_main_option('script_location',
                            os.path.join(os.path.dirname(__file__), 'alembic'))
        cfg.attributes['connection'] = conn
        alembic.command.upgrade(cfg, 'head')

    def check_writable(self) -> None:
        """Raise DatabaseError now if the database takes no writes.

        A conductor on a read-only database would start, read its records
        and then fail at the first report; it should refuse to start, in
        one line. A write that changes nothing, rolled back.
        """
        try:
            with self.engine.connect() as conn:
                with conn.begin() as trans:
                    conn.execute(sa.text('UPDATE alembic_version '
                                         'SET version_num = version_num'))
                    trans.rollback()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error('cannot write to the database ', exc) from None

    @contextlib.contextmanager
    def session(self) -> Iterator[orm.Session]:
        """One transaction. Any driver error (full or read-only disk, a
        corrupt file, a lost server) becomes one DatabaseError line and the
        transaction rolls back, leaving the previous records as they were."""
        try:
            with self._session.begin() as session:
                yield session
        except sa_exc.DBAPIError as exc:
            raise self._error('database ', exc) from None

    # -- hosts ----------------------------------------------------------------
    def report_host(self, name: str, state: dict, reported_at: float) -> None:
        with self.session() as s:
            row = s.get(models.HostRecord, name)
            if row is None:
                row = models.HostRecord(name=name)
                s.add(row)
            row.state = state
            row.reported_at = reported_at

    def list_hosts(self) -> list[dict]:
        with self.session() as s:
            rows = s.scalars(sa.select(models.HostRecord).order_by(models.HostRecord.name))
            return [models.to_dict(r) for r in rows]

    def get_host(self, name: str) -> dict:
        with self.session() as s:
            row = s.get(models.HostRecord, name)
            if row is None:
                raise NotFound(f'unknown host "{name}"')
            return models.to_dict(row)

    def set_maintenance(self, name: str, on: bool, reason: Optional[str] = None) -> None:
        with self.session() as s:
            row = s.get(models.HostRecord, name)
            if row is None:
                raise NotFound(f'unknown host "{name}"')
            row.maintenance = on
            row.maintenance_reason = reason if on else None

    # -- migrations -----------------------------------------------------------
    def create_migration(self, instance: str, source: str, requested_dest: Optional[str],
                         policy: dict, drain_id: Optional[str] = None,
                         conductor: Optional[str] = None,
                         instance_uuid: Optional[str] = None,
                         lease_expires: Optional[float] = None,
                         planned: Optional[dict] = None) -> dict:
        """Create a queued migration, refusing a second active one per guest.

        ``planned`` is what a drain's plan expects of it (kept in its
        estimate as ``planned``: the links it may hold, its predicted time).

        The check and the insert share one transaction under a lock, so two
        requests to this conductor cannot both get through; a unique index
        (revision 0003) stops a second conductor on the same database.
        """
        def refuse_active(s: orm.Session) -> None:
            active = s.scalar(sa.select(models.MigrationRecord.id).where(
                models.MigrationRecord.instance == instance,
                models.MigrationRecord.status.in_(ACTIVE_STATUSES)))
            if active:
                raise KvmplaceError(f'instance "{instance}" is already migrating '
                                    f'(migration {active})')

        return self._insert_unless_taken(refuse_active, lambda: models.MigrationRecord(
            id=str(uuidlib.uuid4()), instance=instance, source=source,
            requested_dest=requested_dest, status=MigrationStatus.QUEUED.value, policy=policy,
            drain_id=drain_id, conductor=conductor, attempts=[],
            instance_uuid=instance_uuid,
            estimate={'planned': planned} if planned else None,
            lease_owner=conductor if lease_expires is not None else None,
            lease_expires=lease_expires))

    def _insert_unless_taken(self, refuse: Callable[[orm.Session], None],
                             make_row: Callable[[], models.Base]) -> dict:
        """Insert ``make_row()`` unless ``refuse`` raises the operator's error.

        ``refuse`` runs under the lock (requests to this conductor) and
        again when a unique index refused the row: then another conductor
        committed the same row first, and ``refuse`` names it. Anything
        else the index or a constraint refused is a DatabaseError line.
        """
        try:
            with self._lock, self.session() as s:
                refuse(s)
                row = make_row()
                s.add(row)
                try:
                    s.flush()
                except sa_exc.IntegrityError as exc:
                    raise _Taken(exc) from None
                return models.to_dict(row)
        except _Taken as taken:
            with self.session() as s:
                refuse(s)
            raise self._error('database ', taken.args[0]) from None

    def update_migration(self, migration_id: str, owner: Optional[str] = None,
                         **fields: Any) -> dict:
        """Change a migration; with ``owner``, only while that conductor
        holds its lease (else LeaseLost, nothing changed)."""
        with self.session() as s:
            row = s.get(models.MigrationRecord, migration_id,
                        with_for_update=owner is not None)
            if row is None:
                raise NotFound(f'unknown migration "{migration_id}"')
            if owner is not None and row.lease_owner not in (owner, None):
                raise LeaseLost(f'migration {migration_id} is owned by {row.lease_owner} now')
            for key, value in fields.items():
                setattr(row, key, str(value) if key == 'status' else value)
            if fields.get('status') in FINAL_STATUSES and row.finished_at is None:
                row.finished_at = models.utcnow()
            if fields.get('status') == MigrationStatus.MIGRATING and row.started_at is None:
                row.started_at = models.utcnow()
            s.flush()
            return models.to_dict(row)

    def get_migration(self, migration_id: str, steps: bool = True) -> dict:
        with self.session() as s:
            row = s.get(models.MigrationRecord, migration_id)
            if row is None:
                # Accept an unambiguous id prefix, as operators paste short ids.
                matches = list(s.scalars(sa.select(models.MigrationRecord).where(
                    models.MigrationRecord.id.like(f'{_escape_like(migration_id)}%',
                                                   escape='\\')).limit(2)))
                if len(matches) != 1 or len(migration_id) < 4:
                    raise NotFound(f'unknown migration "{migration_id}"')
                row = matches[0]
            data = models.to_dict(row)
            if steps:
                data['steps'] = [models.to_dict(st) for st in row.steps]
            return data

    def list_migrations(self, status: Optional[str] = None, instance: Optional[str] = None,
                        drain_id: Optional[str] = None, limit: int = 100) -> list[dict]:
        with self.session() as s:
            q = sa.select(models.MigrationRecord)
            if status == ACTIVE_FILTER:
                q = q.where(models.MigrationRecord.status.in_(ACTIVE_STATUSES))
            elif status:
                q = q.where(models.MigrationRecord.status == status)
            if instance:
                q = q.where(models.MigrationRecord.instance == instance)
            if drain_id:
                q = q.where(models.MigrationRecord.drain_id == drain_id)
            q = q.order_by(models.MigrationRecord.created_at.desc()).limit(limit)
            return [models.to_dict(r) for r in s.scalars(q)]

    def unfinished_migrations(self) -> list[dict]:
        return self.list_migrations(status=ACTIVE_FILTER, limit=100000)

    def add_step(self, migration_id: str, name: str, host: Optional[str] = None,
                 status: str = StepStatus.RUNNING, message: Optional[str] = None,
                 data: Optional[dict] = None, finished: bool = False) -> int:
        with self.session() as s:
            seq = s.scalar(sa.select(sa.func.count()).select_from(models.StepRecord).where(
                models.StepRecord.migration_id == migration_id)) or 0
            row = models.StepRecord(migration_id=migration_id, seq=seq, name=name, host=host,
                                    status=str(status), message=message, data=data)
            if finished:
                row.finished_at = row.started_at = models.utcnow()
            s.add(row)
            s.flush()
            return row.id

    def finish_step(self, step_id: int, status: str, message: Optional[str] = None,
                    data: Optional[dict] = None) -> None:
        with self.session() as s:
            row = s.get(models.StepRecord, step_id)
            if row is None:
                return
            row.status = str(status)
            row.finished_at = models.utcnow()
            if message is not None:
                row.message = message
            if data is not None:
                row.data = data

    # -- learned path throughput ---------------------------------------------
    def record_path_rate(self, source: str, dest: str, mibps: float, weight: float,
                         migration_id: Optional[str] = None,
                         max_age_seconds: float = 0) -> dict:
        """Fold one observed throughput into the path's weighted mean.

        A row older than ``max_age_seconds`` (> 0) is no longer used for
        predictions (path_rates), so it is not blended in either: the path
        starts again from this measurement."""
        with self._lock, self.session() as s:
            row = s.get(models.PathThroughput, (source, dest))
            stale = (row is not None and max_age_seconds > 0 and row.updated_at is not None
                     and row.updated_at < models.utcnow() - dt.timedelta(seconds=max_age_seconds))
            if row is None:
                row = models.PathThroughput(source=source, dest=dest, mibps=mibps, samples=0)
                s.add(row)
            elif stale:
                row.mibps, row.samples = mibps, 0
            else:
                row.mibps = weight * mibps + (1.0 - weight) * row.mibps
            row.last_mibps = mibps
            row.samples = (row.samples or 0) + 1
            row.last_migration_id = migration_id
            s.flush()
            return models.to_dict(row)

    def overlapping_migrations(self, migration_id: str) -> list[dict]:
        """Other migrations that copied data to or from this one's hosts
        while it was copying (started, and not finished before it started)."""
        m = models.MigrationRecord
        with self.session() as s:
            row = s.get(m, migration_id)
            if row is None or row.started_at is None:
                return []
            hosts = [h for h in (row.source, row.dest) if h]
            q = sa.select(m).where(
                m.id != row.id, m.started_at.is_not(None),
                sa.or_(m.source.in_(hosts), m.dest.in_(hosts)),
                sa.or_(m.finished_at.is_(None), m.finished_at > row.started_at))
            if row.finished_at is not None:
                q = q.where(m.started_at < row.finished_at)
            return [models.to_dict(r) for r in s.scalars(q)]

    def path_rates(self, max_age_seconds: float = 0) -> dict[tuple[str, str], float]:
        """(source, dest) -> learned MiB/s.

        ``max_age_seconds`` > 0 leaves out paths no migration has confirmed
        for that long (they fall back to the nominal link rate)."""
        return {path: mibps for path, (mibps, _) in self.path_learning(max_age_seconds).items()}

    def path_learning(self, max_age_seconds: float = 0
                      ) -> dict[tuple[str, str], tuple[float, int]]:
        """(source, dest) -> (learned MiB/s, migrations behind it), the paths
        path_rates would give."""
        t = models.PathThroughput
        q = sa.select(t.source, t.dest, t.mibps, t.samples)
        if max_age_seconds and max_age_seconds > 0:
            q = q.where(t.updated_at >= models.utcnow() - dt.timedelta(seconds=max_age_seconds))
        with self.session() as s:
            return {(src, dst): (float(mibps), int(n or 0)) for src, dst, mibps, n in s.execute(q)}

    def forget_path_rates(self, source: Optional[str] = None,
                          dest: Optional[str] = None) -> list[dict]:
        """Delete the learned rows matching ``source`` and/or ``dest`` (both
        None: every row); returns what was deleted."""
        t = models.PathThroughput
        q = sa.select(t)
        if source is not None:
            q = q.where(t.source == source)
        if dest is not None:
            q = q.where(t.dest == dest)
        with self._lock, self.session() as s:
            rows = list(s.scalars(q))
            gone = [models.to_dict(r) for r in rows]
            for row in rows:
                s.delete(row)
            return gone

    def list_path_rates(self) -> list[dict]:
        with self.session() as s:
            rows = s.scalars(sa.select(models.PathThroughput).order_by(
                models.PathThroughput.source, models.PathThroughput.dest))
            return [models.to_dict(r) for r in rows]

    # -- drains ---------------------------------------------------------------
    def create_drain(self, kind: str, host: Optional[str], plan: dict,
                     status: str = DrainStatus.RUNNING, lease_owner: Optional[str] = None,
                     lease_expires: Optional[float] = None) -> dict:
        """Record a drain or rebalance, refusing a second running drain of
        one host (from this conductor or, by the unique index of revision
        0003, from another on the same database)."""
        def refuse_running(s: orm.Session) -> None:
            if kind == 'rebalance':
                # One at a time across conductors (revision 0007's index).
                other = s.scalar(sa.select(models.DrainRecord.id).where(
                    models.DrainRecord.kind == 'rebalance',
                    models.DrainRecord.status == DrainStatus.RUNNING.value))
                if other:
                    raise KvmplaceError(f'a rebalance is already running (rebalance {other})')
            if kind != 'drain' or not host:
                return
            running = s.scalar(sa.select(models.DrainRecord.id).where(
                models.DrainRecord.host == host, models.DrainRecord.kind == 'drain',
                models.DrainRecord.status == DrainStatus.RUNNING.value))
            if running:
                raise KvmplaceError(f'host "{host}" is already draining (drain {running})')

        return self._insert_unless_taken(refuse_running, lambda: models.DrainRecord(
            id=str(uuidlib.uuid4()), kind=kind, host=host, status=str(status), plan=plan,
            lease_owner=lease_owner, lease_expires=lease_expires))

    def update_drain(self, drain_id: str, owner: Optional[str] = None, **fields: Any) -> dict:
        """Change a drain; with ``owner``, only while it holds the lease."""
        with self.session() as s:
            row = s.get(models.DrainRecord, drain_id, with_for_update=owner is not None)
            if row is None:
                raise NotFound(f'unknown drain "{drain_id}"')
            if owner is not None and row.lease_owner not in (owner, None):
                raise LeaseLost(f'drain {drain_id} is owned by {row.lease_owner} now')
            for key, value in fields.items():
                setattr(row, key, str(value) if key == 'status' else value)
            if fields.get('status') in FINAL_DRAIN_STATUSES and not row.finished_at:
                row.finished_at = models.utcnow()
            s.flush()
            return models.to_dict(row)

    def get_drain(self, drain_id: str) -> dict:
        with self.session() as s:
            row = s.get(models.DrainRecord, drain_id)
            if row is None:
                raise NotFound(f'unknown drain "{drain_id}"')
            return models.to_dict(row)

    def list_drains(self, status: Optional[str] = None) -> list[dict]:
        with self.session() as s:
            q = sa.select(models.DrainRecord)
            if status:
                q = q.where(models.DrainRecord.status == status)
            q = q.order_by(models.DrainRecord.created_at.desc())
            return [models.to_dict(r) for r in s.scalars(q)]


def _json_dumps(value: Any) -> str:
    """JSON columns as kvmplace prints JSON: an infinite or NaN float is
    null. SQLite would keep them (as the non-JSON tokens Infinity and NaN)
    while PostgreSQL refuses the whole write ("invalid input syntax for
    type json"), so the same record must not depend on the back end."""
    return json.dumps(objects.plain(value))


class _Taken(Exception):
    """A unique index refused an insert (args[0]: the IntegrityError)."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute('PRAGMA journal_mode=WAL')
    except Exception:  # noqa: BLE001 - read-only media cannot switch; reads still work
        pass
    cur.execute('PRAGMA foreign_keys=ON')
    cur.execute('PRAGMA synchronous=NORMAL')
    cur.close()


def _short(exc: Exception) -> str:
    orig = getattr(exc, 'orig', None)
    return str(orig or exc).splitlines()[0]


def _escape_like(text: str) -> str:
    return text.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')
