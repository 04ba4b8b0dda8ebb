"""The pre-copy live-migration model (ARCHITECTURE "Migration model").

Why a model and not a lookup table: a drain or a scheduler has to compare
targets *before* moving anything, and the three things that decide a
migration's time - the path's rate, one connection's CPU-bound stream cap,
and the write bandwidth of the NUMA node that carries QEMU's main thread
(a node whose memory has slowed down) - combine as a minimum. Pre-copy then
turns a bandwidth R and a dirty rate D into rounds, data, time and downtime
(Liu et al., HPDC 2011; QEMU's own stop rule: stop iterating once what is
left can be sent within the max downtime).

Everything here is pure arithmetic on numbers so it can run ten thousand
times per scheduling request.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Optional

from kvmplace import objects
from kvmplace import resources

BOTTLENECKS = ('link', 'stream', 'source-numa', 'dest-numa', 'cap')


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Model constants; see kvmplace.conf.estimator for their meaning."""
    link_efficiency: float = 0.6
    stream_cap_mibps: float = 300.0
    multifd_connections: int = 1
    max_downtime_ms: int = 500
    max_rounds: int = 30
    bandwidth_cap_mibps: float = 0.0
    allow_auto_converge: bool = False
    allow_post_copy: bool = False
    auto_converge_initial_pct: int = 20
    auto_converge_increment_pct: int = 10
    switchover_overhead_ms: int = 0
    setup_seconds: float = 0.0
    choose_downtime_limit: bool = True
    downtime_tolerance_pct: float = 3.0
    downtime_tolerance_seconds: float = 0.2

    @classmethod
    def from_conf(cls, conf) -> ModelParams:
        e = conf.estimator
        return cls(link_efficiency=e.link_efficiency,
                   stream_cap_mibps=e.stream_cap_mibps,
                   multifd_connections=e.multifd_connections,
                   max_downtime_ms=e.max_downtime_ms,
                   max_rounds=e.max_rounds,
                   bandwidth_cap_mibps=e.bandwidth_cap_mibps,
                   allow_auto_converge=e.allow_auto_converge,
                   allow_post_copy=e.allow_post_copy,
                   auto_converge_initial_pct=e.auto_converge_initial_pct,
                   auto_converge_increment_pct=e.auto_converge_increment_pct,
                   switchover_overhead_ms=e.switchover_overhead_ms,
                   setup_seconds=e.setup_seconds,
                   choose_downtime_limit=e.choose_downtime_limit,
                   downtime_tolerance_pct=e.downtime_tolerance_pct,
                   downtime_tolerance_seconds=e.downtime_tolerance_seconds)

    def with_policy(self, policy: Optional[objects.Policy]) -> ModelParams:
        """Apply a request's policy over the configured defaults."""
        if policy is None:
            return self
        changes: dict[str, Any] = {}
        if policy.max_downtime_ms is not None:
            changes['max_downtime_ms'] = policy.max_downtime_ms
        if policy.bandwidth_cap_mibps is not None:
            changes['bandwidth_cap_mibps'] = policy.bandwidth_cap_mibps
        if policy.allow_auto_converge is not None:
            changes['allow_auto_converge'] = policy.allow_auto_converge
        if policy.allow_post_copy is not None:
            changes['allow_post_copy'] = policy.allow_post_copy
        return replace(self, **changes) if changes else self


#: The first rungs of the downtime ladder are this far apart (ms); above
#: LADDER_LINEAR_MS they double (Nova's downtime steps start at 50 ms too).
LADDER_STEP_MS = 50
LADDER_LINEAR_MS = 300


