"""What a migration costs when others run beside it, and how to learn it.

The pre-copy model (kvmplace.estimator) predicts one migration alone: the
libvirt job's time at the path's rate. A drain is more than a row of such
jobs, and its plan missed by a third when it was only that (the lab's
drain: 11.4 s planned, 18.1 s measured). Three things were missing, each
measured on the lab's drains:

* **fixed cost per migration** outside the libvirt job: the destination
  check, pre-pinning, the post-verify watch and its settle window
  (``[agent] post_verify_settle_seconds``). A migration's record ends that
  much after its job; the next migration on its links waits for it.
* **contention** between concurrent streams: each migration stream is a
  QEMU thread copying memory and a socket pushing it, on the CPUs of its
  source and destination. Three parallel migrations out of one lab host ran
  at about 60 % of their solo pace each although no link was full. Modelled
  as a slowdown of every stream by ``1 / (1 + contention x (n - 1))`` where
  ``n`` counts the migrations running on its source or destination host
  (itself included); ``contention`` 0 is perfect parallelism, 1 means the
  hosts' CPUs carry a fixed total however many streams share them.
* **start lag**: a drain notices that a migration ended at its next look
  (``[conductor]``'s drain poll, fed by the agents' reports) and only then
  starts the next one; the drain's own record ends one look after its
  last migration.

:func:`fit` learns the three from finished drains (their records and their
migrations' records, all on the conductor's clock), the way path learning
(kvmplace.conductor.learning) learns a path's rate from finished
migrations, with the same shrinking of few samples towards the configured
prior. The drain planner (kvmplace.planner.schedule) applies them.
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import asdict, dataclass
from typing import Iterable, Optional

from kvmplace import estimator
from kvmplace.status import MigrationStatus

#: Bounds a learned contention is clamped to (a migration that took ten
#: times its solo time in company says more about a fault than about CPUs).
MAX_CONTENTION = 3.0
MAX_FIXED_SECONDS = 30.0
MIN_PACE = 0.1


@dataclass(frozen=True)
class Concurrency:
    """The costs a drain adds to each migration's pre-copy time."""
    record_overhead_seconds: float = 0.0
    contention: float = 0.0
    start_lag_seconds: float = 0.0
    #: The part of the record overhead after the job (post-verify, settle):
    #: what a running migration still costs once its job ends.
    verify_seconds: float = 0.0
    #: Pace of a migration that ran alone in a drain against its estimate
    #: (the job time the estimate expected / the one measured): the hosts'
    #: load at drain time, which single-migration calibration does not see.
    pace: float = 1.0
    #: Migrations / gaps the figures were learned from (0: the priors).
    samples: int = 0

    def slowdown(self, streams: int) -> float:
        """Factor on a stream's rate when ``streams`` migrations (itself
        included) share its source or destination host."""
        return 1.0 / (1.0 + self.contention * max(0, streams - 1))

    def factor(self, streams: int) -> float:
        """What a stream's planned rate is multiplied by: the drains' pace
        and the slowdown by company."""
        return self.pace * self.slowdown(streams)

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_conf(cls, conf) -> Concurrency:
        e = conf.estimator
        return cls(record_overhead_seconds=e.migration_overhead_seconds,
                   contention=e.stream_contention,
                   start_lag_seconds=e.drain_start_lag_seconds,
                   verify_seconds=e.migration_overhead_seconds, pace=e.drain_pace)


NONE = Concurrency()


