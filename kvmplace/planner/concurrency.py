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

**Shared source** (``shared_source``, ``[estimator] drain_shared_source``):
on the lab the migrations a drain starts together out of one host *end*
together, whatever their size. Seed 4 of doc/source/benchmarks/data/
drain-seeds.json: guests moving 385, 266, 259 and 246 MiB, started within
0.06 s, finished their jobs at 6.71, 6.70, 6.68 and 6.67 s (records 8.17
to 8.11 s), while the per-stream model above scaled each by its own data
(11.6, 10.7, 9.4 and 8.9 s planned); the guest that ran alone after them
(242 MiB) took 4.6-4.9 s. Every seed shows it (seed 2 in two pairs).
Hypothesis, not measured inside QEMU: pre-copy under CPU contention - while
all streams compete for the source's two CPUs and its guests keep dirtying
memory, no stream gets below its downtime limit; once the first converges
and stops, the CPUs it frees let the others converge at once. So the
streams out of one source are modelled as one pool: each member brings its
solo pre-copy time at its rate and the drain's pace (its *work*), and the
members that overlap share one end - the pool's, after its biggest
member's work plus ``contention`` x the rest of the pooled work (with no
other migration on the source)::

    end = start + longest + contention x (sum of work - longest)

``contention`` 0: the pool takes its longest member's time; 1: the sum,
as if one CPU budget carried the streams one after the other. It is
processor sharing over ``k = work / longest`` streams' worth of work (the
member count when they are alike, where it is the per-stream model's
``1 + contention x (k - 1)``), every member's remaining work shrinking in
proportion so that all reach zero together (:func:`pool_ends`); a member
that starts later joins the remaining pool and moves the end for all.
Weighing streams by their work, not counting them, keeps two properties
a plan needs: no member ends before it would alone, and a member more
never ends a pool earlier. A pool of one is the solo estimate at the
drain's pace. The fixed record overhead and start lag are as above.

