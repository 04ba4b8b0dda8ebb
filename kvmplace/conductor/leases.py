"""Several conductors, one truth: leases on records, admission in the database.

Clouds run several conductors on one database (PostgreSQL) and one
broker. Each migration and each drain or rebalance is driven by exactly
one of them, its *owner*: the record holds ``lease_owner`` (the
conductor's ``[conductor] host``) and ``lease_expires`` (seconds since the
epoch). Why each piece:

- **Claiming** is one conditional UPDATE - "set the owner to me where the
  owner is nobody, me, or a lease that has expired" - and the row count
  says who won. It needs no row lock, so it behaves the same on SQLite and
  PostgreSQL, and two conductors racing for one record cannot both win.
- **Renewal**: a keeper thread (:class:`Keeper`) pushes the expiry of the
  records this process really drives (a live workflow or drain thread)
  every ``takeover_seconds / 4``. A record whose owner died stops being
  renewed and expires within ``takeover_seconds``.
- **Adoption**: the same thread looks for active records whose lease
  expired (or that have no owner, from before leases, or that name this
  conductor but nothing here drives them - a restart under the same name)
  and claims them; the claimed record is resumed by today's recovery
  (``workflow.RESUME``). So a conductor that starts while another drives a
  migration changes nothing about it.
- **Writes check the owner**: the workflow's status changes are
  conditional on still holding the lease (``Database.update_migration(...,
  owner=)``); a conductor that lost its lease (paused, cut off from the
  database longer than ``takeover_seconds``) gets :class:`LeaseLost` and
  walks away without touching the guest - the new owner drives it.
- **Progress reaches the owner**: agents cast to the conductor topic, so
  any conductor may receive a migration's progress or its result. Progress
  is stored in the record by whoever receives it (as before); a result
  received by a conductor that does not own the migration is stored in the
  record too (:func:`store_result`), and the owner's wait loop reads it.
- **Admission** (:class:`SharedAdmission`): the admitted migrations are
  rows of ``admission_slots``, checked and inserted in one transaction
  serialized across conductors (a PostgreSQL advisory lock), so the limits
  per link, per host and in total hold for the cluster of conductors.

Conductors' clocks must agree to well within ``takeover_seconds`` (NTP):
the expiry is wall-clock time written by one conductor and read by another.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa

from kvmplace.conductor import admission as adm
from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import models
from kvmplace.status import ACTIVE_MIGRATION_STATUSES, DrainStatus, MigrationStatus

LOG = logging.getLogger(__name__)

LeaseLost = db_api.LeaseLost

#: pg_advisory_xact_lock key that serializes admission ("kvma").
ADMISSION_LOCK_KEY = 0x6b766d61

_TABLES: dict[str, Any] = {'migrations': models.MigrationRecord, 'drains': models.DrainRecord}


def _active(table: str):
    model = _TABLES[table]
    if table == 'migrations':
        return model.status.in_([str(s) for s in ACTIVE_MIGRATION_STATUSES])
    return model.status == DrainStatus.RUNNING.value


class Leases:
    """Claims, renews and finds leases of one conductor (``owner``)."""

    def __init__(self, db: db_api.Database, owner: str, takeover_seconds: float,
                 clock: clock_mod.Clock = clock_mod.REAL):
        self.db = db
        self.owner = owner
        self.takeover_seconds = float(takeover_seconds)
        self.clock = clock

    def expiry(self) -> float:
        return self.clock.time() + self.takeover_seconds

    def claim(self, table: str, record_id: str) -> bool:
        """Take the record if nobody holds it (free, mine, or expired)."""
        model = _TABLES[table]
        now = self.clock.time()
        with self.db.session() as s:
            done = s.execute(sa.update(model).where(
                model.id == record_id, _active(table),
                sa.or_(model.lease_owner.is_(None), model.lease_owner == self.owner,
                       model.lease_expires.is_(None), model.lease_expires < now)
            ).values(lease_owner=self.owner, lease_expires=now + self.takeover_seconds)
                .execution_options(synchronize_session=False))
            return bool(getattr(done, 'rowcount', 0))

    def renew(self, table: str, record_ids: Iterable[str]) -> set[str]:
        """Push the expiry of the records this process drives; the ids
        whose lease is no longer ours (another conductor adopted them)."""
        ids = sorted(set(record_ids))
        if not ids:
            return set()
        model = _TABLES[table]
        with self.db.session() as s:
            s.execute(sa.update(model).where(
                model.id.in_(ids), model.lease_owner == self.owner
            ).values(lease_expires=self.expiry()).execution_options(synchronize_session=False))
            mine = set(s.scalars(sa.select(model.id).where(
                model.id.in_(ids), model.lease_owner == self.owner)))
        return set(ids) - mine

    def adoptable(self, table: str, running: Iterable[str] = (),
                  own: bool = False) -> list[dict]:
        """Active records nobody drives: no owner or an expired lease;
        with ``own`` (a conductor's first look after a restart under the
        same name) also those with this conductor's name. Later looks
        leave them to expire: a record this process is creating right now
        names it before its thread starts."""
        model = _TABLES[table]
        now = self.clock.time()
        who = [model.lease_owner.is_(None), model.lease_expires.is_(None),
               model.lease_expires < now]
        if own:
            who.append(model.lease_owner == self.owner)
        with self.db.session() as s:
            rows = s.scalars(sa.select(model).where(_active(table), sa.or_(*who))
                             .order_by(model.created_at))
            found = [models.to_dict(r) for r in rows]
        running = set(running)
        return [r for r in found if r['id'] not in running]

    def owns(self, record: dict) -> bool:
        return record.get('lease_owner') == self.owner


def store_result(db: db_api.Database, migration_id: str, result: dict) -> bool:
    """Keep an agent's result for the owner to read: received by a
    conductor that does not drive the migration. Only while it copies and
    has no result yet (a late or repeated cast changes nothing)."""
    m = models.MigrationRecord
    with db.session() as s:
        done = s.execute(sa.update(m).where(
            m.id == migration_id, m.status == MigrationStatus.MIGRATING.value,
            m.result.is_(None)).values(result=result)
            .execution_options(synchronize_session=False))
        return bool(getattr(done, 'rowcount', 0))


def lease_view(record: dict, now: float) -> dict:
    """Who owns a record and for how long (CLI, doctor)."""
    expires = record.get('lease_expires')
    return {'owner': record.get('lease_owner'),
            'expires_in_seconds': None if expires is None else round(expires - now, 1)}


class Keeper:
    """The thread that renews this conductor's leases and adopts orphans.

    ``running()`` gives the ids this process drives (migrations, drains);
    ``adopt()`` claims and resumes what nobody drives; ``lost(ids)`` is
    told which records another conductor took over.
    """

    def __init__(self, leases: Leases, running: Callable[[], dict[str, set]],
                 adopt: Callable[[], Any], lost: Callable[[str, set], None],
                 stop: threading.Event):
        self.leases = leases
        self.running = running
        self.adopt = adopt
        self.lost = lost
        self.stop = stop
        self.interval_s = max(0.2, leases.takeover_seconds / 4.0)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name='lease-keeper', daemon=True)
        self._thread.start()

    def tick(self) -> None:
        for table, ids in self.running().items():
            gone = self.leases.renew(table, ids)
            if gone:
                self.lost(table, gone)
        self.adopt()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except db_api.DatabaseError as exc:
                LOG.warning('leases not renewed: %s (next try in %.0f s)', exc,
                            self.interval_s)
            except Exception:  # noqa: BLE001 - the keeper must keep going
                LOG.exception('lease keeper')
            self.stop.wait(self.interval_s)


@dataclasses.dataclass
class SharedAdmission(adm.Admission):
    """:class:`admission.Admission` whose slots live in the database.

    The check and the insert of a slot are one transaction, serialized
    across conductors by an advisory lock on PostgreSQL (on SQLite the
    database's single writer and this process's lock do it). Slots of
    migrations that ended (a conductor died before releasing) do not
    count and are swept.
    """

    db: Optional[db_api.Database] = None
    owner: Optional[str] = None

    def _load(self, s) -> None:
        slot = models.AdmissionSlot
        mig = models.MigrationRecord
        rows = s.execute(sa.select(slot, mig.status).join(
            mig, mig.id == slot.migration_id, isouter=True)).all()
        self.slots = {}
        stale = []
        for row, status in rows:
            if status not in [str(x) for x in ACTIVE_MIGRATION_STATUSES]:
                stale.append(row.migration_id)
                continue
            self.slots[row.migration_id] = adm.Slot(
                row.migration_id, row.source, row.dest,
                tuple(tuple(link) for link in row.links or ()), float(row.mibps),
                bool(row.planned))
        if stale:
            s.execute(sa.delete(slot).where(slot.migration_id.in_(stale)))

    def _try(self, slot: adm.Slot) -> Optional[str]:
        assert self.db is not None
        with self.db._lock, self.db.session() as s:
            if s.get_bind().dialect.name == 'postgresql':
                s.execute(sa.text('SELECT pg_advisory_xact_lock(:key)'),
                          {'key': ADMISSION_LOCK_KEY})
            self._load(s)
            if slot.migration_id in self.slots:
                return None             # adopted: its slot is held already
            reason = self._blocker(slot)
            if reason is None:
                s.add(models.AdmissionSlot(
                    migration_id=slot.migration_id, source=slot.source, dest=slot.dest,
                    links=[list(link) for link in slot.links], mibps=slot.mibps,
                    planned=slot.planned, conductor=self.owner))
                self.slots[slot.migration_id] = slot
            return reason

    def try_acquire(self, slot: adm.Slot) -> Optional[str]:
        with self._cond:
            return self._try(slot)

    def acquire(self, slot: adm.Slot, cancelled: Callable[[], bool],
                on_wait: Callable[[str], None] = lambda r: None,
                poll_seconds: float = 1.0) -> bool:
        with self._cond:
            told = None
            while True:
                reason = self._try(slot)
                if reason is None:
                    return True
                if cancelled() or self.closed:      # the conductor stops
                    return False
                if reason != told:
                    on_wait(reason)
                    told = reason
                self._cond.wait(poll_seconds)

    def release(self, migration_id: str) -> None:
        assert self.db is not None
        with self._cond:
            try:
                with self.db.session() as s:
                    s.execute(sa.delete(models.AdmissionSlot).where(
                        models.AdmissionSlot.migration_id == migration_id))
            except db_api.DatabaseError as exc:
                # The slot of an ended migration no longer counts (_load).
                LOG.warning('admission slot of %s not released: %s', migration_id[:8], exc)
            self.slots.pop(migration_id, None)
            self._cond.notify_all()

    def held(self) -> list[dict]:
        """Every admitted migration (doctor)."""
        assert self.db is not None
        with self.db.session() as s:
            return [models.to_dict(r) for r in s.scalars(sa.select(models.AdmissionSlot))]


def owners(db: db_api.Database, now: float) -> list[dict]:
    """Who owns the active records and until when, by conductor (doctor):
    ``[{"owner", "migrations", "drains", "expires_in_seconds"}]``, the
    expiry being the soonest of that owner's leases (negative: expired,
    waiting to be adopted)."""
    out: dict[Optional[str], dict] = {}
    for table, model in _TABLES.items():
        with db.session() as s:
            rows = s.execute(sa.select(model.lease_owner, model.lease_expires)
                             .where(_active(table))).all()
        for owner, expires in rows:
            entry = out.setdefault(owner, {'owner': owner, 'migrations': 0, 'drains': 0,
                                           'expires_in_seconds': None})
            entry[table] += 1
            left = None if expires is None else round(expires - now, 1)
            if left is not None and (entry['expires_in_seconds'] is None
                                     or left < entry['expires_in_seconds']):
                entry['expires_in_seconds'] = left
    return sorted(out.values(), key=lambda e: e['owner'] or '')


def describe(entries: list[dict]) -> Optional[str]:
    """A doctor line; None when no lease is overdue (else the problem)."""
    overdue = [e for e in entries if e['owner'] is None or (
        e['expires_in_seconds'] is not None and e['expires_in_seconds'] < 0)]
    if not overdue:
        return None
    return '; '.join(
        f"{e['migrations']} migrations and {e['drains']} drains of "
        f"{e['owner'] or 'no conductor'} wait for adoption"
        + (f" (lease expired {-e['expires_in_seconds']:.0f} s ago)"
           if e['expires_in_seconds'] is not None else '')
        + ': is any kvmplace-conductor running on this database?' for e in overdue)
