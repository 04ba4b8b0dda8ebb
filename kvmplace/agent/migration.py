"""Drive one live migration with libvirt and watch it to the end.

``migrateToURI3`` blocks until the migration is over, so it runs in its own
thread while a monitor thread reads the job statistics at least every
second (what an operator's ``watch -n 1 virsh domjobinfo`` shows), turns
them into progress (phase, remaining, MiB/s, dirty rate, iteration, ETA) for
the conductor, and
enforces the completion and progress timeouts. The RPC call that started the
migration has long returned by then; the outcome reaches the conductor as a
``migration_finished`` cast and stays readable through ``get_job``.
"""
from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional

import libvirt

from kvmplace import estimator
from kvmplace import objects
from kvmplace.agent import storage
from kvmplace.status import JobOutcome

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024
ET.register_namespace('qemu', 'http://libvirt.org/schemas/domain/qemu/1.0')

_JOB_NONE = libvirt.VIR_DOMAIN_JOB_NONE


def dest_xml(xml: str, dest_cpus: Optional[str]) -> str:
    """The guest's migratable XML with ``<emulatorpin cpuset=dest_cpus/>``,
    so that the destination QEMU starts with its main thread already on the
    healthy node the destination agent chose."""
    root = ET.fromstring(xml)
    if dest_cpus:
        cputune = root.find('cputune')
        if cputune is None:
            cputune = ET.SubElement(root, 'cputune')
        for old in cputune.findall('emulatorpin'):
            cputune.remove(old)
        pin = ET.Element('emulatorpin', {'cpuset': dest_cpus})
        cputune.insert(0, pin)
    return ET.tostring(root, encoding='unicode')


def phase_of(stats: dict, paused_for_switchover: bool, postcopy: bool) -> str:
    """QEMU's pre-copy phases: setup, iterate N, complete (plus disk copy,
    which only non-shared storage shows, and post-copy)."""
    if stats.get('type', _JOB_NONE) == _JOB_NONE:
        return 'setup'
    if postcopy:
        return 'post-copy'
    if paused_for_switchover:
        return 'complete'
    iteration = int(stats.get('memory_iteration') or 0)
    if int(stats.get('disk_remaining') or 0) > 0 and iteration == 0:
        return 'disk'
    if iteration == 0 and not stats.get('data_processed'):
        return 'setup'
    return f'iterate {max(1, iteration)}'


@dataclass
class Job:
    """One migration, current or finished, as the agent remembers it."""
    migration_id: str
    instance: str
    uuid: str
    dest_host: str
    data_mib: float
    guest: dict
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    progress: dict = field(default_factory=dict)
    result: Optional[dict] = None
    postcopy_allowed: bool = False
    postcopy_started: bool = False
    stop_status: Optional[str] = None
    stop_reason: Optional[str] = None
    done: threading.Event = field(default_factory=threading.Event)
    #: Held while a stop (abort) is asked for and while the outcome is
    #: read: the migration thread sees the stop's status only once libvirt
    #: has accepted the abort.
    stop_lock: threading.Lock = field(default_factory=threading.Lock)
    last_stats: dict = field(default_factory=dict)
    peak: dict = field(default_factory=dict)
    """Largest data/disk figures seen while polling: the destination's
    completed statistics do not always carry the disk copy."""

    @property
    def active(self) -> bool:
        return not self.done.is_set()

    def stop(self, dom, status: str, reason: str) -> Optional[str]:
        """Abort the job; ``stop_status`` is set only once libvirt has
        accepted the abort. A failed abort used to leave it set, and a set
        ``stop_status`` switches both timeouts off: the migration then ran
        unwatched. Returns libvirt's error when the abort failed."""
        with self.stop_lock:
            try:
                dom.abortJob()
            except libvirt.libvirtError as exc:
                return exc.get_error_message() or str(exc)
            if self.stop_status is None:
                self.stop_status, self.stop_reason = status, reason
            return None

    def view(self) -> dict:
        return {'active': self.active, 'migration_id': self.migration_id,
                'instance': self.instance, 'dest_host': self.dest_host,
                'progress': dict(self.progress), 'result': self.result}