def downtime_cap_ms(params: ModelParams) -> int:
    """The largest downtime limit QEMU may be given so that the guest's
    whole pause stays within ``max_downtime_ms``.

    QEMU switches over once what is left can be sent within its limit, but
    the pause also holds the fixed switch-over cost (device state, stopping
    and resuming: ``switchover_overhead_ms``), which QEMU does not count.
    Handing it the whole budget made real pauses overshoot it by that cost
    (seen on the lab: 500-700 ms under a 500 ms limit). When the fixed cost
    alone eats most of the budget, a tenth of the budget is kept.
    """
    budget = params.max_downtime_ms
    return max(1, int(budget - params.switchover_overhead_ms), budget // 10)


def downtime_ladder_ms(params: ModelParams) -> tuple[int, ...]:
    """The downtime limits QEMU may be given, smallest first, ending at
    :func:`downtime_cap_ms`: 50, 100, ... 300 ms, then doubling (600,
    1200, ...), every rung below the cap. Doubling keeps a large budget's
    ladder short. Only the cap when ``choose_downtime_limit`` is off."""
    cap = downtime_cap_ms(params)
    return _ladder(cap) if params.choose_downtime_limit else (cap,)


@functools.lru_cache(maxsize=256)
def _ladder(cap: int) -> tuple[int, ...]:
    rungs = []
    rung = LADDER_STEP_MS
    while rung < cap:
        rungs.append(rung)
        rung = rung + LADDER_STEP_MS if rung < LADDER_LINEAR_MS else rung * 2
    rungs.append(cap)
    return tuple(rungs)


def downtime_limit_ms(memory_mib: float, dirty_rate_mibps: float, bandwidth_mibps: float,
                      params: ModelParams, disk_mib: float = 0.0) -> int:
    """The downtime limit QEMU gets for this migration: the smallest rung
    of :func:`downtime_ladder_ms` at which pre-copy is predicted to converge
    no more than the tolerance later than at the cap.

    Why not always the cap: the cap assumes the switch-over cost is fixed,
    and on a busy host it is not (on the lab, pauses of 245-711 ms under a
    500 ms budget with QEMU at 265 ms), while a guest that dirties little
    converges just as fast at 50 ms (Nova's first step paused 56-176 ms on
    the same guests). So the part of the pause QEMU controls is kept as
    small as convergence allows. A rung whose extra rounds would make the
    model throttle the guest (auto-converge) where the cap does not is
    passed over; a run that does not converge even at the cap gets the
    cap. :func:`precopy` predicts with this limit.
    """
    return _choose(memory_mib, dirty_rate_mibps, bandwidth_mibps, params, disk_mib)[0]


def downtime_tolerance_seconds(total_seconds: float, params: ModelParams) -> float:
    """How much longer than at the cap a migration may take at a smaller
    downtime limit (``downtime_tolerance_pct`` of that time, at least
    ``downtime_tolerance_seconds``)."""
    return max(total_seconds * params.downtime_tolerance_pct / 100.0,
               params.downtime_tolerance_seconds)


def bandwidth(path_mbps: float, source_health: float, dest_health: float,
              params: ModelParams, link_share: float = 1.0,
              learned_mibps: Optional[float] = None) -> tuple[float, str]:
    """Effective MiB/s of one migration and what limits it.

    ``link_share`` is the fraction of the path this migration gets when
    others cross the same links at the same time (fair share). Ties go to
    the earlier label in BOTTLENECKS, so a healthy node (h = 1.0) never
    claims to be the bottleneck when the stream cap is.

    ``learned_mibps``, when known, is what finished migrations did on this
    very path (see :func:`fit_bandwidth`): it replaces the nominal
    rate x link efficiency and the stream cap, so a path that carries less
    (or more) than the constants say is predicted from what it really did
    (labelled ``stream`` when it beats the configured stream cap, else
    ``link``). A slow NUMA node (h x the larger of the two) and a policy cap
    still apply on top.
    """
    best, label, stream = link_term(path_mbps, source_health, params, link_share,
                                    learned_mibps)
    return dest_term(best, label, stream, dest_health, params)


def link_term(path_mbps: float, source_health: float, params: ModelParams,
              link_share: float = 1.0, learned_mibps: Optional[float] = None
              ) -> tuple[float, str, float]:
    """The first half of :func:`bandwidth`: the least of the path, stream and
    source terms, with its label and the stream cap the nodes scale.

    Split off because it does not depend on the destination's node: a
    scheduler computes it once per distinct path rate, not once per host.
    """
    stream = params.stream_cap_mibps * params.multifd_connections
    if learned_mibps:
        best = learned_mibps * link_share
        label = 'stream' if best >= stream else 'link'
        # What one stream really carried here is the stream cap the NUMA
        # nodes scale.
        stream = max(stream, learned_mibps)
    else:
        best = resources.link_mibps(path_mbps, params.link_efficiency, link_share)
        label = 'link'
        if stream < best:
            best, label = stream, 'stream'
    if source_health * stream < best:
        best, label = source_health * stream, 'source-numa'
    return best, label, stream


def dest_term(best: float, label: str, stream: float, dest_health: float,
              params: ModelParams) -> tuple[float, str]:
    """The second half of :func:`bandwidth`: the destination node and the
    policy cap over what :func:`link_term` gave."""
    if dest_health * stream < best:
        best, label = dest_health * stream, 'dest-numa'
    cap = params.bandwidth_cap_mibps
    if cap and cap < best:
        best, label = cap, 'cap'
    return max(best, 0.0), label


@dataclass(frozen=True, slots=True)
class Precopy:
    """What pre-copy does at a given bandwidth."""
    rounds: int
    data_mib: float
    total_seconds: float
    downtime_ms: float
    converges: bool
    mode: str


def precopy(memory_mib: float, dirty_rate_mibps: float, bandwidth_mibps: float,
            params: ModelParams, disk_mib: float = 0.0) -> Precopy:
    """Simulate pre-copy rounds.

    Round 0 sends all memory (and the disk when storage is not shared);
    round i re-sends what the guest dirtied during round i-1, never more
    than its memory. Stop when what is left fits in the max downtime.
    ``rounds`` counts the iterative rounds, not the final stop-and-copy.
    The stop uses the limit :func:`downtime_limit_ms` gives QEMU for this
    very migration, so the prediction is of what the agent will run.

    Post-copy, when allowed, is the fallback for a pre-copy that will not
    converge, and the switch is made after the first pass (libvirt's
    --postcopy-after-precopy; Nova switches as soon as an iteration makes
    little progress): by then the dirty rate is known, and further rounds
    only delay the switch. Iterating up to max_rounds first, as this model
    once did, predicted a guest dirtying just below the bandwidth to take
    ten times longer than one dirtying just above it.
    """
    overhead_s = params.switchover_overhead_ms / 1000.0
    if bandwidth_mibps <= 0:
        return Precopy(0, 0.0, float('inf'), float('inf'), False, 'pre-copy')
    if params.allow_post_copy:
        run = precopy(memory_mib, dirty_rate_mibps, bandwidth_mibps,
                      replace(params, allow_post_copy=False), disk_mib)
        if run.converges:
            return run
        r = bandwidth_mibps
        sent = float(memory_mib) + disk_mib
        left = min(float(memory_mib), max(0.0, float(dirty_rate_mibps)) * sent / r)
        # The rest is pulled by the destination while the guest runs there.
        elapsed = params.setup_seconds + sent / r + left / r + overhead_s
        return Precopy(1, sent + left, elapsed, overhead_s * 1000.0, True, 'post-copy')
    return _choose(memory_mib, dirty_rate_mibps, bandwidth_mibps, params, disk_mib)[1]


def precopy_at_limit(memory_mib: float, dirty_rate_mibps: float, bandwidth_mibps: float,
                     params: ModelParams, limit_ms: float, disk_mib: float = 0.0) -> Precopy:
    """Pre-copy (without the post-copy fallback) with QEMU's downtime limit
    at ``limit_ms``: what the agent's monitor predicts once it has stepped
    the limit, and what :func:`downtime_limit_ms` compares."""
    return _choose(memory_mib, dirty_rate_mibps, bandwidth_mibps, params, disk_mib,
                   (limit_ms,))[1]


def _choose(memory_mib: float, dirty_rate_mibps: float, bandwidth_mibps: float,
            params: ModelParams, disk_mib: float, ladder: Optional[tuple[float, ...]] = None
            ) -> tuple[Any, Precopy]:
    """(limit, run at that limit): see :func:`downtime_limit_ms`; ``ladder``
    (ascending) defaults to :func:`downtime_ladder_ms`.

    One simulation serves every rung: the rounds do not depend on the
    limit, only when they stop. The largest limit stops first and sets the
    time allowed; each smaller one stops later, no sooner (a larger limit
    is never slower), so the first rung that exceeds the allowance ends the
    search: every smaller rung would too.
    """
    if ladder is None:
        ladder = downtime_ladder_ms(params)
    if bandwidth_mibps <= 0:
        return ladder[-1], Precopy(0, 0.0, float('inf'), float('inf'), False, 'pre-copy')
    overhead_s = params.switchover_overhead_ms / 1000.0
    r = bandwidth_mibps
    todo = len(ladder)          # rungs [0, todo) have not stopped yet
    window = r * ladder[-1] / 1000.0
    best: Any = None            # the smallest rung that qualifies so far
    allowed = 0.0
    memory = float(memory_mib)
    dirty = max(0.0, float(dirty_rate_mibps))
    sent = memory + disk_mib
    elapsed = params.setup_seconds + sent / r
    left = min(memory, dirty * (sent / r))
    rounds = 1
    throttle = 0.0
    mode = 'pre-copy'
    while True:
        while left <= window:
            todo -= 1
            downtime_s = left / r + overhead_s
            total = elapsed + downtime_s
            if best is None:
                allowed = total + downtime_tolerance_seconds(total, params)
            elif total > allowed or mode != best[5]:
                # The extra rounds of a smaller limit cost too much time, or
                # are what makes the model throttle the guest (auto-converge):
                # that costs the guest, not time.
                return _best(best)
            best = (ladder[todo], rounds, sent + left, total, downtime_s, mode)
            if not todo:
                return _best(best)
            window = r * ladder[todo - 1] / 1000.0
        diverging = dirty * (1.0 - throttle) >= r
        if rounds >= params.max_rounds or (diverging and not params.allow_auto_converge):
            if best is not None:
                return _best(best)      # the smaller rungs would not converge
            # Forced stop-and-copy: everything left goes during the pause.
            downtime_s = left / r + overhead_s
            return ladder[-1], Precopy(rounds, sent + left, elapsed + downtime_s,
                                       downtime_s * 1000.0, False, mode)
        if params.allow_auto_converge and rounds >= 2:
            if throttle == 0.0:
                throttle = params.auto_converge_initial_pct / 100.0
            else:
                throttle = min(0.99, throttle + params.auto_converge_increment_pct / 100.0)
            mode = 'auto-converge'
        t = left / r
        sent += left
        elapsed += t
        left = min(memory, dirty * (1.0 - throttle) * t)
        rounds += 1


def _best(best: tuple) -> tuple[Any, Precopy]:
    limit, rounds, data, total, downtime_s, mode = best
    return limit, Precopy(rounds, data, total, downtime_s * 1000.0, True, mode)


def source_nodes(instance: objects.Instance, source: objects.Host
                 ) -> tuple[float, Optional[objects.NumaNode]]:
    """Health of the emulator thread's current node, and a better node.

    An unknown emulator node means the thread floats over every CPU, so the
    worst node is what the migration may get: that is what pre-pinning fixes.
    The answer depends on the source only, so a scheduler asks once per
    request, not once per destination.
    """
    if not source.numa:
        return 1.0, None
    current = source.node(instance.emulator_node) if instance.emulator_node is not None else None
    current_health = current.health if current else min(n.health for n in source.numa)
    best = source.best_node()
    if best is not None and best.health > current_health + 1e-9:
        return current_health, best
    return current_health, None


def dest_health(instance: objects.Instance, dest: objects.Host) -> float:
    """Health of the destination node that will carry QEMU's main thread."""
    return dest.best_node_health(instance.memory_mib)


Rates = tuple[float, str, Optional[float], bool]
"""(MiB/s, bottleneck) of a migration, its MiB/s without pre-pinning, and
whether the link term was learned from finished migrations."""


def rates(source: tuple[float, Optional[objects.NumaNode]], dest_health: float,
          path_mbps: float, params: ModelParams, link_share: float = 1.0,
          learned_mibps: Optional[float] = None) -> Rates:
    """The bandwidths an estimate depends on.

    ``source`` is what :func:`source_nodes` returns. The first two values
    are the bandwidth and bottleneck with the emulator thread on the better
    source node (on its current node when none is better); the third is the
    bandwidth where it is now, None when pre-pinning would not help. Many
    destinations share the same rates (whenever their NUMA node is not the
    bottleneck), which is what a scheduler memoizes :func:`estimate_at` on.
    """
    current_health, better = source
    src_health = better.health if better else current_health
    mibps, label = bandwidth(path_mbps, src_health, dest_health, params, link_share,
                             learned_mibps)
    slow_mibps = None
    if better is not None:
        slow_mibps, _ = bandwidth(path_mbps, current_health, dest_health, params, link_share,
                                  learned_mibps)
    return mibps, label, slow_mibps, bool(learned_mibps)


def estimate_at(instance: objects.Instance, source: tuple[float, Optional[objects.NumaNode]],
                rates: Rates, params: ModelParams,
                runs: Optional[dict[float, Precopy]] = None) -> objects.Estimate:
    """Predict a migration of ``instance`` running at the given :func:`rates`.

    ``runs``, when given, memoizes :func:`precopy` by bandwidth: it must
    only ever see this instance and these params (one scheduling request),
    where many destinations share a bandwidth without pre-pinning.
    """
    _, better = source
    mibps, label, slow_mibps, learned = rates
    run = _precopy_at(instance, mibps, params, runs)
    pre_pin = without = None
    # Advise pre-pinning only where it changes the outcome: on a link-bound
    # path a slow source node does not matter.
    if better is not None and slow_mibps is not None and slow_mibps < mibps - 1e-9:
        pre_pin = {'node': better.id, 'cpus': better.cpus}
        slow = _precopy_at(instance, slow_mibps, params, runs)
        without = {'bandwidth_mibps': round(slow_mibps, 2),
                   'total_seconds': round(slow.total_seconds, 3),
                   'converges': slow.converges}
    return objects.Estimate(
        bandwidth_mibps=round(mibps, 2), bottleneck=label, rounds=run.rounds,
        data_mib=round(run.data_mib, 1), total_seconds=round(run.total_seconds, 3),
        downtime_ms=round(run.downtime_ms, 1), converges=run.converges,
        pre_pin=pre_pin, without_pre_pin=without, mode=run.mode, learned=learned)


def _precopy_at(instance: objects.Instance, mibps: float, params: ModelParams,
                runs: Optional[dict[float, Precopy]]) -> Precopy:
    run = runs.get(mibps) if runs is not None else None
    if run is None:
        run = precopy(instance.memory_mib, instance.dirty_rate_mibps, mibps, params,
                      instance.disk_mib)
        if runs is not None:
            runs[mibps] = run
    return run


def estimate(instance: objects.Instance, source: objects.Host, dest: objects.Host,
             path_mbps: float, params: ModelParams, link_share: float = 1.0,
             learned_mibps: Optional[float] = None) -> objects.Estimate:
    """Predict migrating ``instance`` from ``source`` to ``dest``."""
    src = source_nodes(instance, source)
    return estimate_at(instance, src,
                       rates(src, dest_health(instance, dest), path_mbps, params, link_share,
                             learned_mibps),
                       params)


def fit_bandwidth(memory_mib: float, dirty_rate_mibps: float, elapsed_seconds: Optional[float],
                  params: ModelParams, disk_mib: float = 0.0,
                  min_transfer_seconds: float = 0.2) -> Optional[float]:
    """The bandwidth at which this model reproduces a measured migration.

    Given what was migrated (memory, dirty rate, disk) and how long it
    took, find R such that ``precopy(...).total_seconds`` equals the
    measured time (bisection; the model's time falls as R grows). That is
    what a path "really did" in the model's own terms: the wire rate, but
    also everything the constants miss on that path (a link that carries
    more or less than its nominal rate x link_efficiency, a slower stream,
    pages QEMU sends as zero markers), so predicting the next migration on
    the path from it reproduces what the path did. None when the run says
    nothing about the path: too little data, or (nearly) all of its time
    was the model's fixed costs.
    """
    if not elapsed_seconds or memory_mib + disk_mib < 16.0:
        return None
    fixed = params.setup_seconds + params.switchover_overhead_ms / 1000.0
    if elapsed_seconds - fixed < min_transfer_seconds:
        return None
    plain = replace(params, allow_post_copy=False, bandwidth_cap_mibps=0.0)

    def total(r: float) -> float:
        return precopy(memory_mib, dirty_rate_mibps, r, plain, disk_mib).total_seconds

    lo, hi = 0.01, 1.0e6
    if total(hi) >= elapsed_seconds:
        return None
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        if total(mid) > elapsed_seconds:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.0 + 1e-6:
            break
    return hi


def ewma(previous: Optional[float], sample: float, weight: float) -> float:
    """Exponentially weighted mean: ``weight`` is the newest sample's share."""
    if previous is None:
        return sample
    return weight * sample + (1.0 - weight) * previous


def eta_seconds(remaining_mib: float, dirty_rate_mibps: float, bandwidth_mibps: float,
                params: ModelParams, limit_ms: Optional[float] = None) -> Optional[float]:
    """ETA of a running migration from its live job statistics.

    The same pre-copy rule applied from where the job is now: what is left
    is sent, the guest dirties more meanwhile, and so on until it fits in
    the downtime window of ``limit_ms`` (the limit QEMU has now; the cap
    when not known). None when it will not converge at this rate.
    """
    if bandwidth_mibps <= 0:
        return None
    r = bandwidth_mibps
    window = r * (downtime_cap_ms(params) if limit_ms is None else limit_ms) / 1000.0
    left = max(0.0, remaining_mib)
    eta = 0.0
    for _ in range(params.max_rounds + 1):
        if left <= window:
            return eta + left / r
        if dirty_rate_mibps >= r:
            return None
        t = left / r
        eta += t
        left = dirty_rate_mibps * t
    return None
