"""The conductor: the RPC methods' implementation and the shared parts.

Agents cast their host states, migration progress and results here; the
CLI and other services (a cloud scheduler) call select_destinations,
estimate, migrate, get_migration and friends through
:mod:`kvmplace.conductor.rpcapi`. The RPC server does not dispatch to this
object but to :class:`kvmplace.conductor.endpoint.ConductorEndpoint`,
which lists only the RPC methods: the internals here (start_migration,
recover, the collaborators) are not reachable from the bus. Workflows run
in a thread pool; at start the conductor resumes every unfinished record
(recovery).
"""
from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from concurrent import futures
from typing import Optional

from kvmplace import msgauth
from kvmplace import objects
from kvmplace import resources
from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor import hoststate
from kvmplace.conductor import learning
from kvmplace.conductor import leases as leases_mod
from kvmplace.conductor import locator as locator_mod
from kvmplace.conductor import notifications
from kvmplace.conductor import retry
from kvmplace.conductor import snapshots as snapshots_mod
from kvmplace.conductor import validate as v
from kvmplace.conductor import workflow as wf
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import facts as facts_db
from kvmplace.exception import InvalidInput, KvmplaceError, NotFound
from kvmplace.scheduler import manager as sched
from kvmplace.status import FINAL_MIGRATION_STATUSES, DrainStatus

LOG = logging.getLogger(__name__)


