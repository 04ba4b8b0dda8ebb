"""The pre-copy model over many bandwidths at once, with numpy.

Why: a ten-thousand-host request has some 3,000-4,000 distinct bandwidths
(every destination whose NUMA node is the bottleneck has its own), and the
pre-copy loop of :func:`estimator.precopy` plus the rounding of
:func:`estimator.estimate_at` cost about 6 microseconds each in Python:
a fifth of the request. Here the rounds of all runs advance together, one
numpy operation per step of the loop.

The numbers are :func:`estimator.precopy`'s and :func:`estimator.estimate_at`'s
to the bit: every array operation is the same IEEE double operation, in the
same order, as the scalar code (``min(a, b)`` is ``np.minimum`` on values
that are never NaN), and rounding goes through :func:`columns.round_all`.
Bandwidths that are not finite and positive take the scalar code. Pinned by
tests/unit/scheduler/test_batch.py and test_fast_path.py.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional, cast

import numpy as np

from kvmplace.estimator import scalar as estimator
from kvmplace import objects
from kvmplace.scheduler import columns

#: Below this many runs the scalar code is faster than numpy's set-up.
MIN_BATCH = 64


def precopy_all(memory_mib: float, dirty_rate_mibps: float, bandwidths: list[float],
                params: estimator.ModelParams, disk_mib: float = 0.0
                ) -> list[estimator.Precopy]:
    """``[estimator.precopy(memory_mib, dirty_rate_mibps, r, params, disk_mib)
    for r in bandwidths]``."""
    if (len(bandwidths) < MIN_BATCH or not math.isfinite(memory_mib)
            or not math.isfinite(dirty_rate_mibps) or not math.isfinite(disk_mib)):
        return [estimator.precopy(memory_mib, dirty_rate_mibps, r, params, disk_mib)
                for r in bandwidths]
    out: list[Optional[estimator.Precopy]] = [None] * len(bandwidths)
    usable = [i for i, r in enumerate(bandwidths) if r > 0 and math.isfinite(r)]
    for i, r in enumerate(bandwidths):
        if not (r > 0 and math.isfinite(r)):
            out[i] = estimator.precopy(memory_mib, dirty_rate_mibps, r, params, disk_mib)
    if usable:
        rates = np.array([bandwidths[i] for i in usable], dtype=np.float64)
        with np.errstate(all='ignore'):
            runs = _columns(memory_mib, dirty_rate_mibps, rates, params, disk_mib)
        for i, run in zip(usable, runs):
            out[i] = run
    return cast(list[estimator.Precopy], out)      # every slot is filled above


def _columns(memory_mib: float, dirty_rate_mibps: float, r: np.ndarray,
             params: estimator.ModelParams, disk_mib: float) -> list[estimator.Precopy]:
    """The vectorized body of :func:`estimator.precopy` for finite r > 0."""
    overhead_s = params.switchover_overhead_ms / 1000.0
    if params.allow_post_copy:
        runs = _columns(memory_mib, dirty_rate_mibps, r, replace(params, allow_post_copy=False),
                        disk_mib)
        first = float(memory_mib) + disk_mib
        rest = np.minimum(float(memory_mib), max(0.0, float(dirty_rate_mibps)) * first / r)
        elapsed = (params.setup_seconds + first / r + rest / r + overhead_s).tolist()
        data = (first + rest).tolist()
        return [run if run.converges else
                estimator.Precopy(1, data[i], elapsed[i], overhead_s * 1000.0, True, 'post-copy')
                for i, run in enumerate(runs)]
    # Every rate at every rung of the downtime ladder, one column each
    # (element i x m + j is rate i at rung j), then each rate's rung is
    # chosen as estimator._choose does.
    ladder = estimator.downtime_ladder_ms(params)
    m = len(ladder)
    cols = _rungs(memory_mib, dirty_rate_mibps, np.repeat(r, m),
                  np.tile(np.array(ladder, dtype=np.float64), len(r)), params, disk_mib)
    rounds, data, total, down, conv, auto = (a.reshape(len(r), m) for a in cols)
    at_cap = total[:, -1]
    allowed = at_cap + np.maximum(at_cap * params.downtime_tolerance_pct / 100.0,
                                  params.downtime_tolerance_seconds)
    fits = conv & (total <= allowed[:, None]) & (auto == auto[:, -1:])
    # The smallest rung of the run of fitting rungs that ends at the cap:
    # where the scalar search stops.
    block = np.logical_and.accumulate(fits[:, ::-1], axis=1)[:, ::-1]
    pick = np.where(conv[:, -1], np.argmax(block, axis=1), m - 1)
    rows = np.arange(len(r))
    return [estimator.Precopy(k, d, s, w, c, 'auto-converge' if a else 'pre-copy')
            for k, d, s, w, c, a in zip(rounds[rows, pick].tolist(), data[rows, pick].tolist(),
                                        total[rows, pick].tolist(), down[rows, pick].tolist(),
                                        conv[rows, pick].tolist(), auto[rows, pick].tolist())]


def _rungs(memory_mib: float, dirty_rate_mibps: float, r: np.ndarray, limits_ms: np.ndarray,
           params: estimator.ModelParams, disk_mib: float) -> tuple[np.ndarray, ...]:
    """The vectorized pre-copy loop of :func:`estimator._choose`: pre-copy of each
    rate ``r[i]`` with QEMU's limit at ``limits_ms[i]``, as columns
    (rounds, data, total, downtime, converges, auto-converged)."""
    overhead_s = params.switchover_overhead_ms / 1000.0
    n = len(r)
    window = r * limits_ms / 1000.0
    memory = float(memory_mib)
    dirty = max(0.0, float(dirty_rate_mibps))
    sent = np.full(n, memory + disk_mib)
    elapsed = params.setup_seconds + sent / r
    left = np.minimum(memory, dirty * (sent / r))
    rounds = np.ones(n, dtype=np.int64)
    throttle: np.ndarray = np.zeros(n)
    auto = np.zeros(n, dtype=bool)
    # Results, filled in as each run ends.
    res_rounds = np.zeros(n, dtype=np.int64)
    res_data = np.zeros(n)
    res_total = np.zeros(n)
    res_down = np.zeros(n)
    res_conv = np.zeros(n, dtype=bool)
    res_auto = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    initial = params.auto_converge_initial_pct / 100.0
    increment = params.auto_converge_increment_pct / 100.0

    def finish(mask: np.ndarray, converged: bool) -> None:
        downtime_s = left[mask] / r[mask] + overhead_s
        res_rounds[mask] = rounds[mask]
        res_data[mask] = sent[mask] + left[mask]
        res_total[mask] = elapsed[mask] + downtime_s
        res_down[mask] = downtime_s * 1000.0
        res_conv[mask] = converged
        res_auto[mask] = auto[mask]

    while True:
        going = active & (left > window)
        finish(active & ~going, True)
        active = going
        if not active.any():
            break
        diverging = dirty * (1.0 - throttle) >= r
        stop = rounds >= params.max_rounds
        if not params.allow_auto_converge:
            stop = stop | diverging
        stop &= active
        if stop.any():
            finish(stop, False)
            active = active & ~stop
            if not active.any():
                break
        if params.allow_auto_converge:
            step = active & (rounds >= 2)
            throttle = np.where(step & (throttle == 0.0), initial,
                                np.where(step, np.minimum(0.99, throttle + increment),
                                         throttle))
            auto |= step
        t = left / r
        sent = sent + left
        elapsed = elapsed + t
        left = np.minimum(memory, dirty * (1.0 - throttle) * t)
        rounds = rounds + 1
    return res_rounds, res_data, res_total, res_down, res_conv, res_auto


def estimates_at(instance: objects.Instance,
                 source: tuple[float, Optional[objects.NumaNode]],
                 rates: list[estimator.Rates], params: estimator.ModelParams,
                 runs: dict[float, estimator.Precopy]) -> list[objects.Estimate]:
    """``[estimator.estimate_at(instance, source, r, params, runs) for r in rates]``.

    ``runs`` memoizes pre-copy runs by bandwidth as in estimate_at, and is
    filled with the runs made here.
    """
    if len(rates) < MIN_BATCH:
        return [estimator.estimate_at(instance, source, r, params, runs) for r in rates]
    _, better = source
    pinned = [better is not None and slow is not None and slow < mibps - 1e-9
              for mibps, _, slow, _ in rates]
    wanted = {r[0] for r in rates}
    wanted.update(cast(float, r[2]) for r, pin in zip(rates, pinned) if pin)
    missing = [b for b in wanted if b not in runs]
    for b, run in zip(missing, precopy_all(instance.memory_mib, instance.dirty_rate_mibps,
                                           missing, params, instance.disk_mib)):
        runs[b] = run
    main = [runs[r[0]] for r in rates]
    bandwidth = columns.round_all([r[0] for r in rates], 2)
    data = columns.round_all([run.data_mib for run in main], 1)
    total = columns.round_all([run.total_seconds for run in main], 3)
    downtime = columns.round_all([run.downtime_ms for run in main], 1)
    without: dict[float, tuple[float, float, bool]] = {}
    out = []
    for i, (_mibps, label, slow_mibps, learned) in enumerate(rates):
        run = main[i]
        pre_pin = without_pre_pin = None
        if pinned[i]:
            assert better is not None and slow_mibps is not None   # pinned says so
            pre_pin = {'node': better.id, 'cpus': better.cpus}
            slow = without.get(slow_mibps)
            if slow is None:
                slow_run = runs[slow_mibps]
                slow = without[slow_mibps] = (round(slow_mibps, 2),
                                              round(slow_run.total_seconds, 3),
                                              slow_run.converges)
            without_pre_pin = {'bandwidth_mibps': slow[0], 'total_seconds': slow[1],
                               'converges': slow[2]}
        out.append(objects.Estimate(
            bandwidth_mibps=bandwidth[i], bottleneck=label, rounds=run.rounds,
            data_mib=data[i], total_seconds=total[i], downtime_ms=downtime[i],
            converges=run.converges, pre_pin=pre_pin, without_pre_pin=without_pre_pin,
            mode=run.mode, learned=learned))
    return out