def _ts(value) -> Optional[float]:
    """A record's timestamp (datetime or ISO text, UTC) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.rstrip('Z'))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


@dataclass(frozen=True)
class Finished:
    """What a finished migration of a drain says about concurrency."""
    host_pair: tuple[str, str]
    created: float
    started: float
    finished: float
    job_seconds: float
    #: The rate pre-copy needed to take ``job_seconds`` (fit_bandwidth)
    #: over the rate its estimate expected alone: < 1 when it ran slower.
    pace: Optional[float]


def finished_migration(rec: dict, params: estimator.ModelParams) -> Optional[Finished]:
    """A completed migration record as a :class:`Finished`, or None when it
    lacks the times (failed, not started, no job statistics)."""
    result = rec.get('result') or {}
    if rec.get('status') != MigrationStatus.COMPLETED or result.get('postcopy'):
        return None
    created, started, finished = (_ts(rec.get('created_at')), _ts(rec.get('started_at')),
                                  _ts(rec.get('finished_at')))
    job = result.get('elapsed_seconds')
    if None in (created, started, finished) or not job or job <= 0:
        return None
    assert created is not None and started is not None and finished is not None
    est = rec.get('estimate') or {}
    inputs = est.get('inputs') or {}
    pace = None
    memory = inputs.get('memory_mib') or result.get('memory_mib')
    expected = est.get('bandwidth_mibps')
    cap = (rec.get('policy') or {}).get('bandwidth_cap_mibps')
    if cap:
        expected = min(float(expected or cap), float(cap))
    if memory and expected:
        fitted = estimator.fit_bandwidth(float(memory),
                                         float(inputs.get('dirty_rate_mibps') or 0.0),
                                         float(job), params,
                                         float(inputs.get('disk_mib') or 0.0))
        if fitted is not None:
            pace = fitted / float(expected)
    return Finished((rec.get('source') or '', rec.get('dest') or ''), created, started,
                    finished, float(job), pace)


def mean_streams(one: Finished, all_: list[Finished]) -> float:
    """Time-averaged count of jobs on ``one``'s source or destination
    while its own job ran (itself included)."""
    start, end = one.started, one.started + one.job_seconds
    if end <= start:
        return 1.0
    hosts = set(one.host_pair)
    total = 0.0
    for other in all_:
        if other is one or not hosts & set(other.host_pair):
            continue
        lo = max(start, other.started)
        hi = min(end, other.started + other.job_seconds)
        if hi > lo:
            total += hi - lo
    return 1.0 + total / (end - start)


def _shrink(values: list[float], prior: float, prior_samples: float) -> float:
    """Median of the values, weighed against the prior as path learning
    weighs a path's rate (kvmplace.conductor.learning.trusted_mibps)."""
    if not values:
        return prior
    n = len(values)
    if prior_samples <= 0:
        return statistics.median(values)
    return (n * statistics.median(values) + prior_samples * prior) / (n + prior_samples)


def fit(drains: Iterable[tuple[dict, list[dict]]], params: estimator.ModelParams,
        prior: Concurrency = NONE, prior_samples: float = 3.0) -> Concurrency:
    """Learn the concurrency costs from finished drains.

    ``drains`` are (drain record, its migration records), completed ones.
    Every figure is a median over what the records show, shrunk towards the
    prior by ``prior_samples`` (the same rule as path learning):

    * record overhead: a record's time (created -> finished) less its job's;
    * start lag: the drain record's creation to its first migration, each
      later migration's creation after the last end before it, and the
      last end to the drain record's end;
    * contention: for each migration that shared a host with others during
      its job, ``(solo_pace / pace - 1) / (streams - 1)``, ``pace`` being
      its fitted rate over its estimate's and ``solo_pace`` the median pace
      of the migrations that ran alone (so a path whose solo rate the
      constants miss is not read as contention).
    """
    overheads: list[float] = []
    tails: list[float] = []
    lags: list[float] = []
    shared: list[tuple[float, float]] = []
    solo_paces: list[float] = []
    for drain, records in drains:
        done = [f for f in (finished_migration(r, params) for r in records) if f is not None]
        if not done or len(done) != len(records):
            continue    # a drain with failed or unfinished moves: its gaps mean retries
        d_created, d_finished = _ts(drain.get('created_at')), _ts(drain.get('finished_at'))
        done.sort(key=lambda f: f.created)
        for f in done:
            overheads.append((f.finished - f.created) - f.job_seconds)
            tails.append(f.finished - (f.started + f.job_seconds))
            streams = mean_streams(f, done)
            if f.pace is None:
                continue
            if streams < 1.05:
                solo_paces.append(f.pace)
            else:
                shared.append((f.pace, streams))
        if d_created is not None:
            lags.append(done[0].created - d_created)
        for f in done[1:]:
            before = [o.finished for o in done if o.finished <= f.created]
            if before and f.created - max(before) < 2 * MAX_FIXED_SECONDS:
                lags.append(f.created - max(before))
        if d_finished is not None:
            lags.append(d_finished - max(f.finished for f in done))
    solo_pace = statistics.median(solo_paces) if solo_paces else 1.0
    contentions = [min(MAX_CONTENTION, max(0.0, (solo_pace / pace - 1.0) / (streams - 1.0)))
                   for pace, streams in shared if pace > 0]
    clamp = lambda v: min(MAX_FIXED_SECONDS, max(0.0, v))  # noqa: E731
    return Concurrency(
        record_overhead_seconds=clamp(_shrink([clamp(v) for v in overheads],
                                              prior.record_overhead_seconds, prior_samples)),
        contention=_shrink(contentions, prior.contention, prior_samples),
        start_lag_seconds=clamp(_shrink([clamp(v) for v in lags], prior.start_lag_seconds,
                                        prior_samples)),
        verify_seconds=clamp(_shrink([clamp(v) for v in tails], prior.verify_seconds,
                                     prior_samples)),
        pace=min(1.0 / MIN_PACE, max(MIN_PACE, _shrink(solo_paces, prior.pace,
                                                       prior_samples))),
        samples=len(overheads))