@dataclass(frozen=True)
class Plan:
    """Validated, resolved settings of one migration."""
    dest_uri: str
    migrate_uri: Optional[str]
    dest_cpus: Optional[str]
    max_downtime_ms: int
    bandwidth_cap_mibps: float
    allow_auto_converge: bool
    allow_post_copy: bool
    completion_timeout_s: float
    progress_timeout_s: float
    timeout_action: str
    non_shared_disk_mode: str
    local_disks: tuple[str, ...]
    params: estimator.ModelParams
    memory_mib: float = 0.0
    disk_mib: float = 0.0
    dirty_rate_mibps: float = 0.0
    step_stalled_iterations: int = 3
    step_late_factor: float = 1.5


def make_plan(conf, guest: dict, dest_uri: str, migrate_uri: Optional[str],
              dest_cpus: Optional[str], policy: dict) -> Plan:
    """Resolve the policy over the configuration."""
    model = estimator.ModelParams.from_conf(conf).with_policy(objects.Policy(
        max_downtime_ms=policy.get('max_downtime_ms'),
        bandwidth_cap_mibps=policy.get('bandwidth_cap_mibps'),
        allow_auto_converge=policy.get('allow_auto_converge'),
        allow_post_copy=policy.get('allow_post_copy')))
    agent = conf.agent
    local = tuple(d['target'] for d in guest.get('disks', [])
                  if not d.get('shared') and d.get('target'))
    disk_mib = sum((d.get('allocation_mib') or d.get('capacity_mib') or 0.0)
                   for d in guest.get('disks', []) if not d.get('shared'))
    gib = max((guest['memory_mib'] + disk_mib) / 1024.0, 1.0 / 1024)
    per_gib = policy.get('completion_timeout_seconds_per_gib') or \
        agent.completion_timeout_seconds_per_gib
    return Plan(
        dest_uri=dest_uri, migrate_uri=migrate_uri, dest_cpus=dest_cpus,
        max_downtime_ms=model.max_downtime_ms,
        bandwidth_cap_mibps=model.bandwidth_cap_mibps or 0.0,
        allow_auto_converge=model.allow_auto_converge,
        allow_post_copy=model.allow_post_copy,
        completion_timeout_s=max(1.0, per_gib * gib),
        progress_timeout_s=float(policy.get('progress_timeout_seconds') or
                                 agent.progress_timeout_seconds),
        timeout_action=policy.get('timeout_action') or agent.timeout_action,
        non_shared_disk_mode=policy.get('non_shared_disk_mode') or agent.non_shared_disk_mode,
        local_disks=local, params=model, memory_mib=float(guest.get('memory_mib') or 0.0),
        disk_mib=float(disk_mib), dirty_rate_mibps=float(guest.get('dirty_rate_mibps') or 0.0),
        step_stalled_iterations=agent.downtime_step_stalled_iterations,
        step_late_factor=agent.downtime_step_late_factor)


def flags_and_params(dom, plan: Plan, conf) -> tuple[int, dict[str, Any]]:
    flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
             libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_ABORT_ON_ERROR)
    if dom.isPersistent():
        flags |= libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    params: dict[str, Any] = {}
    if plan.local_disks:
        flags |= (libvirt.VIR_MIGRATE_NON_SHARED_INC if plan.non_shared_disk_mode == 'incremental'
                  else libvirt.VIR_MIGRATE_NON_SHARED_DISK)
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(plan.local_disks)
    if plan.allow_auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        params[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL] = \
            conf.estimator.auto_converge_initial_pct
        params[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT] = \
            conf.estimator.auto_converge_increment_pct
    if plan.allow_post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    if conf.agent.migration_tls:
        flags |= libvirt.VIR_MIGRATE_TLS
    if plan.migrate_uri:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = plan.migrate_uri
    if plan.bandwidth_cap_mibps and plan.bandwidth_cap_mibps > 0:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = max(1, int(plan.bandwidth_cap_mibps))
    xml = dest_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_SECURE),
                   plan.dest_cpus)
    params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = xml
    params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = xml
    return flags, params


