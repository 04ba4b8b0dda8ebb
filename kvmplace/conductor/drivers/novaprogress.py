"""A Nova live migration's record, as kvmplace's progress, ETA and timeouts.

Nova reports a running live migration through
``GET /servers/{id}/migrations/{id}`` (compute API reference, "Server
migrations"): ``status`` and the byte counters ``memory_total_bytes``,
``memory_processed_bytes``, ``memory_remaining_bytes`` and the same for
``disk_*`` - libvirt's job statistics, copied by nova-compute's migration
monitor into the record every few seconds. It gives no rate, no dirty rate
and no iteration, so they are derived here: the rate from two samples'
processed bytes, the pass from memory processed / memory total (each pass
sends at most all of memory), the dirty rate from the kvmplace agent's
measure of the guest when there is one. The ETA is the estimator's pre-copy
rule run from where the job stands (:func:`kvmplace.estimator.eta_seconds`),
the same as for a libvirt-driven migration.

The completion and progress timeouts are the agent's rules
(kvmplace.agent.migration.Monitor.check_timeouts) applied to Nova's
numbers; when one is due the action is Nova's: abort
(``DELETE /servers/{id}/migrations/{id}``), or force-complete (Nova's
switch to post-copy, or a pause) when the policy allows post-copy and asks
for it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Optional

from kvmplace import estimator
from kvmplace import objects
from kvmplace.status import JobOutcome

MIB = 1024.0 * 1024.0

#: Nova migration statuses, by what they mean for kvmplace.
NOVA_SETUP = ('accepted', 'queued', 'preparing', 'pre-migrating')
NOVA_RUNNING = ('running',)
NOVA_FINISHING = ('post-migrating', 'cancelling')
NOVA_COMPLETED = ('completed', 'done', 'confirmed', 'finished')
NOVA_CANCELLED = ('cancelled',)
NOVA_FAILED = ('error', 'failed')
#: The final status of a live migration Nova's conductor refused (or
#: nova-compute rolled back): see NovaDriver._refused.
NOVA_REFUSED = ('error',)
#: The instance action event of Nova's conductor for a live migration.
NOVA_CONDUCTOR_EVENT = 'conductor_live_migrate_instance'


def _seconds(stamp: Any) -> Optional[float]:
    """Nova's timestamp ("2016-01-29T13:42:02.000000", UTC) in seconds."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        when = dt.datetime.fromisoformat(stamp.rstrip('Z'))
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC).timestamp()


def _mib(record: dict, key: str) -> float:
    return float(record.get(key) or 0) / MIB


@dataclasses.dataclass
class Timeouts:
    """The agent's timeout rules, resolved for one migration."""
    completion_s: float
    progress_s: float
    action: str                 # 'abort' or 'post-copy'
    post_copy_allowed: bool

    @classmethod
    def from_conf(cls, conf, policy: dict, memory_mib: float, disk_mib: float) -> Timeouts:
        agent = conf.agent
        model = estimator.ModelParams.from_conf(conf).with_policy(objects.Policy(
            allow_post_copy=policy.get('allow_post_copy')))
        per_gib = policy.get('completion_timeout_seconds_per_gib') or \
            agent.completion_timeout_seconds_per_gib
        gib = max((memory_mib + disk_mib) / 1024.0, 1.0 / 1024)
        return cls(completion_s=max(1.0, per_gib * gib),
                   progress_s=float(policy.get('progress_timeout_seconds') or
                                    agent.progress_timeout_seconds),
                   action=policy.get('timeout_action') or agent.timeout_action,
                   post_copy_allowed=bool(model.allow_post_copy))