class ConductorManager:
    """The RPC methods' implementation; owns the workflows' collaborators."""

    def __init__(self, conf, db: db_api.Database, agents, notifier=None,
                 scheduler: Optional[sched.SchedulerManager] = None,
                 clock: clock_mod.Clock = clock_mod.REAL, cloud=None):
        self.conf = conf
        #: The Nova driver ([conductor] driver = nova; then also ``agents``),
        #: or None: maintenance, host reports and Nova's per-host limit go
        #: through it (kvmplace.conductor.drivers.nova).
        self.cloud = cloud
        self.db = db
        self.clock = clock
        scheduler = scheduler or sched.SchedulerManager(conf)
        self.scheduler = scheduler
        self.snapshots = snapshots_mod.Snapshots(
            conf, db, scheduler, hoststate.load_links(conf.conductor.topology_file))
        self._stopping = threading.Event()
        #: this conductor's name in the records it owns (kvmplace.conductor.leases)
        self.owner = conf.conductor.host or socket.gethostname()
        self.leases = leases_mod.Leases(db, self.owner, conf.conductor.takeover_seconds, clock)
        self.parts = wf.Collaborators(
            conf=conf, db=db, agents=agents, scheduler=scheduler,
            admission=leases_mod.SharedAdmission(
                conf.conductor.max_concurrent_per_source, conf.conductor.max_concurrent_per_dest,
                conf.conductor.max_concurrent_total, self.snapshots.link_capacity_mibps,
                db=db, owner=self.owner),
            snapshots=self.snapshots,
            locator=locator_mod.Locator(db, agents, clock),
            learner=learning.Learner(conf, db, scheduler, self.snapshots.topology),
            notifications=notifications.Notifications(notifier),
            waiters=wf.Waiters(clock), stopping=self._stopping, clock=clock,
            leases=self.leases)
        self.concurrency = learning.ConcurrencyLearner(conf, db, lambda: scheduler.params)
        self._pool = futures.ThreadPoolExecutor(conf.conductor.workers,
                                                thread_name_prefix='migration')
        self._running: dict[str, futures.Future] = {}
        self._lost_casts, self._lost_warned = 0, -1e9   # see _cast_not_stored
        self._executors: dict = {}
        self._adopt_lock = threading.Lock()
        self._looked = False            # recover() ran once (leases.Leases.adoptable)
        if cloud is not None:
            self.parts.admission.max_per_source_always = \
                conf.nova.max_concurrent_live_migrations
            cloud.attach(self)

    @property
    def agents(self):
        return self.parts.agents

    def snapshot(self, exclude_migration: Optional[str] = None):
        """Current inventory (with in-flight claims) and topology."""
        return self.snapshots.snapshot(exclude_migration)

    def start_workflow(self, migration_id: str) -> futures.Future:
        future = self._pool.submit(self._drive, migration_id)
        self._running[migration_id] = future
        return future

    def _drive(self, migration_id: str) -> Optional[dict]:
        """Run one migration's workflow to a final record.

        When the database fails under it (full or read-only disk), the
        workflow cannot even record its failure, and the migration would
        sit unfinished until the next conductor start. So it is resumed
        here, exactly as a restarted conductor resumes it (from the last
        status that was committed), once the database takes writes again;
        the guest meanwhile does what it does, and the resumed workflow
        asks the agents where it ended.
        """
        def resuming(exc, pause_s: float) -> None:
            LOG.warning('migration %s: %s; resuming it when the database works again '
                        '(next try in %.0f s)', migration_id[:8], exc, pause_s)

        try:
            return retry.call(lambda: wf.MigrationWorkflow(self.parts, migration_id).run(),
                              clock=self.clock, retry_on=(db_api.DatabaseError,),
                              max_pause_s=30.0, stop=self._stopping, on_retry=resuming)
        except wf.Interrupted:
            LOG.info('migration %s: conductor stopping; its record stays as it is and '
                     'the next start resumes it', migration_id[:8])
        except db_api.DatabaseError:
            LOG.info('migration %s: conductor stopping while the database fails; the next '
                     'start resumes it', migration_id[:8])
        return None

    def recover(self) -> list[str]:
        """Resume the unfinished migrations and drains nobody drives: at
        start, and then periodically (start_leases). Only records whose
        lease expired (their conductor died), that have no owner, or that
        name this conductor with nothing here driving them are claimed
        (kvmplace.conductor.leases); another live conductor's records are
        left alone. A claimed record resumes through the workflow's own
        recovery (workflow.RESUME)."""
        resumed = []
        with self._adopt_lock:
            running = self._driven()
            own, self._looked = not self._looked, True
            for rec in self.leases.adoptable('migrations', running['migrations'], own):
                if not self.leases.claim('migrations', rec['id']):
                    continue            # another conductor was faster
                LOG.info('recovering migration %s of %s (was %s, owner %s)', rec['id'][:8],
                         rec['instance'], rec['status'], rec.get('lease_owner') or 'none')
                self.start_workflow(rec['id'])
                resumed.append(rec['id'])
            for drain in self.leases.adoptable('drains', running['drains'], own):
                if not self.leases.claim('drains', drain['id']):
                    continue
                LOG.info('resuming %s %s (owner was %s)', drain['kind'], drain['id'][:8],
                         drain.get('lease_owner') or 'none')
                self.start_executor(drain['id'])
                resumed.append(drain['id'])
        return resumed

    def _driven(self) -> dict[str, set]:
        """The records a thread of this process drives now."""
        return {'migrations': {mid for mid, fut in list(self._running.items())
                               if not fut.done()},
                'drains': {did for did, ex in list(self._executors.items())
                           if ex.thread is not None and ex.thread.is_alive()}}

    def _lost(self, table: str, ids: set) -> None:
        """Another conductor adopted these: stop following them here (a
        workflow finds out at its next write or look: LeaseLost)."""
        LOG.warning('%s %s adopted by another conductor', table,
                    ', '.join(i[:8] for i in sorted(ids)))
        if table == 'drains':
            for did in ids:
                executor = self._executors.get(did)
                if executor is not None:
                    executor.stop.set()

    def start_leases(self) -> leases_mod.Keeper:
        """Renew this conductor's leases and adopt orphaned records, in a
        thread, until stop()."""
        keeper = leases_mod.Keeper(self.leases, self._driven, self.recover, self._lost,
                                   self._stopping)
        keeper.start()
        return keeper

    def lease_fields(self) -> dict:
        """The lease a record this conductor creates starts with."""
        return {'lease_owner': self.owner, 'lease_expires': self.leases.expiry()}

    def stopping(self) -> bool:
        """True once stop() was called: workflows stop waiting (wf.Interrupted)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Admit nothing new and wake every waiting workflow: each stops
        where it stands (its record stays for the next start's recovery)."""
        self._stopping.set()
        if self.cloud is not None:
            self.cloud.stop()
        self.parts.admission.close()
        self.parts.waiters.interrupt()
        for executor in self._executors.values():
            executor.stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- RPC: from agents -----------------------------------------------------
    # The three agent methods are casts: nobody receives what they raise.
    # A malformed one is dropped with one warning line (not an ERROR with a
    # traceback per message), and never stored: the scheduler, the drain
    # and the CLI read what is stored.
    def report_state(self, ctxt, host_state: dict) -> None:
        try:
            state = v.host_state(host_state)
        except InvalidInput as exc:
            LOG.warning('host report dropped: %s', exc)
            return
        if self.cloud is not None:
            merged = self.cloud.merge_report(state)
            if merged is None:
                return
            state = merged
        try:
            self.db.report_host(state['name'], state, self.clock.time())
        except db_api.DatabaseError as exc:
            self._cast_not_stored('host report', exc)

    def _cast_not_stored(self, what: str, exc: Exception) -> None:
        """A cast the database would not take (full or read-only disk):
        one warning line every 30 s with a count, not an ERROR traceback
        per report (three hosts reporting every 2 s flooded the log)."""
        now = self.clock.monotonic()
        self._lost_casts += 1
        if now - self._lost_warned >= 30.0:
            LOG.warning('%s not stored (%d casts lost since the last warning): %s',
                        what, self._lost_casts, exc)
            self._lost_warned, self._lost_casts = now, 0

    def _agent_cast(self, ctxt, what: str, migration_id, check, payload) -> Optional[tuple]:
        """(record, payload) of a valid cast about an unfinished migration,
        else None. Only then is a waiter touched: a cast for an unknown or
        ended migration must not leave a waiter behind. A cast signed by a
        compute host (kvmplace.msgauth) counts only for a migration leaving
        that host: one host may not finish another's migrations."""
        try:
            migration_id = v.uuid('migration_id', migration_id)
            payload = check(payload)
            rec = self.db.get_migration(migration_id, steps=False)
        except db_api.DatabaseError as exc:
            self._cast_not_stored(what, exc)
            return None
        except (InvalidInput, NotFound) as exc:
            LOG.warning('%s dropped: %s', what, exc)
            return None
        if rec['status'] in FINAL_MIGRATION_STATUSES:
            LOG.debug('%s for ended migration %s ignored', what, migration_id[:8])
            return None
        signer = msgauth.signer_of(ctxt)
        if signer and signer != f"{msgauth.HOST_PREFIX}{rec['source']}":
            LOG.warning('%s for migration %s dropped: signed by %s, not by its source %s',
                        what, migration_id[:8], signer, rec['source'])
            return None
        return rec, payload

    def migration_progress(self, ctxt, migration_id: str, progress: dict) -> None:
        found = self._agent_cast(ctxt, 'migration_progress', migration_id, v.progress, progress)
        if found is None:
            return
        rec, progress = found
        migration_id = rec['id']
        if not self.leases.owns(rec):
            # Another conductor drives it: store the progress, which its
            # owner reads (workflow._stored_word); no waiter here.
            data = dict(progress, step_id=(rec.get('progress') or {}).get('step_id'))
            try:
                self.db.update_migration(migration_id, progress=data)
            except db_api.DatabaseError as exc:
                self._cast_not_stored('migration progress', exc)
            return
        waiter = self.parts.waiters.get(migration_id)
        waiter.heard()
        step_id = (rec.get('progress') or {}).get('step_id')
        data = dict(progress)
        data['step_id'] = step_id
        try:
            self.db.update_migration(migration_id, progress=data)
            phase = data.get('phase')
            if phase and phase != waiter.phase:
                self.db.add_step(migration_id, 'progress', rec['source'], message=phase,
                                 data=progress, finished=True)
                waiter.phase = phase
        except db_api.DatabaseError as exc:
            self._cast_not_stored('migration progress', exc)
        self.parts.notifications.notify('progress', rec, {'progress': progress})

    def migration_finished(self, ctxt, migration_id: str, result: dict) -> None:
        found = self._agent_cast(ctxt, 'migration_finished', migration_id, v.result, result)
        if found is None:
            return
        if not self.leases.owns(found[0]):
            # Not ours: keep it in the record for the owner to read.
            try:
                leases_mod.store_result(self.db, found[0]['id'], found[1])
            except db_api.DatabaseError as exc:
                self._cast_not_stored('migration result', exc)
            return
        self.parts.waiters.get(found[0]['id']).finish(found[1])

    # -- RPC: for clients -----------------------------------------------------
    def select_destinations(self, ctxt, instance: str, policy: Optional[dict] = None,
                            force_hosts: Optional[list] = None,
                            ignore_hosts: Optional[list] = None) -> dict:
        request = objects.MigrationRequest(
            instance=v.name('instance', instance), policy=v.policy(policy),
            force_hosts=v.names('force_hosts', force_hosts),
            ignore_hosts=v.names('ignore_hosts', ignore_hosts))
        inventory, topology = self.snapshot()
        return objects.plain(self.scheduler.select(inventory, request, topology))

    def estimate(self, ctxt, instance: str, dest: str, policy: Optional[dict] = None) -> dict:
        inventory, topology = self.snapshot()
        return objects.plain(self.scheduler.estimate(
            inventory, v.name('instance', instance), v.name('dest', dest), v.policy(policy),
            topology).to_dict())

    def migrate(self, ctxt, instance: str, dest: Optional[str] = None,
                policy: Optional[dict] = None) -> dict:
        """Queue a migration and start its workflow; returns the record."""
        return self.start_migration(v.name('instance', instance),
                                    v.name('dest', dest) if dest is not None else None,
                                    policy)

    def start_migration(self, instance: str, dest: Optional[str], policy: Optional[dict],
                        drain_id: Optional[str] = None, planned: Optional[dict] = None) -> dict:
        policy_dict = v.policy_dict(policy)
        inventory, _ = self.snapshot()
        inst = inventory.instances.get(instance)
        if inst is None:
            raise NotFound(f'unknown instance "{instance}" (not on any reporting host)')
        if dest is not None:
            if dest not in inventory.hosts:
                raise NotFound(f'unknown host "{dest}"')
            if dest == inst.host:
                raise KvmplaceError(f'instance "{instance}" already runs on "{dest}"')
        rec = self.db.create_migration(instance, inst.host, dest, policy_dict,
                                       drain_id=drain_id, conductor=self.owner,
                                       instance_uuid=inst.uuid,
                                       lease_expires=self.leases.expiry(), planned=planned)
        self.start_workflow(rec['id'])
        return rec

    def get_migration(self, ctxt, migration_id: str) -> dict:
        """The record with its steps, and ``lease``: which conductor owns
        it and in how many seconds its lease expires."""
        rec = self.db.get_migration(v.ident('migration_id', migration_id))
        rec['lease'] = leases_mod.lease_view(rec, self.clock.time())
        return rec

    def list_migrations(self, ctxt, status: Optional[str] = None,
                        instance: Optional[str] = None, limit: int = 50) -> list[dict]:
        return self.db.list_migrations(
            status=v.status('status', status) if status else None,
            instance=v.name('instance', instance) if instance else None,
            limit=v.integer('limit', limit, 1, 10000))

    def abort_migration(self, ctxt, migration_id: str) -> dict:
        rec = self.db.get_migration(v.ident('migration_id', migration_id), steps=False)
        if rec['status'] in FINAL_MIGRATION_STATUSES:
            raise KvmplaceError(f'migration {rec["id"]} already ended ({rec["status"]})')
        self.db.update_migration(rec['id'], abort_requested=True)
        self.db.add_step(rec['id'], 'abort_requested', None, finished=True)
        return self.db.get_migration(rec['id'], steps=False)

    # -- drains and rebalancing ----------------------------------------------
    def start_executor(self, drain_id: str) -> None:
        from kvmplace.conductor import drain as drain_exec
        executor = drain_exec.DrainExecutor(self, drain_id, clock=self.clock)
        self._executors[drain_id] = executor
        executor.thread = threading.Thread(target=executor.run, name=f'drain-{drain_id[:8]}',
                                           daemon=True)
        executor.thread.start()

    def drain(self, ctxt, host: str, dry_run: bool = False) -> dict:
        from kvmplace.conductor import drain as drain_exec
        host = v.name('host', host)
        dry_run = v.boolean('dry_run', dry_run)
        row = self.db.get_host(host)
        if not dry_run and row.get('maintenance'):
            running = [d for d in self.db.list_drains(DrainStatus.RUNNING)
                       if d['host'] == host]
            if running:
                raise KvmplaceError(f'host "{host}" is already draining (drain '
                                    f'{running[0]["id"]})')
        return drain_exec.start_drain(self, host, dry_run=dry_run)

    def rebalance(self, ctxt, threshold: float = 0.1, dry_run: bool = False) -> dict:
        from kvmplace.conductor import drain as drain_exec
        threshold = v.number('threshold', threshold, 0.0, 0.999)
        return drain_exec.start_rebalance(self, threshold,
                                          dry_run=v.boolean('dry_run', dry_run))

    def get_drain(self, ctxt, drain_id: str) -> dict:
        record = self.db.get_drain(v.uuid('drain_id', drain_id))
        record['lease'] = leases_mod.lease_view(record, self.clock.time())
        record['migrations'] = self.db.list_migrations(drain_id=record['id'], limit=100000)
        return record

    def list_drains(self, ctxt, status: Optional[str] = None) -> list[dict]:
        return self.db.list_drains(v.drain_status('status', status)
                                   if status is not None else None)

    def list_hosts(self, ctxt) -> list[dict]:
        """Reporting hosts and hosts known from ``hosts import`` (for
        Nova's hosts without an agent), each with where its facts come from."""
        now = self.clock.time()
        out = []
        for row in self.db.list_hosts():
            out.append(_host_summary(row, now, self.conf.scheduler.host_down_seconds))
        return facts_db.with_origins(self.db, out, now)

    def get_host(self, ctxt, host: str) -> dict:
        row = self.db.get_host(v.name('host', host))
        summary = _host_summary(row, self.clock.time(), self.conf.scheduler.host_down_seconds)
        summary['state'] = row['state']
        return summary

    def set_maintenance(self, ctxt, host: str, on: bool, reason: Optional[str] = None) -> dict:
        self.host_maintenance(v.name('host', host), v.boolean('on', on),
                              v.text('reason', reason))
        return self.get_host(ctxt, host)

    def host_maintenance(self, host: str, on: bool, reason: Optional[str]) -> None:
        """Maintenance on or off; in a Nova cloud first in Nova (the
        compute service disabled with kvmplace's reason), so that a refusal
        or an unreachable API changes nothing here."""
        if self.cloud is not None:
            self.cloud.set_maintenance(host, on, reason)
        self.db.set_maintenance(host, on, reason)

    # -- learned path throughput (API 1.1) ------------------------------------
    def list_path_rates(self, ctxt) -> list[dict]:
        """Every learned path with its age and whether predictions use it
        (``in_use``: learning on and younger than learned_max_age_seconds)."""
        est = self.conf.estimator
        max_age = est.learned_max_age_seconds
        now = dt.datetime.now(dt.UTC)
        topology = self.snapshot()[1]
        out = []
        for row in self.db.list_path_rates():
            updated = _parse_iso(row.get('updated_at'))
            age = None if updated is None else max(0.0, (now - updated).total_seconds())
            out.append({'source': row['source'], 'dest': row['dest'],
                        'mibps': round(float(row['mibps']), 2),
                        'last_mibps': round(float(row['last_mibps']), 2),
                        'samples': row['samples'],
                        'last_migration_id': row.get('last_migration_id'),
                        'updated_at': row.get('updated_at'),
                        'age_seconds': None if age is None else round(age, 1),
                        'in_use': bool(est.learn_path_throughput) and (
                            not max_age or (age is not None and age <= max_age))})
            # What predictions use: the learned figure weighed against the
            # nominal one by the migrations behind it (conductor.learning).
            trusted = learning.trusted_rates(
                {(row['source'], row['dest']): (float(row['mibps']), row['samples'] or 0)},
                topology, self.scheduler.params, est.learning_prior_migrations)
            out[-1]['used_mibps'] = round(next(iter(trusted.values())), 2) \
                if out[-1]['in_use'] else None
        return out

    def forget_path_rates(self, ctxt, source: Optional[str] = None,
                          dest: Optional[str] = None) -> dict:
        """Forget learned paths (after a link change): those from ``source``
        and/or to ``dest``; both None forgets every path. Returns
        ``{"forgotten": [{"source", "dest", "mibps"}...]}``."""
        source = None if source is None else v.name('source', source)
        dest = None if dest is None else v.name('dest', dest)
        gone = self.db.forget_path_rates(source, dest)
        if gone:
            LOG.info('forgot learned throughput of %s',
                     ', '.join(f"{r['source']} -> {r['dest']}" for r in gone))
        return {'forgotten': [{'source': r['source'], 'dest': r['dest'],
                               'mibps': round(float(r['mibps']), 2)} for r in gone]}