class Monitor:
    """Turns job statistics into progress, steers QEMU's downtime limit and
    applies the timeouts.

    The downtime limit: as soon as the job reports a bandwidth, the model
    chooses the limit for this migration from it and the guest's dirty
    rate (:func:`estimator.downtime_limit_ms`: the smallest rung that costs
    no more than the tolerance in predicted time); before that QEMU gets
    the ladder's first rung. When the job then does not converge (polls
    that see new iterations but no new low of the remaining data), or runs
    well past its predicted time, the limit is stepped up one rung, never
    above :func:`estimator.downtime_cap_ms`. Each change is logged and kept
    in ``downtime_steps`` (progress and result), so the operator sees why
    the pause was what it was.
    """

    def __init__(self, job: Job, plan: Plan, dom, notifier, dirty_rates,
                 interval_s: float):
        self.job = job
        self.plan = plan
        self.dom = dom
        self.notifier = notifier
        self.dirty_rates = dirty_rates
        self.interval_s = interval_s
        self.best_remaining: Optional[float] = None
        self.best_at = time.monotonic()
        self.last_processed: Optional[tuple[float, float]] = None
        self.timed_out_by: Optional[str] = None
        #: QEMU's downtime limit now (None: not set yet).
        self.limit_ms: Optional[int] = None
        #: Whether the limit was chosen from the live bandwidth yet.
        self.modelled = False
        self.predicted_s: Optional[float] = None
        self.steps: list[dict] = []
        self.iteration = 0
        self.iteration_low: Optional[float] = None
        self.stalled = 0
        self.polls_since_step = 0

    def run(self) -> None:
        job = self.job
        while not job.done.wait(0.1 if not self.modelled else self.interval_s):
            try:
                self.tick()
            except libvirt.libvirtError as exc:
                if job.done.is_set():
                    return
                LOG.debug('job stats of %s: %s', job.instance, exc)

    def set_limit(self, limit_ms: int, reason: str) -> bool:
        """Give QEMU ``limit_ms`` (capped) and remember why; False when
        libvirt refused (tried again at the next poll)."""
        limit_ms = max(1, min(int(limit_ms), estimator.downtime_cap_ms(self.plan.params)))
        try:
            self.dom.migrateSetMaxDowntime(limit_ms, 0)
        except libvirt.libvirtError as exc:
            LOG.debug('max downtime not set yet on %s: %s', self.job.instance, exc)
            return False
        self.limit_ms = limit_ms
        self.steps.append({'at_seconds': round(time.monotonic() - self.job.started, 3),
                           'limit_ms': limit_ms, 'reason': reason})
        LOG.info('%s: QEMU downtime limit %d ms: %s', self.job.instance, limit_ms, reason)
        return True

    def steer(self, progress: dict) -> None:
        """Choose the downtime limit, then step it up while the job does not
        converge (see the class docstring)."""
        job = self.job
        if job.postcopy_started or job.stop_status or \
                progress['phase'] in ('complete', 'post-copy'):
            return
        params = self.plan.params
        ladder = estimator.downtime_ladder_ms(params)
        mibps = progress['mibps']
        if not self.modelled:
            if mibps > 0:
                plan = self.plan
                dirty = max(plan.dirty_rate_mibps, progress['dirty_rate_mibps'])
                limit = estimator.downtime_limit_ms(plan.memory_mib, dirty, mibps, params,
                                                    plan.disk_mib)
                run = estimator.precopy_at_limit(plan.memory_mib, dirty, mibps, params, limit,
                                                 plan.disk_mib)
                predicted = f'{run.total_seconds:.1f} s' if run.converges else 'no convergence'
                if self.set_limit(limit, f'model: {plan.memory_mib:.0f} MiB dirtied at '
                                         f'{dirty:.1f} MiB/s, sent at {mibps:.1f} MiB/s: '
                                         f'{predicted}'):
                    self.modelled = True
                    self.predicted_s = run.total_seconds if run.converges else None
            elif self.limit_ms is None:
                self.set_limit(ladder[0], 'start: the bandwidth is not known yet')
            return
        self.polls_since_step += 1
        iteration, remaining = progress['iteration'], progress['remaining_mib']
        if iteration > self.iteration:
            self.iteration = iteration
            if self.iteration_low is None or remaining < self.iteration_low:
                self.iteration_low, self.stalled = remaining, 0
            else:
                self.stalled += 1
        n = self.plan.step_stalled_iterations
        why = None
        elapsed = progress['elapsed_seconds']
        if self.stalled >= n:
            why = (f'not converging: {n} polls saw new iterations but no new low of the '
                   f'remaining data ({self.iteration_low or 0:.1f} MiB)')
        elif self.predicted_s is not None and self.polls_since_step >= n and \
                elapsed > self.plan.step_late_factor * self.predicted_s:
            why = (f'late: {elapsed:.1f} s is past {self.plan.step_late_factor:g} x the '
                   f'predicted {self.predicted_s:.1f} s')
        higher = [rung for rung in ladder if rung > (self.limit_ms or 0)]
        if why is None or not higher:
            return
        if self.set_limit(higher[0], why):
            self.stalled, self.iteration_low, self.polls_since_step = 0, None, 0

    def tick(self) -> None:
        job = self.job
        stats = self.dom.jobStats()
        if job.done.is_set():
            return
        active = stats.get('type', _JOB_NONE) != _JOB_NONE
        if active:
            job.last_stats = stats
            for key in ('data_processed', 'disk_processed', 'disk_total'):
                job.peak[key] = max(job.peak.get(key, 0), stats.get(key) or 0)
            self.dirty_rates.from_job_stats(job.uuid, stats)
        paused = False
        try:
            state, reason = self.dom.state()
            paused = (state == libvirt.VIR_DOMAIN_PAUSED and
                      reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION)
        except libvirt.libvirtError:
            pass
        progress = self.progress(stats, paused)
        if active:
            self.steer(progress)
        progress.update(downtime_limit_ms=self.limit_ms,
                        downtime_steps=[dict(s) for s in self.steps])
        job.progress = progress
        self.notifier.migration_progress(job.migration_id, progress)
        self.check_timeouts(progress)

    def progress(self, stats: dict, paused: bool) -> dict:
        now = time.monotonic()
        elapsed = now - self.job.started
        remaining = (stats.get('data_remaining') or 0) / MIB
        processed = (stats.get('data_processed') or 0) / MIB
        total = (stats.get('data_total') or 0) / MIB
        bps = (stats.get('memory_bps') or 0) + (stats.get('disk_bps') or 0)
        mibps = bps / MIB
        if not mibps and self.last_processed is not None:
            t0, p0 = self.last_processed
            if now > t0:
                mibps = max(0.0, (processed - p0) / (now - t0))
        self.last_processed = (now, processed)
        page = stats.get('memory_page_size') or 4096
        dirty = (stats.get('memory_dirty_rate') or 0) * page / MIB
        eta = None
        if stats.get('type', _JOB_NONE) != _JOB_NONE and mibps > 0:
            eta = estimator.eta_seconds(remaining, dirty, mibps, self.plan.params,
                                        self.limit_ms)
        return {
            'migration_id': self.job.migration_id, 'instance': self.job.instance,
            'phase': phase_of(stats, paused, self.job.postcopy_started),
            'remaining_mib': round(remaining, 2), 'processed_mib': round(processed, 2),
            'total_mib': round(total, 2), 'mibps': round(mibps, 2),
            'dirty_rate_mibps': round(dirty, 2),
            'iteration': int(stats.get('memory_iteration') or 0),
            'eta_seconds': None if eta is None else round(eta, 2),
            'elapsed_seconds': round(elapsed, 3),
            'memory_remaining_mib': round((stats.get('memory_remaining') or 0) / MIB, 2),
            'disk_remaining_mib': round((stats.get('disk_remaining') or 0) / MIB, 2),
            'disk_total_mib': round((stats.get('disk_total') or 0) / MIB, 2),
            'postcopy': self.job.postcopy_started, 'at': time.time(),
        }

    def check_timeouts(self, progress: dict) -> None:
        job = self.job
        if job.postcopy_started or job.stop_status:
            return  # post-copy cannot be aborted; a stop is already on its way
        now = time.monotonic()
        remaining = progress['remaining_mib']
        if progress['phase'] != 'setup' and (self.best_remaining is None or
                                             remaining < self.best_remaining):
            self.best_remaining = remaining
            self.best_at = now
        why = None
        if now - job.started > self.plan.completion_timeout_s:
            why = ('completion', f'completion timeout: not done after '
                   f'{self.plan.completion_timeout_s:.0f} s')
        elif now - self.best_at > self.plan.progress_timeout_s:
            why = ('progress', f'progress timeout: remaining data has not reached a new low '
                   f'({self.best_remaining or 0:.1f} MiB) for '
                   f'{self.plan.progress_timeout_s:.0f} s')
        if why is None:
            return
        self.timed_out_by = why[0]
        if self.plan.timeout_action == 'post-copy' and job.postcopy_allowed:
            try:
                self.dom.migrateStartPostCopy(0)
                job.postcopy_started = True
                LOG.info('%s: %s; switched to post-copy', job.instance, why[1])
                # Say so at once: the rest may arrive within one poll.
                job.progress = dict(progress, phase='post-copy', postcopy=True,
                                    switched_because=why[1])
                self.notifier.migration_progress(job.migration_id, job.progress)
                return
            except libvirt.libvirtError as exc:
                LOG.warning('%s: post-copy switch failed (%s); aborting', job.instance, exc)
        LOG.warning('%s: %s; aborting the migration', job.instance, why[1])
        failed = job.stop(self.dom, JobOutcome.TIMED_OUT, why[1])
        if failed:
            # The timeouts stay on: the next poll tries again.
            LOG.warning('%s: abort after timeout failed: %s', job.instance, failed)


