"""Resource arithmetic: the one definition of each quantity a decision reads.

Why one module: the scheduler's filters and weighers, the planners'
capacity book, the agent's own admission check, the conductor's host list
and the estimator all ask "how much RAM is free?", "is this host up?",
"what does this link carry?". When each restated the formula they drifted
apart (an allocation ratio applied in one place and not another, a node
health capped at 1.0 in one place and not another), and a host the
scheduler chose could be refused by its agent. Every caller uses these.

The functions are pure arithmetic on numbers. The arithmetic ones take
floats or numpy arrays alike (``+``, ``-``, ``*`` and comparisons are
elementwise on arrays), so the scheduler's column forms and the per-host
forms evaluate the very same expression, operation for operation, and get
the same doubles. Where a quantity needs a branch (a missing report, an
unknown baseline) the column form sits next to the scalar one and spells
the same rule with ``numpy.where``.
"""
from __future__ import annotations

from typing import Optional, TypeVar

import numpy as np

MIB_PER_MBIT = 1e6 / 8 / 2 ** 20
"""MiB/s carried by one megabit per second (0.1192)."""

Number = TypeVar('Number', float, np.ndarray)


def mbps_to_mibps(mbps: Number) -> Number:
    """Megabits per second (as NICs and links are rated) to MiB/s."""
    return mbps * MIB_PER_MBIT


def mibps_to_mbps(mibps: Number) -> Number:
    return mibps / MIB_PER_MBIT


# -- memory and CPUs -------------------------------------------------------

def usable_ram_mib(memory_mib: Number, ram_allocation_ratio: float,
                   reserved_host_memory_mib: float) -> Number:
    """RAM a host may hand out to guests: physical x allocation ratio,
    minus what is held back for the hypervisor (Nova's
    ``total_usable_ram_mb``)."""
    return memory_mib * ram_allocation_ratio - reserved_host_memory_mib


def free_ram_mib(memory_mib: Number, memory_used_mib: Number, ram_allocation_ratio: float,
                 reserved_host_memory_mib: float) -> Number:
    """RAM still free for another guest (negative when overcommitted)."""
    return (usable_ram_mib(memory_mib, ram_allocation_ratio, reserved_host_memory_mib)
            - memory_used_mib)


def usable_vcpus(vcpus: Number, cpu_allocation_ratio: float) -> Number:
    """Virtual CPUs a host may hand out: physical x allocation ratio."""
    return vcpus * cpu_allocation_ratio


def free_vcpus(vcpus: Number, vcpus_used: Number, cpu_allocation_ratio: float) -> Number:
    """Virtual CPUs still free for another guest (negative when over)."""
    return usable_vcpus(vcpus, cpu_allocation_ratio) - vcpus_used


# -- links -----------------------------------------------------------------

def link_mibps(mbps: Number, link_efficiency: float, share: float = 1.0) -> Number:
    """What migrations really get out of a link (or path) rated ``mbps``:
    the nominal rate in MiB/s x link efficiency (protocol overhead, TCP and
    the copy loop leave about 60 % of a 10 GbE link), x ``share``: the fraction this
    migration gets when others share the path, or ``1 - reserve`` when an
    operator keeps part of the link for other traffic."""
    return mbps_to_mibps(mbps) * link_efficiency * share


# -- host liveness ---------------------------------------------------------

def host_is_up(reported_at: Optional[float], now: float, host_down_seconds: float,
               missing_is_up: bool = False) -> bool:
    """A host is up while its last report is at most ``host_down_seconds``
    old. ``reported_at`` None: an agent that never reported is down (the
    conductor), while an offline inventory that gives no timestamps
    describes its hosts as they are (``missing_is_up=True``)."""
    if reported_at is None:
        return missing_is_up
    return now - reported_at <= host_down_seconds


def hosts_up(reported_at: np.ndarray, now: float, host_down_seconds: float,
             missing_is_up: bool = False) -> np.ndarray:
    """:func:`host_is_up` over a column; a missing report is NaN."""
    with np.errstate(invalid='ignore'):
        fresh = now - reported_at <= host_down_seconds
    return np.where(np.isnan(reported_at), missing_is_up, fresh)


def report_age_seconds(reported_at: Optional[float], now: float) -> Optional[float]:
    """Seconds since the last report; None when there never was one."""
    return None if reported_at is None else now - reported_at


# -- NUMA ------------------------------------------------------------------

def node_health(bandwidth_mibps: Optional[float], baseline_mibps: Optional[float]) -> float:
    """Measured / baseline memory write bandwidth of a NUMA node, 0..1.

    1.0 when either figure is unknown (nothing says the node is slow), and
    capped at 1.0: a node measured above its baseline is healthy, not
    "more than healthy" (a probe's noise must not outrank a truly healthy
    node, nor scale a stream above its cap)."""
    if not bandwidth_mibps or not baseline_mibps:
        return 1.0
    return min(1.0, bandwidth_mibps / baseline_mibps)


def nodes_health(bandwidth_mibps: np.ndarray, baseline_mibps: np.ndarray) -> np.ndarray:
    """:func:`node_health` over columns of nodes; an unknown figure is NaN
    or 0. ``min(1.0, x)`` keeps 1.0 for a NaN ratio, as ``x < 1.0`` does
    here; the ratio is the same IEEE division."""
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = bandwidth_mibps / baseline_mibps
    known = ((bandwidth_mibps != 0) & ~np.isnan(bandwidth_mibps)
             & (baseline_mibps != 0) & ~np.isnan(baseline_mibps))
    return np.where(known & (ratio < 1.0), ratio, 1.0)