:func:`fit` learns these from finished drains (their records and their
migrations' records, all on the conductor's clock), the way path learning
(kvmplace.conductor.learning) learns a path's rate from finished
migrations, with the same shrinking of few samples towards the configured
prior. The drain planner (kvmplace.planner.schedule) applies them.
benchmarks/drain_bench.py --replay replays a benchmark's recorded drains
through that planner with the figures each would have learned, for both
models.
"""
from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional

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
    #: The migrations out of one source share one pool of work and end
    #: together (the module doc); False: each stream runs on its own,
    #: slowed by ``factor``.
    shared_source: bool = False

    def slowdown(self, streams: int) -> float:
        """Factor on a stream's rate when ``streams`` migrations (itself
        included) share its source or destination host."""
        return 1.0 / (1.0 + self.contention * max(0, streams - 1))

    def factor(self, streams: int) -> float:
        """What a stream's planned rate is multiplied by: the drains' pace
        and the slowdown by company."""
        return self.pace * self.slowdown(streams)

    def pool_speed(self, work_seconds: float, longest_seconds: float,
                   outside: int = 0) -> float:
        """Seconds of solo work a shared-source pool does per second, with
        ``work_seconds`` left in all, ``longest_seconds`` in its biggest
        member, and ``outside`` other migrations on the source (a
        re-plan's running ones): ``k / (1 + contention x (k + outside -
        1))`` for ``k = work / longest`` streams' worth of work (its
        member count when they are alike). Without ``outside`` the pool
        thus takes ``longest + contention x (work - longest)``."""
        if longest_seconds <= 0:
            return 1.0
        streams = work_seconds / longest_seconds
        return streams / (1.0 + self.contention * max(0.0, streams + outside - 1.0))

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_conf(cls, conf) -> Concurrency:
        e = conf.estimator
        return cls(record_overhead_seconds=e.migration_overhead_seconds,
                   contention=e.stream_contention,
                   start_lag_seconds=e.drain_start_lag_seconds,
                   verify_seconds=e.migration_overhead_seconds, pace=e.drain_pace,
                   shared_source=e.drain_shared_source)


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
    #: What its solo time is computed from: (memory MiB, dirty MiB/s, disk
    #: MiB, the rate its estimate expected), when the record says.
    inputs: Optional[tuple[float, float, float, float]] = None


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
    work = None
    memory = inputs.get('memory_mib') or result.get('memory_mib')
    expected = est.get('bandwidth_mibps')
    cap = (rec.get('policy') or {}).get('bandwidth_cap_mibps')
    if cap:
        expected = min(float(expected or cap), float(cap))
    if memory and expected:
        work = (float(memory), float(inputs.get('dirty_rate_mibps') or 0.0),
                float(inputs.get('disk_mib') or 0.0), float(expected))
        fitted = estimator.fit_bandwidth(work[0], work[1], float(job), params, work[2])
        if fitted is not None:
            pace = fitted / float(expected)
    return Finished((rec.get('source') or '', rec.get('dest') or ''), created, started,
                    finished, float(job), pace, work)


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


def source_pools(done: list[Finished]) -> list[list[Finished]]:
    """The shared-source pools of one drain: migrations out of one source
    whose jobs overlap, chained (a job that overlaps any member joins);
    only pools of two or more."""
    pools: list[list[Finished]] = []
    by_source: dict[str, list[Finished]] = {}
    for f in done:
        by_source.setdefault(f.host_pair[0], []).append(f)
    for members in by_source.values():
        members.sort(key=lambda f: f.started)
        pool: list[Finished] = []
        end = -math.inf
        for f in members:
            if pool and f.started >= end:
                pools.append(pool)
                pool = []
            if not pool:
                end = -math.inf
            pool.append(f)
            end = max(end, f.started + f.job_seconds)
        pools.append(pool)
    return [p for p in pools if len(p) > 1]


def pool_ends(joins: list[float], works: list[float], start: float, stop: float,
              speed: Callable[[float, float], float]) -> tuple[list[float], list[float]]:
    """One shared-source pool (module doc) from ``start`` to ``stop``.

    Member ``i`` starts copying at ``joins[i]`` with ``works[i]`` seconds
    of solo work; while members copy, the pool does ``speed(work left,
    biggest member's work left)`` seconds of work per second and every
    member's remaining work shrinks in proportion, so they all reach zero
    together (the speed holds between joins: the proportions do). A member
    that joins before that moves the end for all. Returns each member's
    end (inf if after ``stop``) and its work left at ``stop``.
    """
    count = len(joins)
    left = list(works)
    ends = [math.inf] * count
    order = sorted(range(count), key=lambda i: joins[i])
    k = 0
    active: list[int] = []
    total = 0.0
    t = start
    while True:
        while k < count and joins[order[k]] <= t:
            active.append(order[k])
            total += left[order[k]]
            k += 1
        joining = joins[order[k]] if k < count else math.inf
        if not active:
            if joining >= stop or joining == math.inf:
                break
            t = joining
            continue
        rate = speed(total, max(left[i] for i in active))
        empty = t + total / rate
        until = min(joining, stop)
        if empty <= until:
            for i in active:
                left[i] = 0.0
                ends[i] = empty
            active, total, t = [], 0.0, empty
            continue
        keep = 1.0 - (until - t) * rate / total
        for i in active:
            left[i] *= keep
        total *= keep
        t = until
        if t >= stop:
            break
    return ends, left


def pool_contention(pool: list[Finished], pace: float,
                    params: estimator.ModelParams) -> Optional[float]:
    """The contention at which :func:`pool_ends`, with each member's
    estimated job time at ``pace`` as its work and its job start as its
    join, ends the pool when its last job ended; None when a member's
    record lacks the inputs. Clamped to [0, MAX_CONTENTION]."""
    works = []
    for f in pool:
        if f.inputs is None:
            return None
        memory, dirty, disk, expected = f.inputs
        seconds = estimator.precopy(memory, dirty, expected * pace, params, disk).total_seconds
        if not math.isfinite(seconds):
            return None
        works.append(seconds)
    joins = [f.started for f in pool]
    last = max(f.started + f.job_seconds for f in pool)

    def end(c: float) -> float:
        model = Concurrency(contention=c)
        return max(pool_ends(joins, works, min(joins), math.inf, model.pool_speed)[0])
    if end(0.0) >= last:
        return 0.0
    if end(MAX_CONTENTION) <= last:
        return MAX_CONTENTION
    lo, hi = 0.0, MAX_CONTENTION
    for _ in range(50):
        mid = (lo + hi) / 2
        if end(mid) < last:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


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
      constants miss is not read as contention);
    * with ``prior.shared_source``, contention is instead read per
      shared-source pool (:func:`pool_contention`, against the learned
      pace), one value per pool, and the result keeps ``shared_source``.
      One per pool, not one per member: the pool's single end is the one
      thing it measures (its members end together), so a pool of five is
      one witness, as a pool of two is; counted per member, one drain of
      five moves outweighed the prior's ``prior_samples`` at once and the
      plan followed that one drain's noise (on the lab, pools of the same
      five guests ran 9.6-13.3 s from one drain to the next).
    """
    overheads: list[float] = []
    tails: list[float] = []
    lags: list[float] = []
    shared: list[tuple[float, float]] = []
    solo_paces: list[float] = []
    pools: list[list[Finished]] = []
    for drain, records in drains:
        done = [f for f in (finished_migration(r, params) for r in records) if f is not None]
        if not done or len(done) != len(records):
            continue    # a drain with failed or unfinished moves: its gaps mean retries
        d_created, d_finished = _ts(drain.get('created_at')), _ts(drain.get('finished_at'))
        done.sort(key=lambda f: f.created)
        pools.extend(source_pools(done))
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
    planned_pace = _shrink(solo_paces, prior.pace, prior_samples)
    if prior.shared_source:
        # No member of a pool ends before it would alone (contention >= 0),
        # so the pace its biggest member showed is a floor of the solo pace
        # that a prior from busier days must not pull the figure under.
        tops = [max(f.pace for f in pool if f.pace is not None) for pool in pools
                if any(f.pace is not None for f in pool)]
        if tops:
            planned_pace = max(planned_pace, statistics.median(tops))
    planned_pace = min(1.0 / MIN_PACE, max(MIN_PACE, planned_pace))
    if prior.shared_source:
        # Against the pace the planner will apply: the pool's speed is what
        # turns that pace's solo times into the measured span.
        contentions = [c for c in (pool_contention(pool, planned_pace, params)
                                   for pool in pools) if c is not None]
    else:
        contentions = [min(MAX_CONTENTION,
                           max(0.0, (solo_pace / pace - 1.0) / (streams - 1.0)))
                       for pace, streams in shared if pace > 0]
    clamp = lambda v: min(MAX_FIXED_SECONDS, max(0.0, v))  # noqa: E731
    return Concurrency(
        record_overhead_seconds=clamp(_shrink([clamp(v) for v in overheads],
                                              prior.record_overhead_seconds, prior_samples)),
        # Clamped again: the weighted mean of values at the bound can round
        # past it (3.0000000000000004).
        contention=min(MAX_CONTENTION, _shrink(contentions, prior.contention, prior_samples)),
        start_lag_seconds=clamp(_shrink([clamp(v) for v in lags], prior.start_lag_seconds,
                                        prior_samples)),
        verify_seconds=clamp(_shrink([clamp(v) for v in tails], prior.verify_seconds,
                                     prior_samples)),
        pace=planned_pace,
        samples=len(overheads), shared_source=prior.shared_source)