class MigrationDriver:
    """Starts migrations and keeps each guest's current or last job."""

    def __init__(self, conf, connection, notifier, dirty_rates):
        self.conf = conf
        self.connection = connection
        self.notifier = notifier
        self.dirty_rates = dirty_rates
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, instance: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.get(instance)

    def active(self) -> list[dict]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [{'migration_id': j.migration_id, 'instance': j.instance,
                 'dest_host': j.dest_host, 'phase': j.progress.get('phase', 'setup')}
                for j in jobs if j.active]

    def active_uuids(self) -> set[str]:
        with self._lock:
            return {j.uuid for j in self._jobs.values() if j.active}

    def start(self, dom, migration_id: str, dest_host: str, plan: Plan, guest: dict) -> Job:
        with self._lock:
            current = self._jobs.get(guest['name'])
            if current is not None and current.active:
                from kvmplace.exception import KvmplaceError
                raise KvmplaceError(f'{guest["name"]} is already migrating '
                                    f'({current.migration_id})')
            disk_mib = sum((d.get('allocation_mib') or d.get('capacity_mib') or 0.0)
                           for d in guest.get('disks', []) if not d.get('shared'))
            job = Job(migration_id=migration_id, instance=guest['name'], uuid=guest['uuid'],
                      dest_host=dest_host, data_mib=guest['memory_mib'] + disk_mib,
                      guest=guest, postcopy_allowed=plan.allow_post_copy)
            job.progress = {'migration_id': migration_id, 'instance': guest['name'],
                            'phase': 'setup', 'elapsed_seconds': 0.0}
            self._jobs[guest['name']] = job
        conns: list = []
        try:
            flags, params = flags_and_params(dom, plan, self.conf)
            # Each migration gets connections of its own: a libvirt remote
            # connection without an event loop stalls every other call on it
            # while migrateToURI3 blocks (seen on the lab: the monitor and
            # the host-state report hung for the whole migration).
            conns.append(self._open())
            conns.append(self._open())
            mig_dom = conns[0].lookupByUUIDString(guest['uuid'])
            monitor = Monitor(job, plan, conns[1].lookupByUUIDString(guest['uuid']),
                              self.notifier, self.dirty_rates,
                              self.conf.agent.progress_interval_seconds)
        except Exception:
            with self._lock:
                self._jobs.pop(guest['name'], None)
            for conn in conns:
                conn.close()
            raise
        threading.Thread(target=self._run,
                         args=(job, plan, mig_dom, flags, params, monitor, tuple(conns)),
                         name=f'migrate-{guest["name"]}', daemon=True).start()
        threading.Thread(target=monitor.run, name=f'monitor-{guest["name"]}',
                         daemon=True).start()
        return job

    def abort(self, instance: str, dom) -> tuple[bool, Optional[str]]:
        """(aborted, reason if not)."""
        job = self.get(instance)
        if job is not None and job.active and job.postcopy_started:
            return False, 'the migration is in post-copy: the guest already runs on the ' \
                          'destination and cannot be pulled back'
        if job is not None and job.active:
            failed = job.stop(dom, JobOutcome.ABORTED, 'aborted by request')
            return (False, failed) if failed else (True, None)
        try:
            dom.abortJob()
            return True, None
        except libvirt.libvirtError as exc:
            return False, exc.get_error_message()

    def _open(self):
        return libvirt.open(self.connection.uri)

    def _run(self, job: Job, plan: Plan, dom, flags: int, params: dict,
             monitor: Monitor, conns: tuple = ()) -> None:
        error = None
        status: str = JobOutcome.COMPLETED
        try:
            LOG.info('migrating %s to %s (%s, flags %#x)', job.instance, job.dest_host,
                     plan.dest_uri, flags)
            dom.migrateToURI3(plan.dest_uri, params, flags)
        except libvirt.libvirtError as exc:
            with job.stop_lock:         # an abort in flight decides first
                stop_status, stop_reason = job.stop_status, job.stop_reason
            status = stop_status or JobOutcome.FAILED
            error = stop_reason or exc.get_error_message()
            if stop_reason and exc.get_error_message():
                error = f'{stop_reason} ({exc.get_error_message()})'
        except Exception as exc:  # noqa: BLE001 - report every failure
            status, error = JobOutcome.FAILED, f'{type(exc).__name__}: {exc}'
        elapsed = time.monotonic() - job.started
        final = self._final_stats(job, plan, status) or {}
        job.result = self._result(job, status, error, elapsed, final, monitor)
        if status == JobOutcome.COMPLETED and plan.local_disks:
            job.result['source_disks_removed'] = self._remove_copied_disks(job)
        job.progress = dict(job.progress, phase='complete' if status == JobOutcome.COMPLETED
                            else job.progress.get('phase', 'setup'),
                            elapsed_seconds=round(elapsed, 3),
                            remaining_mib=0.0 if status == JobOutcome.COMPLETED
                            else job.progress.get('remaining_mib'))
        job.done.set()
        for conn in conns:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass
        if status == JobOutcome.COMPLETED:
            self.notifier.migration_progress(job.migration_id, job.progress)
        self.notifier.migration_finished(job.migration_id, job.result)
        LOG.info('migration %s of %s: %s%s', job.migration_id, job.instance, status,
                 f' ({error})' if error else '')

    def _remove_copied_disks(self, job: Job) -> list[str]:
        paths = [d['path'] for d in job.guest.get('disks', [])
                 if not d.get('shared') and d.get('path') and d.get('type', 'file') == 'file']
        if not paths:
            return []
        agent = self.conf.agent
        try:
            return storage.remove_copied_disks(self.connection.get(), paths,
                                               list(agent.image_directories),
                                               agent.max_storage_pools, job.uuid)
        except libvirt.libvirtError as exc:
            LOG.warning('could not remove the stale disks of %s: %s', job.instance,
                        exc.get_error_message())
            return []

    def _final_stats(self, job: Job, plan: Plan, status: str) -> Optional[dict]:
        """The completed job's statistics (downtime, totals): on the
        destination after success (the source domain is gone by then), else
        on the source."""
        flag = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
        if status == JobOutcome.COMPLETED:
            try:
                conn = libvirt.open(plan.dest_uri)
                try:
                    return conn.lookupByUUIDString(job.uuid).jobStats(flag)
                finally:
                    conn.close()
            except libvirt.libvirtError as exc:
                LOG.debug('completed stats from %s: %s', plan.dest_uri, exc)
            return None
        try:
            dom = self.connection.get().lookupByUUIDString(job.uuid)
            return dom.jobStats(flag)
        except libvirt.libvirtError:
            return None

    def _result(self, job: Job, status: str, error: Optional[str], elapsed: float,
                final: dict, monitor: Monitor) -> dict:
        stats = final if final.get('data_processed') else job.last_stats
        data_mib = max(stats.get('data_processed') or 0,
                       job.peak.get('data_processed', 0)) / MIB
        disk_mib = max(final.get('disk_processed') or 0, job.peak.get('disk_processed', 0)) / MIB
        time_s = (final.get('time_elapsed') or 0) / 1000.0 or elapsed
        downtime = final.get('downtime')
        return {
            'migration_id': job.migration_id, 'instance': job.instance,
            'dest_host': job.dest_host, 'status': status, 'error': error,
            'elapsed_seconds': round(elapsed, 3),
            'job_seconds': round(time_s, 3),
            'downtime_ms': None if downtime is None else int(downtime),
            'data_mib': round(data_mib, 2),
            'mibps': round(data_mib / time_s, 2) if time_s > 0 else None,
            'iterations': int(stats.get('memory_iteration') or 0),
            'disk_mib': round(disk_mib, 2),
            'memory_mib': job.guest.get('memory_mib'),
            'postcopy': job.postcopy_started,
            'downtime_limit_ms': monitor.limit_ms,
            'downtime_steps': [dict(s) for s in monitor.steps],
            'timed_out_by': monitor.timed_out_by if status == JobOutcome.TIMED_OUT else None,
            'started_at': job.started_at, 'finished_at': time.time(),
            'guest': {k: job.guest.get(k) for k in ('name', 'uuid', 'memory_mib', 'vcpus',
                                                    'disk_gib', 'shared_storage')},
        }