class Tracker:
    """Turns successive Nova records of one migration into progress dicts
    and says when a timeout is due. Times are passed in (monotonic
    seconds), so recorded responses replay exactly in tests."""

    def __init__(self, migration_id: str, instance: str, started_s: float,
                 params: estimator.ModelParams, timeouts: Timeouts,
                 dirty_rate_mibps: Optional[float] = None):
        self.migration_id = migration_id
        self.instance = instance
        self.started_s = started_s
        self.params = params
        self.timeouts = timeouts
        self.dirty_rate_mibps = dirty_rate_mibps
        self.last: Optional[tuple[float, float]] = None   # (time, processed MiB)
        self.mibps = 0.0
        self.best_remaining: Optional[float] = None
        self.best_at = started_s
        self.forced = False

    def progress(self, record: dict, now_s: float, wall_time: float) -> dict:
        """kvmplace's progress (the fields of a libvirt agent's cast)."""
        mem_total = _mib(record, 'memory_total_bytes')
        mem_done = _mib(record, 'memory_processed_bytes')
        disk_total = _mib(record, 'disk_total_bytes')
        processed = mem_done + _mib(record, 'disk_processed_bytes')
        remaining = _mib(record, 'memory_remaining_bytes') + \
            _mib(record, 'disk_remaining_bytes')
        # The rate from two different records: Nova's migration monitor
        # rewrites the record every few seconds, so a poll may read the same
        # one twice; its updated_at says when its counters were taken.
        taken = _seconds(record.get('updated_at'))
        at = now_s if taken is None else taken
        if self.last is None:
            self.last = (at, processed)
        elif at > self.last[0] and (taken is not None or processed != self.last[1]):
            if processed >= self.last[1]:
                self.mibps = (processed - self.last[1]) / (at - self.last[0])
            self.last = (at, processed)
        iteration = int(mem_done // mem_total) if mem_total > 0 else 0
        dirty = self.dirty_rate_mibps or 0.0
        status = str(record.get('status') or '')
        eta = None
        if status in NOVA_RUNNING and self.mibps > 0:
            eta = estimator.eta_seconds(remaining, dirty, self.mibps, self.params)
        return {
            'migration_id': self.migration_id, 'instance': self.instance,
            'phase': self.phase(record, iteration),
            'remaining_mib': round(remaining, 2), 'processed_mib': round(processed, 2),
            'total_mib': round(mem_total + disk_total, 2), 'mibps': round(self.mibps, 2),
            'dirty_rate_mibps': round(dirty, 2),
            'iteration': iteration,
            'eta_seconds': None if eta is None else round(eta, 2),
            'elapsed_seconds': round(now_s - self.started_s, 3),
            'memory_remaining_mib': round(_mib(record, 'memory_remaining_bytes'), 2),
            'disk_remaining_mib': round(_mib(record, 'disk_remaining_bytes'), 2),
            'disk_total_mib': round(disk_total, 2),
            'postcopy': self.forced, 'at': wall_time,
            'nova_status': status, 'nova_migration_id': record.get('id'),
        }

    def phase(self, record: dict, iteration: int) -> str:
        """The agent's phase names (setup, disk, iterate N, complete,
        post-copy) from Nova's status and counters."""
        status = str(record.get('status') or '')
        if self.forced:
            return 'post-copy'
        if status in NOVA_SETUP or not status:
            return 'setup'
        if status in NOVA_FINISHING:
            return 'complete'
        if status not in NOVA_RUNNING:
            return status
        if record.get('disk_remaining_bytes') and not record.get('memory_processed_bytes'):
            return 'disk'
        if not record.get('memory_processed_bytes') and not record.get('disk_processed_bytes'):
            return 'setup'
        return f'iterate {max(1, iteration + 1)}'

    def due(self, progress: dict, now_s: float) -> Optional[tuple[str, str]]:
        """(action, why) when a timeout is due: action 'abort' or
        'force-complete'; None otherwise. Once forced, nothing more is due
        (a post-copy cannot be aborted)."""
        if self.forced:
            return None
        remaining = progress['remaining_mib']
        if progress['phase'] != 'setup' and (self.best_remaining is None or
                                             remaining < self.best_remaining):
            self.best_remaining, self.best_at = remaining, now_s
        why = None
        if now_s - self.started_s > self.timeouts.completion_s:
            why = (f'completion timeout: not done after '
                   f'{self.timeouts.completion_s:.0f} s')
        elif now_s - self.best_at > self.timeouts.progress_s:
            why = (f'progress timeout: remaining data has not reached a new low '
                   f'({self.best_remaining or 0:.1f} MiB) for {self.timeouts.progress_s:.0f} s')
        if why is None:
            return None
        if self.timeouts.action == 'post-copy' and self.timeouts.post_copy_allowed:
            return 'force-complete', why
        return 'abort', why


def outcome(status: str) -> Optional[JobOutcome]:
    """kvmplace's JobOutcome for a final Nova status; None while it runs."""
    if status in NOVA_COMPLETED:
        return JobOutcome.COMPLETED
    if status in NOVA_CANCELLED:
        return JobOutcome.ABORTED
    if status in NOVA_FAILED:
        return JobOutcome.FAILED
    return None


def plain(value: Any) -> Any:
    """Nova's record without the fields kvmplace never reads (links...)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ('links',)}
    return value
