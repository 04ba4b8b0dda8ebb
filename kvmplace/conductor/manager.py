"""The conductor's RPC endpoint (topic ``kvmplace-conductor``).

Agents cast their host states, migration progress and results here; the
CLI and other services (a cloud scheduler) call select_destinations,
estimate, migrate, get_migration and friends through
:mod:`kvmplace.conductor.rpcapi`. Workflows run in a thread pool; at start
the conductor resumes every unfinished record (recovery).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent import futures
from typing import Optional

import oslo_messaging as messaging

from kvmplace import estimator
from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.conductor import admission as adm
from kvmplace.conductor import hoststate
from kvmplace.conductor import learning
from kvmplace.conductor import validate as v
from kvmplace.conductor import workflow as wf
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import InvalidInput, KvmplaceError, NotFound
from kvmplace.scheduler import manager as sched

LOG = logging.getLogger(__name__)


class ConductorManager:
    """RPC endpoint and the shared context of the migration workflows."""

    target = messaging.Target(version='1.1')

    def __init__(self, conf, db: db_api.Database, agents, notifier=None,
                 scheduler: Optional[sched.SchedulerManager] = None):
        self.conf = conf
        self.db = db
        self.agents = agents
        self.notifier = notifier
        self.scheduler = scheduler or sched.SchedulerManager(conf)
        self.links = hoststate.load_links(conf.conductor.topology_file)
        self._waiters: dict[str, wf.Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(conf.conductor.workers,
                                                thread_name_prefix='migration')
        self._running: dict[str, futures.Future] = {}
        self.admission = adm.Admission(
            conf.conductor.max_concurrent_per_source, conf.conductor.max_concurrent_per_dest,
            conf.conductor.max_concurrent_total, self._link_capacity)
        self._topology: Optional[topo.Topology] = None
        self._stopping = threading.Event()
        self._lost_casts, self._lost_warned = 0, -1e9   # see _cast_not_stored
        self._executors: dict = {}

    # -- shared context for workflows -----------------------------------------
    def snapshot(self, exclude_migration: Optional[str] = None
                 ) -> tuple[objects.Inventory, topo.Topology]:
        """Current inventory (with in-flight claims) and topology."""
        active = [m for m in self.db.unfinished_migrations() if m['id'] != exclude_migration]
        inventory = hoststate.build_inventory(self.db.list_hosts(), active,
                                              self.conf.scheduler.host_down_seconds,
                                              self.links)
        topology = topo.Topology.from_inventory(inventory)
        if self.conf.estimator.learn_path_throughput:
            inventory.path_rates = learning.trusted_rates(
                self.db.path_learning(self.conf.estimator.learned_max_age_seconds),
                topology, self.scheduler.params,
                self.conf.estimator.learning_prior_migrations)
        self._topology = topology
        return inventory, topology

    def _link_capacity(self, link: tuple) -> float:
        topology = self._topology or self.snapshot()[1]
        return (objects.mbps_to_mibps(topology.capacity_mbps(link))
                * self.conf.estimator.link_efficiency
                * (1.0 - self.conf.conductor.link_reserve_fraction))

    def learn(self, rec: dict) -> Optional[dict]:
        """Fold a completed migration into its path's learned bandwidth.

        Called once the destination has verified the guest. The observed
        bandwidth is the one at which the model reproduces the measured
        time (estimator.fit_bandwidth), from the inputs the estimate was
        made with. Returns the path's updated row (with ``observed_mibps``),
        or None when the migration teaches nothing about the path: learning
        is off, it did not complete in pre-copy, it was too small to
        measure or moved less than half its memory (mostly zero pages), a
        bandwidth cap (a drain's planned share) set its pace rather than the
        path, or it ran while other migrations used its source or
        destination.
        """
        if not self.conf.estimator.learn_path_throughput:
            return None
        result = rec.get('result') or {}
        if result.get('status') != 'completed' or result.get('postcopy') or not rec.get('dest'):
            return None
        inputs = (rec.get('estimate') or {}).get('inputs') or {}
        memory = inputs.get('memory_mib') or result.get('memory_mib')
        if not memory:
            return None
        moved = float(result.get('data_mib') or 0.0)
        if moved < 0.5 * (float(memory) + float(inputs.get('disk_mib') or 0)):
            # Most of the guest's memory went as zero-page markers (a guest
            # that never used its RAM), or the agent did not say what moved:
            # the time says little about the path.
            return None
        policy = objects.Policy.from_dict(rec.get('policy') or {})
        params = self.scheduler.params.with_policy(policy)
        mibps = estimator.fit_bandwidth(float(memory), float(inputs.get('dirty_rate_mibps') or 0),
                                        result.get('elapsed_seconds'), params,
                                        float(inputs.get('disk_mib') or 0))
        if mibps is None:
            return None
        cap = policy.bandwidth_cap_mibps
        if cap and mibps >= 0.85 * float(cap):
            return None
        if self.db.overlapping_migrations(rec['id']):
            # It shared its source or destination (CPUs, memory bandwidth,
            # NIC) with other migrations: its pace is the crowd's, not the
            # path's. Seen on the lab: three parallel drain migrations
            # taught their paths half their real rate.
            return None
        try:
            row = self.db.record_path_rate(rec['source'], rec['dest'], mibps,
                                           self.conf.estimator.learning_weight, rec['id'],
                                           self.conf.estimator.learned_max_age_seconds)
        except db_api.DatabaseError as exc:
            LOG.warning('migration %s: path throughput not recorded: %s', rec['id'][:8], exc)
            return None
        row['observed_mibps'] = round(mibps, 2)
        # What the next estimate on this path will use (conductor.learning).
        topology = self._topology or self.snapshot()[1]
        path = (rec['source'], rec['dest'])
        row['used_mibps'] = round(learning.trusted_rates(
            {path: (float(row['mibps']), int(row['samples'] or 0))}, topology,
            self.scheduler.params, self.conf.estimator.learning_prior_migrations)[path], 2)
        return row

    def guest_state(self, host: str, instance: str) -> Optional[dict]:
        try:
            state = self.db.get_host(host)['state']
        except NotFound:
            return None
        for guest in state.get('instances') or []:
            if guest.get('name') == instance:
                return guest
        return None

    def locate(self, instance: str, hosts: list[str],
               answered: Optional[set] = None) -> dict[str, str]:
        """Ask the agents (live, not the database) where the guest is.

        ``answered`` (if given) collects the hosts that did answer: a host
        missing from the result may not have the guest, or may not have
        been asked at all (agent down, broker down), and a caller deciding
        a record's final state must tell the two apart.
        """
        where: dict[str, str] = {}
        for host in hosts:
            try:
                state = v.host_state(self.agents.get_host_state({}, host))
            except Exception as exc:  # noqa: BLE001 - an unreachable host is reported
                LOG.warning('locate %s: %s does not answer: %s', instance, host, exc)
                continue
            if answered is not None:
                answered.add(host)
            try:
                self.db.report_host(host, state, time.time())
            except db_api.DatabaseError as exc:
                LOG.warning('locate %s: state of %s not stored: %s', instance, host, exc)
            for guest in state.get('instances') or []:
                if guest.get('name') == instance:
                    where[host] = guest.get('state', 'running')
        return where

    def waiter(self, migration_id: str) -> wf.Waiter:
        with self._waiters_lock:
            return self._waiters.setdefault(migration_id, wf.Waiter())

    def forget_waiter(self, migration_id: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(migration_id, None)

    def notify(self, event: str, record: dict, payload: Optional[dict] = None) -> None:
        if self.notifier is None:
            return
        body = {'migration_id': record['id'], 'instance': record['instance'],
                'source': record['source'], 'dest': record.get('dest'),
                'status': record['status']}
        body.update(payload or {})
        try:
            if event == 'error':
                self.notifier.error({}, 'kvmplace.migration.error', body)
            else:
                self.notifier.info({}, f'kvmplace.migration.{event}', body)
        except Exception as exc:  # noqa: BLE001 - notifications never break a migration
            LOG.warning('notification %s failed: %s', event, exc)

    def notify_final(self, record: dict) -> None:
        if record['status'] == 'completed':
            self.notify('end', record, {'result': record.get('result')})
        else:
            self.notify('error', record, {'error': record.get('error')})

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
        delay = 1.0
        while True:
            try:
                return wf.MigrationWorkflow(self, migration_id).run()
            except wf.Interrupted:
                LOG.info('migration %s: conductor stopping; its record stays as it is and '
                         'the next start resumes it', migration_id[:8])
                return None
            except db_api.DatabaseError as exc:
                LOG.warning('migration %s: %s; resuming it when the database works again',
                            migration_id[:8], exc)
            if self._stopping.wait(delay):
                return None
            delay = min(2 * delay, 30.0)

    def recover(self) -> list[str]:
        """Resume every unfinished migration (called once at start)."""
        resumed = []
        for rec in self.db.unfinished_migrations():
            LOG.info('recovering migration %s of %s (was %s)', rec['id'][:8], rec['instance'],
                     rec['status'])
            self.start_workflow(rec['id'])
            resumed.append(rec['id'])
        for drain in self.db.list_drains('running'):
            LOG.info('resuming %s %s', drain['kind'], drain['id'][:8])
            self.start_executor(drain['id'])
            resumed.append(drain['id'])
        return resumed

    def stopping(self) -> bool:
        """True once stop() was called: workflows stop waiting (wf.Interrupted)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
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
        try:
            self.db.report_host(state['name'], state, time.time())
        except db_api.DatabaseError as exc:
            self._cast_not_stored('host report', exc)

    def _cast_not_stored(self, what: str, exc: Exception) -> None:
        """A cast the database would not take (full or read-only disk):
        one warning line every 30 s with a count, not an ERROR traceback
        per report (three hosts reporting every 2 s flooded the log)."""
        now = time.monotonic()
        self._lost_casts += 1
        if now - self._lost_warned >= 30.0:
            LOG.warning('%s not stored (%d casts lost since the last warning): %s',
                        what, self._lost_casts, exc)
            self._lost_warned, self._lost_casts = now, 0

    def _agent_cast(self, what: str, migration_id, check, payload) -> Optional[tuple]:
        """(record, payload) of a valid cast about an unfinished migration,
        else None. Only then is a waiter touched: a cast for an unknown or
        ended migration must not leave a waiter behind."""
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
        if rec['status'] in db_api.FINAL_STATUSES:
            LOG.debug('%s for ended migration %s ignored', what, migration_id[:8])
            return None
        return rec, payload

    def migration_progress(self, ctxt, migration_id: str, progress: dict) -> None:
        found = self._agent_cast('migration_progress', migration_id, v.progress, progress)
        if found is None:
            return
        rec, progress = found
        migration_id = rec['id']
        waiter = self.waiter(migration_id)
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
        self.notify('progress', rec, {'progress': progress})

    def migration_finished(self, ctxt, migration_id: str, result: dict) -> None:
        found = self._agent_cast('migration_finished', migration_id, v.result, result)
        if found is not None:
            self.waiter(found[0]['id']).finish(found[1])

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
                        drain_id: Optional[str] = None) -> dict:
        policy_obj = v.policy(policy)
        inventory, _ = self.snapshot()
        inst = inventory.instances.get(instance)
        if inst is None:
            raise NotFound(f'unknown instance "{instance}" (not on any reporting host)')
        if dest is not None:
            if dest not in inventory.hosts:
                raise NotFound(f'unknown host "{dest}"')
            if dest == inst.host:
                raise KvmplaceError(f'instance "{instance}" already runs on "{dest}"')
        rec = self.db.create_migration(instance, inst.host, dest, policy_obj.to_dict(),
                                       drain_id=drain_id, conductor=self.conf.conductor.host,
                                       instance_uuid=inst.uuid)
        self.start_workflow(rec['id'])
        return rec

    def get_migration(self, ctxt, migration_id: str) -> dict:
        return self.db.get_migration(v.ident('migration_id', migration_id))

    def list_migrations(self, ctxt, status: Optional[str] = None,
                        instance: Optional[str] = None, limit: int = 50) -> list[dict]:
        return self.db.list_migrations(
            status=v.status('status', status) if status else None,
            instance=v.name('instance', instance) if instance else None,
            limit=v.integer('limit', limit, 1, 10000))

    def abort_migration(self, ctxt, migration_id: str) -> dict:
        rec = self.db.get_migration(v.ident('migration_id', migration_id), steps=False)
        if rec['status'] in db_api.FINAL_STATUSES:
            raise KvmplaceError(f'migration {rec["id"]} already ended ({rec["status"]})')
        self.db.update_migration(rec['id'], abort_requested=True)
        self.db.add_step(rec['id'], 'abort_requested', None, finished=True)
        return self.db.get_migration(rec['id'], steps=False)

    # -- drains and rebalancing ----------------------------------------------
    def start_executor(self, drain_id: str) -> None:
        from kvmplace.conductor import drain as drain_exec
        executor = drain_exec.DrainExecutor(self, drain_id)
        self._executors[drain_id] = executor
        threading.Thread(target=executor.run, name=f'drain-{drain_id[:8]}',
                         daemon=True).start()

    def drain(self, ctxt, host: str, dry_run: bool = False) -> dict:
        from kvmplace.conductor import drain as drain_exec
        host = v.name('host', host)
        dry_run = v.boolean('dry_run', dry_run)
        row = self.db.get_host(host)
        if not dry_run and row.get('maintenance'):
            running = [d for d in self.db.list_drains('running') if d['host'] == host]
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
        record['migrations'] = self.db.list_migrations(drain_id=record['id'], limit=100000)
        return record

    def list_drains(self, ctxt, status: Optional[str] = None) -> list[dict]:
        return self.db.list_drains(v.status('status', status, v.DRAIN_STATUSES)
                                   if status is not None else None)

    def list_hosts(self, ctxt) -> list[dict]:
        now = time.time()
        out = []
        for row in self.db.list_hosts():
            out.append(_host_summary(row, now, self.conf.scheduler.host_down_seconds))
        return out

    def get_host(self, ctxt, host: str) -> dict:
        row = self.db.get_host(v.name('host', host))
        summary = _host_summary(row, time.time(), self.conf.scheduler.host_down_seconds)
        summary['state'] = row['state']
        return summary

    def set_maintenance(self, ctxt, host: str, on: bool, reason: Optional[str] = None) -> dict:
        self.db.set_maintenance(v.name('host', host), v.boolean('on', on),
                                v.text('reason', reason))
        return self.get_host(ctxt, host)

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
    age = None if reported is None else now - reported
    guests = state.get('instances') or []
    health = [n.get('bandwidth_mibps') / n['baseline_mibps'] for n in state.get('numa') or []
              if n.get('bandwidth_mibps') and n.get('baseline_mibps')]
    return {'name': row['name'],
            'up': age is not None and age <= down_after,
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
