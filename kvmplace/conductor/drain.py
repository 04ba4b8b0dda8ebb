"""Execute drains and rebalances through the migration workflow.

A drain puts its host in maintenance, plans every guest (planner/drain.py)
and then *follows* the plan: whatever the current plan says starts now
(start_seconds 0) is started, as an ordinary migration record with the
planned destination. Whenever a migration ends - early, late or failed -
the rest is re-planned from the live state, with the migrations still
running holding their share of the links. So the schedule adapts to what
really happens, and a conductor restart simply resumes following.

A guest is never migrated twice by one drain: its record says which guests
have a completed migration, and the re-plan only sees guests still on the
host. A guest whose migration failed is retried once, then reported.

The world is looked at every poll, but the drain is re-planned only when
something happened (events): a migration of the drain started, ended or
failed, the guests on the host changed, a host's report changed what the
planner reads, or a start failed; and at least every REPLAN_MAX_SECONDS.
Re-planning every second cost a full plan per second per drain.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor import drain_blockers
from kvmplace.conductor import retry
from kvmplace.conductor.db.api import LeaseLost
from kvmplace.exception import DatabaseError, KvmplaceError, NotFound
from kvmplace.planner import concurrency as conc
from kvmplace.planner import drain as drain_plan
from kvmplace.planner import rebalance as rebalance_plan
from kvmplace.status import FINAL_MIGRATION_STATUSES, DrainStatus, MigrationStatus

LOG = logging.getLogger(__name__)

MAX_TRIES = 2
#: Re-plan at least this often even without an event.
REPLAN_MAX_SECONDS = 30.0


def _hosts_key(inventory) -> int:
    """What the planner reads of the hosts, hashed: a change is an event."""
    return hash(tuple((h.name, h.enabled, h.maintenance, h.up, h.link_mbps, h.memory_mib,
                       h.memory_used_mib, h.vcpus, h.vcpus_used,
                       tuple((n.free_memory_mib, n.bandwidth_mibps) for n in h.numa))
                      for h in inventory.hosts.values()))


class DrainExecutor:
    """Follows one drain (or rebalance) record until it ends."""

    def __init__(self, ctx, drain_id: str, poll_seconds: float = 1.0,
                 clock: clock_mod.Clock = clock_mod.REAL):
        self.ctx = ctx  # the ConductorManager: snapshot, scheduler, start_migration
        self.db = ctx.db
        self.drain_id = drain_id
        self.poll = poll_seconds
        self.clock = clock
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        #: the conductor holding this record's lease (kvmplace.conductor.leases)
        self.owner: Optional[str] = getattr(ctx, 'owner', None)
        self._planned_for: Optional[tuple] = None
        self._planned_at = 0.0

    # -- helpers --------------------------------------------------------------
    def _migrations(self) -> list[dict]:
        return self.db.list_migrations(drain_id=self.drain_id, limit=100000)

    def _save(self, **fields) -> dict:
        return self.db.update_drain(self.drain_id, owner=self.owner, **fields)

    def _busy(self, running: list[dict], topology,
              concurrency: conc.Concurrency = conc.NONE) -> list[tuple]:
        """What the running migrations hold: links, rate, seconds left
        (the job's live ETA, or its estimate before progress comes, plus
        the record's tail after the job: post-verify and its settle)."""
        busy = []
        for m in running:
            dest = m.get('dest') or m.get('requested_dest')
            if not dest:
                continue
            path = topology.widest_path(m['source'], dest)
            est = m.get('estimate') or {}
            cap = (m.get('policy') or {}).get('bandwidth_cap_mibps')
            mibps = float(cap or est.get('bandwidth_mibps') or 0.0)
            prog = m.get('progress') or {}
            left = prog.get('eta_seconds')
            if left is None:
                left = est.get('total_seconds') or 1.0
            left = float(left) + concurrency.verify_seconds
            busy.append((m['instance'], path.links if path else (), mibps, left))
        return busy

    # -- the loop -------------------------------------------------------------
    def run(self) -> dict:
        """Follow the drain until it ends. A database failure (full or
        read-only disk) pauses it instead of ending it: the failure could
        not be recorded anyway, and the drain would stay 'running' with
        nobody following it until the next conductor start."""
        def paused(exc, pause_s: float) -> None:
            LOG.warning('drain %s paused: %s (next try in %.0f s)', self.drain_id[:8], exc,
                        pause_s)

        try:
            while not self.stop.is_set():
                try:
                    ended = retry.call(self._look, clock=self.clock, retry_on=(DatabaseError,),
                                       pause_s=2 * self.poll, max_pause_s=30.0, stop=self.stop,
                                       on_retry=paused)
                except DatabaseError:
                    break               # stopping while the database fails
                if ended:
                    break
                self.clock.wait(self.stop, self.poll)
        except LeaseLost as exc:
            LOG.warning('drain %s: %s; leaving it to that conductor', self.drain_id[:8], exc)
        except Exception as exc:  # noqa: BLE001 - the drain record says why
            LOG.exception('drain %s failed', self.drain_id[:8])
            self._save(status=DrainStatus.FAILED, error=str(exc).splitlines()[0])
        return self.db.get_drain(self.drain_id)

    def _look(self) -> bool:
        """The record, then one tick if it still runs; True when it ended."""
        record = self.db.get_drain(self.drain_id)
        if self.owner is not None and record.get('lease_owner') not in (None, self.owner):
            raise LeaseLost(f"drain {self.drain_id} is owned by {record['lease_owner']} now")
        return record['status'] != DrainStatus.RUNNING or self._tick(record)

    def _tick(self, record: dict) -> bool:
        """One look at the world; True when the drain has ended."""
        migrations = self._migrations()
        running = [m for m in migrations if m['status'] not in FINAL_MIGRATION_STATUSES]
        done = {m['instance'] for m in migrations if m['status'] == MigrationStatus.COMPLETED}
        tries: dict[str, int] = {}
        last_error: dict[str, str] = {}
        for m in migrations:
            tries[m['instance']] = tries.get(m['instance'], 0) + 1
            if m['status'] != MigrationStatus.COMPLETED and m.get('error'):
                last_error[m['instance']] = m['error']
        plan = dict(record.get('plan') or {})
        if record['kind'] == 'drain':
            inventory, topology = self.ctx.snapshot()
            host = record['host']
            if host not in inventory.hosts:
                raise NotFound(f'host "{host}" no longer reports')
            # A guest whose migration of this drain completed was verified
            # on its destination; the host's last report may still list it
            # (reports are up to report_interval old, older while the
            # broker is away - seen on the lab: the guest was planned and
            # started again). It has left, and is never planned again.
            on_host = [i.name for i in inventory.instances_on(host) if i.name not in done]
            busy_names = {m['instance'] for m in running}
            gave_up = [n for n in on_host if n not in busy_names and tries.get(n, 0) >= MAX_TRIES]
            exclude = tuple(busy_names | set(gave_up) | done)
            todo = [n for n in on_host if n not in exclude]
            if not todo and not running:
                unplaced = [{'instance': n, 'reason': last_error.get(n, 'migration failed')}
                            for n in gave_up] + list(plan.get('unplaced_final') or [])
                # Guests that left the host through a migration that failed
                # after the hand-over (e.g. the guest crashed on its
                # destination: post_verify): the host is empty, but the
                # drain must not read as clean.
                broken = [{'instance': n, 'dest': next(
                              (m.get('dest') for m in reversed(migrations)
                               if m['instance'] == n), None),
                           'reason': last_error[n]}
                          for n in sorted(set(last_error) - done - set(on_host))]
                # Empty means no guest *defined* here, not none running.
                blocked = drain_blockers.blockers(self.db.get_host(host).get('state') or {},
                                                  moved=done)
                status = DrainStatus.COMPLETED if not on_host and not broken \
                    else DrainStatus.FAILED
                error = None
                if on_host:
                    error = f'{len(on_host)} guests remain on {host}'
                elif broken:
                    error = (f'{host} is empty, but {len(broken)} guests left it through a '
                             f'migration that failed: ' + '; '.join(
                                 f"{b['instance']} ({b['reason']})" for b in broken))
                elif blocked:
                    status = DrainStatus.BLOCKED
                    error = drain_blockers.summary(host, blocked)
                self._save(status=status, plan={**plan, 'unplaced': unplaced,
                                                'remaining': on_host, 'moved': sorted(done),
                                                'failed_after_leaving': broken,
                                                'blocked': blocked},
                           error=error)
                return True
            events = (tuple((m['id'], m['status']) for m in migrations), tuple(on_host),
                      _hosts_key(inventory))
            if (events == self._planned_for
                    and self.clock.monotonic() - self._planned_at < REPLAN_MAX_SECONDS):
                return False      # nothing happened: the current plan stands
            concurrency = self.ctx.concurrency.current()
            new = drain_plan.plan(self.ctx.scheduler, inventory, host, topology,
                                  reserve_fraction=self.ctx.conf.conductor.link_reserve_fraction,
                                  exclude=exclude,
                                  busy=tuple(self._busy(running, topology, concurrency)),
                                  concurrency=concurrency)
            unplaceable = {u['instance'] for u in new['unplaced']}
            if not running and todo and set(todo) <= unplaceable:
                # Nothing can move and nothing runs: stop rather than spin.
                self._save(status=DrainStatus.FAILED, plan={**plan, 'unplaced': new['unplaced'],
                                                  'remaining': on_host, 'moved': sorted(done)},
                           error=f'{len(todo)} guests cannot be placed')
                return True
            # What starts now: a plan's records begin one start lag after
            # the decision (planner/concurrency.py), so "now" is that lag,
            # as the plan prints it (to the millisecond).
            starts = [m for m in new['migrations']
                      if m['start_seconds'] <= round(concurrency.start_lag_seconds, 3) + 1e-6]
        else:
            moves = plan.get('moves') or []
            inventory, topology = self.ctx.snapshot()
            pending = []
            for mv in moves:
                inst = inventory.instances.get(mv['instance'])
                if mv['instance'] in done or inst is None or inst.host == mv['dest']:
                    continue
                if mv['instance'] in {m['instance'] for m in running}:
                    continue
                if tries.get(mv['instance'], 0) >= MAX_TRIES:
                    continue
                pending.append(mv)
            if not pending and not running:
                failed = [mv['instance'] for mv in moves if mv['instance'] not in done]
                self._save(status=DrainStatus.FAILED if failed else DrainStatus.COMPLETED,
                           plan={**plan, 'moved': sorted(done), 'remaining': failed},
                           error=f'{len(failed)} moves failed' if failed else None)
                return True
            starts = pending[:max(0, self.ctx.conf.conductor.max_concurrent_total - len(running))]
            new = plan
        started = []
        failed_start = False
        for m in starts:
            try:
                rec = self._start(m)
                started.append(rec['id'])
            except KvmplaceError as exc:
                failed_start = True
                LOG.warning('drain %s: cannot start %s: %s', self.drain_id[:8], m['instance'],
                            exc)
        if record['kind'] == 'drain':
            # A start changes the migrations (an event); a failed one is
            # retried at the next look.
            self._planned_for = None if (started or failed_start) else events
            self._planned_at = self.clock.monotonic()
            self._save(plan={**plan, 'current': new, 'moved': sorted(done),
                             'running': sorted({m['instance'] for m in running}),
                             'predicted_end_seconds': new['predicted_makespan_seconds'],
                             # The ETA on the conductor's clock: a client
                             # counts down to it between re-plans.
                             'predicted_end_at': round(self.clock.time()
                                                       + new['predicted_makespan_seconds'], 3),
                             'replanned_at': self.clock.time()})
        return False

    def _start(self, planned: dict) -> dict:
        policy = {}
        steps = planned.get('bandwidth_steps') or []
        if steps and planned.get('solo_mibps') and steps[0][1] < planned['solo_mibps'] - 0.5:
            # It starts on a share of a link that other migrations of this
            # drain use too: hold it to its planned share so they get theirs.
            policy['bandwidth_cap_mibps'] = round(steps[0][1], 2)
        return self.ctx.start_migration(
            planned['instance'], planned['dest'], policy, drain_id=self.drain_id,
            planned={k: planned[k] for k in ('start_seconds', 'predicted_seconds',
                                             'bandwidth_mibps', 'reserve_mibps')
                     if k in planned})


def start_drain(ctx, host: str, dry_run: bool = False) -> dict:
    """Plan (and unless dry_run, start) the drain of ``host``."""
    inventory, topology = ctx.snapshot()
    if host not in inventory.hosts:
        raise NotFound(f'unknown host "{host}"')
    plan = drain_plan.plan(ctx.scheduler, inventory, host, topology,
                           reserve_fraction=ctx.conf.conductor.link_reserve_fraction,
                           concurrency=ctx.concurrency.current())
    if dry_run:
        return plan
    record = ctx.db.create_drain('drain', host, {'initial': plan}, **_lease(ctx))
    try:
        ctx.host_maintenance(host, True, f'drain {record["id"]}')
    except KvmplaceError as exc:
        ctx.db.update_drain(record['id'], status=DrainStatus.FAILED,
                            error=f'maintenance not set: {exc}')
        raise
    ctx.start_executor(record['id'])
    return ctx.db.get_drain(record['id'])


def start_rebalance(ctx, threshold: float, dry_run: bool = False) -> dict:
    inventory, topology = ctx.snapshot()
    plan = rebalance_plan.plan(ctx.scheduler, inventory, threshold, topology,
                               reserve_fraction=ctx.conf.conductor.link_reserve_fraction)
    if dry_run:
        return plan
    if not plan['migrations']:
        raise KvmplaceError('nothing to do: memory use is within the threshold and no guest '
                            'sits on a slow-memory host')
    moves = [{'instance': m['instance'], 'dest': m['dest']} for m in plan['migrations']]
    record = ctx.db.create_drain('rebalance', None, {'initial': plan, 'moves': moves},
                                 **_lease(ctx))
    ctx.start_executor(record['id'])
    return ctx.db.get_drain(record['id'])


def _lease(ctx) -> dict:
    """The new record's lease: the conductor creating it drives it."""
    fields = getattr(ctx, 'lease_fields', None)
    return fields() if fields is not None else {}