def _parse_iso(text: Optional[str]) -> Optional[dt.datetime]:
    """A record's ISO time (models.to_dict: UTC with a 'Z') as an aware datetime."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.rstrip('Z')).replace(tzinfo=dt.UTC)


def _host_summary(row: dict, now: float, down_after: float) -> dict:
    state = row.get('state') or {}
    reported = row.get('reported_at')
    age = resources.report_age_seconds(reported, now)
    guests = state.get('instances') or []
    health = [resources.node_health(n.get('bandwidth_mibps'), n['baseline_mibps'])
              for n in state.get('numa') or []
              if n.get('bandwidth_mibps') and n.get('baseline_mibps')]
    return {'name': row['name'],
            'up': resources.host_is_up(reported, now, down_after),
            'seconds_since_report': None if age is None else round(age, 1),
            'maintenance': bool(row.get('maintenance')),
            'maintenance_reason': row.get('maintenance_reason'),
            'link_mbps': state.get('link_mbps'),
            'memory_mib': state.get('memory_mib'),
            'memory_used_mib': state.get('memory_used_mib'),
            'vcpus': state.get('vcpus'), 'vcpus_used': state.get('vcpus_used'),
            'numa_health': [round(h, 3) for h in health],
            'instances': sorted(g.get('name') for g in guests),
            'libvirt_uri': state.get('libvirt_uri')}
