"""Turn a set of moves into a concrete, link-aware schedule.

Existing tools migrate one or two guests at a time, a fixed count. Here the
parallelism follows from the network: a migration starts as soon as every
link on its path has room for it, at the bandwidth that room allows, so the
source's uplink is kept full and no link is ever asked for more than it
carries. Each migration keeps its bandwidth while it runs (that is what
``virsh migrate-setspeed`` would pin) and its duration comes from the
pre-copy model at that bandwidth, so predictions stay consistent with
``kvmplace estimate``.

Order: longest first (LPT), which keeps the tail of a schedule short; and a
migration may pick, among its acceptable destinations, the one on which it
would finish first given what already runs.

Scale: a drain of 50 guests on 10,000 hosts asks "where would this guest
end first?" of some 7,000 destinations per guest at every event, which
examined one destination at a time took minutes. A move whose candidates
come with the scheduler's estimates (``Move.estimates``) is examined as
columns instead (:class:`_Columns`): a destination's rate is the least of
its solo rate and its path's room, the room of every path from the source
comes from one pass over the widest-path tree, and pre-copy runs are
memoized by rate, so the choice costs a few array operations. The winner
is then rebuilt by the one-destination code and must match, else that move
falls back to it. Plans are the same as examining every candidate (pinned
by tests/unit/planner/test_bounded.py against the exhaustive reference).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from kvmplace import estimator
from kvmplace import objects
from kvmplace import resources
from kvmplace import topology as topo
from kvmplace.estimator import batch
from kvmplace.planner import concurrency as conc

LOG = logging.getLogger(__name__)

#: A migration is not started on a sliver of a link: below this share of
#: what it could get alone it waits for a running migration to finish.
MIN_USEFUL_SHARE = 0.25

#: A move with fewer candidates is examined one candidate at a time: the
#: columns' set-up costs more than it saves.
COLUMN_MIN_CANDIDATES = 48


@dataclass
class Move:
    """A guest to move, with the destinations it may take, best first.

    ``estimates``, when given, are the scheduler's estimates of the
    candidates (``select``'s ``ranked[i]['estimate']``, in the same order):
    with them the candidates are examined as columns (see the module doc).
    """
    instance: objects.Instance
    candidates: list[str]
    solo_seconds: float = 0.0
    estimates: Optional[list[dict]] = None


@dataclass
class Planned:
    instance: str
    source: str
    dest: str
    start_seconds: float
    predicted_seconds: float
    predicted_downtime_ms: float
    bandwidth_mibps: float
    bottleneck: str
    links: tuple = ()
    converges: bool = True
    data_mib: float = 0.0
    pre_pin: Optional[dict] = None
    bandwidth_steps: list = field(default_factory=list)
    solo_mibps: float = 0.0
    #: What it holds of its links as it starts: its rate, or in a
    #: shared-source pool its share of the pool's pace (:meth:`Scheduler._hold`).
    reserve_mibps: float = 0.0

    @property
    def end_seconds(self) -> float:
        return self.start_seconds + self.predicted_seconds

    def to_dict(self) -> dict:
        return {'instance': self.instance, 'source': self.source, 'dest': self.dest,
                'start_seconds': round(self.start_seconds, 3),
                # start + predicted gives exactly the (rounded) end, so plans
                # printed to the millisecond still line up end to start.
                'predicted_seconds': round(round(self.end_seconds, 3)
                                           - round(self.start_seconds, 3), 3),
                'predicted_downtime_ms': round(self.predicted_downtime_ms, 1),
                'bandwidth_mibps': round(self.bandwidth_mibps, 2),
                'bottleneck': self.bottleneck, 'converges': self.converges,
                'data_mib': round(self.data_mib, 1), 'pre_pin': self.pre_pin,
                'links': [list(link) for link in self.links],
                'bandwidth_steps': self.bandwidth_steps,
                'solo_mibps': round(self.solo_mibps, 2),
                'reserve_mibps': round(self.reserve_mibps or self.bandwidth_mibps, 2)}


@dataclass
class LinkLedger:
    """Effective MiB/s in use on each link at the current time."""
    capacity: Callable[[tuple], float]
    used: dict = field(default_factory=dict)
    #: Bumped on every change, so views derived from ``used`` know when
    #: they are stale.
    version: int = 0

    def room(self, links) -> float:
        if not links:
            return float('inf')
        return min(self.capacity(link) - self.used.get(link, 0.0) for link in links)

    def take(self, links, mibps: float) -> None:
        self.version += 1
        for link in links:
            self.used[link] = self.used.get(link, 0.0) + mibps

    def give(self, links, mibps: float) -> None:
        self.version += 1
        for link in links:
            self.used[link] = max(0.0, self.used.get(link, 0.0) - mibps)


def link_capacity(topology: topo.Topology, params: estimator.ModelParams,
                  reserve_fraction: float = 0.0) -> Callable[[tuple], float]:
    def capacity(link: tuple) -> float:
        return resources.link_mibps(topology.capacity_mbps(link), params.link_efficiency,
                                    1.0 - reserve_fraction)
    return capacity


class _Running:
    """A migration under way in the simulation: its rate may rise over time.

    With a :class:`concurrency.Concurrency`, it first spends its fixed
    seconds (the drain's start lag and the record's overhead: links held,
    nothing copied), then copies at its rate slowed by ``factor`` (streams
    sharing its hosts) - or, with ``shared_source``, as a member of its
    source's pool, which sets ``pool_end`` (see :func:`concurrency.pool_ends`)."""

    def __init__(self, plan: Planned, solo_mibps: float, inst: objects.Instance,
                 params: estimator.ModelParams, fixed_seconds: float = 0.0):
        self.plan = plan
        self.solo = solo_mibps
        self.inst = inst
        self.params = params
        self.rate = 0.0
        #: MiB/s it holds on its links in the ledger: ``rate``, except in a
        #: shared-source pool (:meth:`Scheduler._hold`).
        self.held = 0.0
        self.factor = 1.0
        self.fixed_left = max(0.0, fixed_seconds)
        self.done = 0.0          # fraction of the work done
        self.since = plan.start_seconds
        self.steps: list[list[float]] = []
        self._durations: dict[float, float] = {}
        self._data: dict[float, float] = {}
        self.pool_end: Optional[float] = None

    def duration_at(self, mibps: float) -> float:
        # end_time() is asked at every examination of every pending move.
        seconds = self._durations.get(mibps)
        if seconds is None:
            self._run_at(mibps)
            seconds = self._durations[mibps]
        return seconds

    def data_at(self, mibps: float) -> float:
        """MiB its pre-copy sends at ``mibps`` (dirty pages sent again included)."""
        data = self._data.get(mibps)
        if data is None:
            self._run_at(mibps)
            data = self._data[mibps]
        return data

    def _run_at(self, mibps: float) -> None:
        run = estimator.precopy(self.inst.memory_mib, self.inst.dirty_rate_mibps, mibps,
                                self.params, self.inst.disk_mib)
        self._durations[mibps] = run.total_seconds
        self._data[mibps] = run.data_mib

    def advance(self, now: float) -> None:
        elapsed = now - self.since
        if elapsed > 0 and self.fixed_left > 0:
            spent = min(self.fixed_left, elapsed)
            self.fixed_left -= spent
            elapsed -= spent
        if self.rate > 0 and elapsed > 0:
            self.done += elapsed / self.duration_at(self.rate * self.factor)
        self.since = now

    def set_rate(self, now: float, mibps: float) -> None:
        if abs(mibps - self.rate) > 1e-9:
            self.rate = mibps
            self.steps.append([round(now, 3), round(mibps, 2)])

    def work(self) -> float:
        """Solo seconds of pre-copy left at its rate and ``factor``."""
        return max(0.0, 1.0 - self.done) * self.duration_at(self.rate * self.factor)

    def end_time(self) -> float:
        if self.pool_end is not None:
            return self.pool_end
        return (self.since + self.fixed_left
                + max(0.0, 1.0 - self.done) * self.duration_at(self.rate * self.factor))


class _Busy(_Running):
    """A migration already running outside this plan: it holds its links
    at its rate until its expected end, and is not part of the output."""

    def __init__(self, name: str, links: tuple, mibps: float, until_seconds: float):
        plan = Planned(name, '', '', 0.0, until_seconds, 0.0, mibps, 'busy', tuple(links))
        self.plan = plan
        self.solo = self.rate = self.held = mibps
        self.until = max(0.0, until_seconds)
        self.done = 0.0
        self.since = 0.0
        self.steps = []
        self.factor = 1.0
        self.fixed_left = 0.0
        self.pool_end = None

    def advance(self, now: float) -> None:
        self.since = now

    def end_time(self) -> float:
        return self.until


class Scheduler:
    """Event-driven list scheduling of moves over the topology.

    A migration starts when its path has room for at least a useful share
    of what it could get alone; whenever one ends, the ones still running
    are topped up (oldest first) to what they could get alone, as far as
    the links allow - what ``virsh migrate-setspeed`` does on a real drain.
    A migration's progress is tracked as a fraction of its pre-copy work at
    its current rate, so each segment follows the estimator exactly.
    """

    def __init__(self, inventory: objects.Inventory, topology: topo.Topology,
                 params: estimator.ModelParams, reserve_fraction: float = 0.0,
                 concurrency: conc.Concurrency = conc.NONE):
        self.inventory = inventory
        self.topology = topology
        self.params = params
        self.concurrency = concurrency
        self.ledger = LinkLedger(link_capacity(topology, params, reserve_fraction))
        self._trees: dict[str, _Tree] = {}
        self._columns: dict[int, Optional[_Columns]] = {}
        self._runs: dict[str, dict[float, tuple[float, bool]]] = {}
        #: Moves whose column choice did not match the one-destination code
        #: (each then fell back to it); tests expect none.
        self.fallbacks = 0

    # -- columns --------------------------------------------------------------
    def _columns_of(self, move: Move) -> Optional[_Columns]:
        key = id(move)
        if key not in self._columns:
            cols = None
            if (move.estimates is not None and len(move.estimates) == len(move.candidates)
                    and len(move.candidates) >= COLUMN_MIN_CANDIDATES
                    and move.instance.host in self.inventory.hosts):
                source = move.instance.host
                tree = self._trees.get(source)
                if tree is None:
                    tree = self._trees[source] = _Tree(self.topology, source,
                                                       self.ledger.capacity)
                cols = _Columns(self, move, tree)
            self._columns[key] = cols
        return self._columns[key]

    def runs_at(self, inst: objects.Instance, rates: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Total seconds and convergence of pre-copy at each of ``rates``:
        :func:`estimator.precopy`'s numbers (batch.precopy_all gives them to
        the bit), memoized per guest."""
        memo = self._runs.setdefault(inst.name, {})
        values = rates.tolist()
        missing = sorted({v for v in values if v not in memo})
        if missing:
            for v, run in zip(missing, batch.precopy_all(inst.memory_mib, inst.dirty_rate_mibps,
                                                         missing, self.params, inst.disk_mib)):
                memo[v] = (run.total_seconds, run.converges)
        pairs = [memo[v] for v in values]
        return (np.array([p[0] for p in pairs], dtype=np.float64),
                np.array([p[1] for p in pairs], dtype=bool))

    def _best(self, move: Move, now: float, fits: Callable[[objects.Instance, str], bool]
              ) -> Optional[tuple[Planned, float]]:
        """The candidate on which ``move`` would end first if started now
        (the best-ranked among equals), or None."""
        cols = self._columns_of(move)
        if cols is not None:
            found = cols.best(now, fits)
            if found is None:
                return None
            dest, end = found
            option = self._option(move.instance, dest, now)
            if option is not None and option[0].end_seconds == end:
                return option
            self.fallbacks += 1
            LOG.debug('planner: columns chose %s for %s at %.3f s, which the direct '
                      'estimate does not confirm; examining every candidate',
                      dest, move.instance.name, now)
            self._columns[id(move)] = None
        best = None
        for dest in move.candidates:
            if not fits(move.instance, dest):
                continue
            option = self._option(move.instance, dest, now)
            if option and (best is None or option[0].end_seconds < best[0].end_seconds):
                best = option
        return best

    def _option(self, inst: objects.Instance, dest_name: str, now: float
                ) -> Optional[tuple[Planned, float]]:
        """Start ``inst`` towards ``dest_name`` now: at what rate, until when?"""
        source = self.inventory.hosts[inst.host]
        dest = self.inventory.hosts[dest_name]
        path = self.topology.widest_path(source.name, dest_name)
        if path is None:
            return None
        solo = estimator.estimate(inst, source, dest, path.mbps, self.params,
                                  learned_mibps=self.inventory.path_rates.get(
                                      (source.name, dest_name)))
        mibps = min(solo.bandwidth_mibps, self.ledger.room(path.links))
        if mibps <= 0 or mibps < MIN_USEFUL_SHARE * solo.bandwidth_mibps:
            return None
        run = estimator.precopy(inst.memory_mib, inst.dirty_rate_mibps, mibps, self.params,
                                inst.disk_mib)
        if not run.converges:
            return None
        label = solo.bottleneck if mibps >= solo.bandwidth_mibps - 1e-9 else 'link'
        return (Planned(inst.name, source.name, dest_name, now, run.total_seconds,
                        run.downtime_ms, mibps, label, path.links, run.converges,
                        run.data_mib, solo.pre_pin), solo.bandwidth_mibps)

    def _better_to_wait(self, move: Move, now_option: Planned, running: list[_Running],
                        fits: Callable[[objects.Instance, str], bool]) -> bool:
        """Would waiting for a busy destination beat starting now?

        What can start now may be a slow link that happens to be free: a
        guest started over 200 Mbit/s while three 1 Gbit/s links finish in
        seconds ends long after it would have by waiting (seen on the lab: a
        384 MiB guest took 27 s to the free slow host, the whole drain
        waited for it, instead of ~5 s more on a fast one). For each other
        candidate, the time its path frees (the first end among the
        migrations sharing a link with it) plus its solo time; wait if one
        of those ends sooner.
        """
        cols = self._columns_of(move)
        if cols is not None:
            return cols.waits(now_option, running, fits)
        inst = move.instance
        source = self.inventory.hosts[inst.host]
        for dest_name in move.candidates:
            if dest_name == now_option.dest or not fits(inst, dest_name):
                continue
            path = self.topology.widest_path(source.name, dest_name)
            if path is None:
                continue
            solo = estimator.estimate(inst, source, self.inventory.hosts[dest_name], path.mbps,
                                      self.params, learned_mibps=self.inventory.path_rates.get(
                                          (source.name, dest_name)))
            if not solo.converges:
                continue
            full = {link for link in path.links
                    if self.ledger.room((link,)) < MIN_USEFUL_SHARE * solo.bandwidth_mibps}
            sharing = [r for r in running if full & set(r.plan.links)]
            if not sharing:
                continue
            free_at = min(r.end_time() for r in sharing)
            if free_at + solo.total_seconds < now_option.end_seconds - 1e-6:
                return True
        return False

    def _top_up(self, running: list[_Running], now: float) -> None:
        """Give freed room to running migrations, oldest first; never less."""
        for r in sorted(running, key=lambda r: (r.plan.start_seconds, r.plan.instance)):
            if isinstance(r, _Busy):
                continue
            extra = min(r.solo - r.rate, self.ledger.room(r.plan.links))
            if extra > 1e-9:
                self.ledger.take(r.plan.links, extra)
                r.held += extra
                r.set_rate(now, r.rate + extra)

    def run(self, moves: list[Move], fits: Callable[[objects.Instance, str], bool],
            claim: Callable[[objects.Instance, str], None],
            busy: tuple = ()) -> tuple[list[Planned], list[dict]]:
        """Schedule ``moves``; ``fits``/``claim`` check and consume capacity.

        ``busy`` lists migrations already under way as (name, links, MiB/s,
        seconds left): a re-plan in the middle of a drain must leave them
        their share of the links until they end.
        """
        pending = sorted(moves, key=lambda m: (-m.solo_seconds, m.instance.name))
        fixed = self.concurrency.start_lag_seconds + self.concurrency.record_overhead_seconds
        finished: list[Planned] = []
        unplaced: list[dict] = []
        running: list[_Running] = []
        for name, links, mibps, left in busy:
            b = _Busy(name, tuple(tuple(link) for link in links), mibps, left)
            self.ledger.take(b.plan.links, mibps)
            running.append(b)
        now = 0.0
        while pending or running:
            for move in list(pending):
                best = self._best(move, now, fits)
                if best is None:
                    continue
                if self._better_to_wait(move, best[0], running, fits):
                    continue
                plan, solo = best
                claim(move.instance, plan.dest)
                plan.solo_mibps = solo
                r = _Running(plan, solo, move.instance, self.params, fixed)
                r.set_rate(now, plan.bandwidth_mibps)
                self.ledger.take(plan.links, r.rate)
                r.held = r.rate
                running.append(r)
                pending.remove(move)
                if self.concurrency.shared_source:
                    # Its pool's members now hold their share of the pool's
                    # pace, which may leave room for the next move.
                    self._contend(running)
            self._contend(running)
            for r in running:
                if not r.plan.reserve_mibps and not isinstance(r, _Busy):
                    r.plan.reserve_mibps = r.held     # what it holds as it starts
            if not any(not isinstance(r, _Busy) for r in running) and not pending:
                break
            if not running:
                for move in pending:
                    ok = [d for d in move.candidates if fits(move.instance, d)]
                    if not move.candidates:
                        reason = 'no host passes the filters'
                    elif not ok:
                        reason = 'no destination with room left once the other guests are placed'
                    else:
                        reason = 'would not converge at the bandwidth any destination offers'
                    unplaced.append({'instance': move.instance.name, 'reason': reason})
                break
            # Advance to the next end; finish it; top up the others.
            nxt = min(running, key=lambda r: (r.end_time(), r.plan.instance))
            now = max(now, nxt.end_time())
            self._advance(running, now)
            ended = [r for r in running if r is nxt or r.done >= 1.0 - 1e-9]
            for r in ended:
                running.remove(r)
                self.ledger.give(r.plan.links, r.held)
                if not isinstance(r, _Busy):
                    finished.append(self._close(r, now))
            self._top_up(running, now)
            self._contend(running)
        return finished, unplaced

    def _advance(self, running: list[_Running], now: float) -> None:
        """Every running migration's progress up to ``now``."""
        if not self.concurrency.shared_source:
            for r in running:
                r.advance(now)
            return
        for r in running:
            if isinstance(r, _Busy):
                r.advance(now)
        for members, speed in self._pools(running):
            since = members[0].since
            _, left = conc.pool_ends([r.since + r.fixed_left for r in members],
                                 [r.work() for r in members], since, now, speed)
            for r, work in zip(members, left):
                full = r.duration_at(r.rate * r.factor)
                r.done = 1.0 - work / full if full > 0 else 1.0
                r.fixed_left = max(0.0, r.fixed_left - (now - r.since))
                r.since = now

    def _pools(self, running: list[_Running]
               ) -> list[tuple[list[_Running], Callable[[float, float], float]]]:
        """The shared-source pools (planner/concurrency.py): the planned
        migrations grouped by source, each with its speed, which counts
        the migrations of a re-plan's ``busy`` list on that source."""
        model = self.concurrency
        known = self.inventory.hosts
        by_source: dict[str, list[_Running]] = {}
        outside: dict[str, int] = {}
        for r in running:
            if isinstance(r, _Busy):
                for h in {h for link in r.plan.links for h in link if h in known}:
                    outside[h] = outside.get(h, 0) + 1
            else:
                by_source.setdefault(r.plan.source, []).append(r)
        return [(members, functools.partial(model.pool_speed, outside=outside.get(source, 0)))
                for source, members in by_source.items()]

    def _contend(self, running: list[_Running]) -> None:
        """Slow each stream by the others on its hosts (every one has just
        been advanced to now, so the new factor applies from now on); with
        a shared source, set each pool member's end instead."""
        model = self.concurrency
        if model.shared_source:
            for members, speed in self._pools(running):
                for r in members:
                    r.factor = model.pace
                ends, _ = conc.pool_ends([r.since + r.fixed_left for r in members],
                                     [r.work() for r in members], members[0].since,
                                     math.inf, speed)
                for r, end in zip(members, ends):
                    r.pool_end = end
                    self._hold(r, alone=len(members) == 1)
            return
        if not model.contention and model.pace == 1.0:
            return
        known = self.inventory.hosts
        # A migration running outside the plan is known by its links only.
        hosts = [{h for link in r.plan.links for h in link if h in known}
                 if isinstance(r, _Busy) else {r.plan.source, r.plan.dest} for r in running]
        for r, mine in zip(running, hosts):
            if isinstance(r, _Busy):
                continue
            streams = sum(1 for other in hosts if mine & other)
            r.factor = model.factor(streams)

    def _hold(self, r: _Running, alone: bool) -> None:
        """Hold on ``r``'s links what it sends as a pool member: its data
        left over the pool's time left, never more than its rate; alone,
        its rate (as the per-stream model holds it).

        A pool's streams are paced by the source's CPUs, not by their
        links (planner/concurrency.py): on the lab five streams out of one
        host each sent 25-35 MiB/s while their 1 Gbit/s links carry 108.
        Holding each link at the member's full rate kept a second guest
        off every destination already receiving one, so a drain of five
        guests over four fast hosts ran four, then one: 15 s where all
        five at once took 12 s (plain libvirt, doc/source/benchmarks/drain.rst).
        """
        left = (r.pool_end or 0.0) - r.since - r.fixed_left
        if not alone and left > 1e-9:
            want = min(r.rate, max(0.0, 1.0 - r.done) * r.data_at(r.rate * r.factor) / left)
        else:
            want = r.rate
        if want > r.held + 1e-9:
            self.ledger.take(r.plan.links, want - r.held)
        elif want < r.held - 1e-9:
            self.ledger.give(r.plan.links, r.held - want)
        r.held = want

    def _close(self, r: _Running, now: float) -> Planned:
        p = r.plan
        final = estimator.precopy(r.inst.memory_mib, r.inst.dirty_rate_mibps, r.rate,
                                  self.params, r.inst.disk_mib)
        # Its record starts once the drain has noticed the room (start lag).
        p.start_seconds += self.concurrency.start_lag_seconds
        p.predicted_seconds = now - p.start_seconds
        p.predicted_downtime_ms = final.downtime_ms
        if len(r.steps) > 1:
            # Time-weighted mean rate; the steps say how it changed.
            edges = [s[0] for s in r.steps[1:]] + [now]
            total = sum(rate * (end - s[0]) for s, end, rate in
                        zip(r.steps, edges, (s[1] for s in r.steps)))
            p.bandwidth_mibps = total / p.predicted_seconds if p.predicted_seconds else r.rate
            p.bottleneck = 'link'
        p.bandwidth_steps = r.steps
        return p


class _Tree:
    """The widest paths from one source, as the tree they form.

    Every path :meth:`Topology.widest_path` gives from the source follows
    the predecessors of :meth:`Topology.widest_from`, so a link is on the
    path to ``d`` exactly when it is the tree edge above one of ``d``'s
    ancestors. Nodes are numbered depth first, so the destinations below a
    link are one slice, and a path's room (:meth:`LinkLedger.room`: the
    least of capacity - use over its links) is, for all destinations at
    once, the static least capacity along the path lowered, slice by slice,
    by each link in use.
    """

    def __init__(self, topology: topo.Topology, source: str,
                 capacity: Callable[[tuple], float]):
        _, pred = topology.widest_from(source)
        children: dict[str, list[str]] = {}
        for node, parent in pred.items():
            children.setdefault(parent, []).append(node)
        self.first: dict[str, int] = {}
        self.after: dict[str, int] = {}
        order: list[str] = []
        stack: list[tuple[str, bool]] = [(source, False)]
        while stack:
            node, closing = stack.pop()
            if closing:
                self.after[node] = len(order)
                continue
            self.first[node] = len(order)
            order.append(node)
            stack.append((node, True))
            stack.extend((child, False) for child in children.get(node, ()))
        static = np.empty(len(order), dtype=np.float64)
        static[0] = math.inf
        for i, node in enumerate(order[1:], 1):
            parent = pred[node]
            static[i] = min(static[self.first[parent]], capacity(topo.link_id(parent, node)))
        self.static = static
        #: tree link -> the node below it
        self.below = {topo.link_id(parent, node): node for node, parent in pred.items()}
        self._version = -1
        self._room = static
        self._levels = np.unique(static, return_inverse=True)

    def rooms(self, ledger: LinkLedger) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per node (depth-first order) the room of its path now; and the
        distinct rooms with each node's index among them."""
        if ledger.version != self._version:
            room = self.static.copy()
            for link, used in ledger.used.items():
                node = self.below.get(link)
                if node is None or used == 0.0:
                    continue      # off every path from here, or capacity - 0.0
                part = room[self.first[node]:self.after[node]]
                np.minimum(part, ledger.capacity(link) - used, out=part)
            self._room = room
            self._levels = np.unique(room, return_inverse=True)
            self._version = ledger.version
        levels, index = self._levels
        return self._room, levels, index


class _Columns:
    """One move's reachable candidates as columns, in depth-first order of
    the source's tree (each link's destinations contiguous), with their
    rank, solo rate, solo time and convergence from the scheduler's
    estimates, and the pre-copy run at the solo rate."""

    def __init__(self, sched: Scheduler, move: Move, tree: _Tree):
        self.sched = sched
        self.inst = move.instance
        self.tree = tree
        first = tree.first
        source = move.instance.host
        rows = sorted((first[dest], rank, dest, est) for rank, (dest, est)
                      in enumerate(zip(move.candidates, move.estimates or ()))
                      if dest in first and dest != source)
        self.names = [row[2] for row in rows]
        self.pos = np.array([row[0] for row in rows], dtype=np.int64)
        self.rank = np.array([row[1] for row in rows], dtype=np.int64)
        self.solo = np.array([_number(row[3]['bandwidth_mibps']) for row in rows],
                             dtype=np.float64)
        self.solo_seconds = np.array([_number(row[3]['total_seconds']) for row in rows],
                                     dtype=np.float64)
        self.solo_converges = np.array([bool(row[3]['converges']) for row in rows], dtype=bool)
        self.full_seconds, self.full_converges = sched.runs_at(self.inst, self.solo)

    def best(self, now: float, fits: Callable[[objects.Instance, str], bool]
             ) -> Optional[tuple[str, float]]:
        """``Scheduler._option``'s choice over every candidate, as columns:
        the least end, the best rank among equal ends, that ``fits``."""
        if not self.names:
            return None
        sched = self.sched
        node_room, levels, index = self.tree.rooms(sched.ledger)
        room = node_room[self.pos]
        solo = self.solo
        # mibps = min(solo, room): the room where it is the smaller.
        squeezed = room < solo
        if squeezed.any():
            level_seconds, level_converges = sched.runs_at(self.inst, levels)
            at = index[self.pos]
            seconds = np.where(squeezed, level_seconds[at], self.full_seconds)
            converges = np.where(squeezed, level_converges[at], self.full_converges)
            mibps = np.where(squeezed, room, solo)
        else:
            seconds, converges, mibps = self.full_seconds, self.full_converges, solo
        usable = converges & (mibps > 0) & ~(mibps < MIN_USEFUL_SHARE * solo)
        end = np.where(usable, now + seconds, math.inf)
        while True:
            least = float(end.min())
            if not least < math.inf:
                return None
            tied = np.flatnonzero(end == least)
            for i in tied[np.argsort(self.rank[tied], kind='stable')].tolist():
                if fits(self.inst, self.names[i]):
                    return self.names[i], least
            end[tied] = math.inf

    def waits(self, option: Planned, running: list[_Running],
              fits: Callable[[objects.Instance, str], bool]) -> bool:
        """``Scheduler._better_to_wait`` over every candidate, as columns."""
        tree = self.tree
        ledger = self.sched.ledger
        ends: dict[tuple, float] = {}
        for r in running:
            end = None
            for link in r.plan.links:
                if link in tree.below:
                    if end is None:
                        end = r.end_time()
                    ends[link] = min(ends.get(link, math.inf), end)
        if not ends:
            return False
        free_at = np.full(len(self.names), math.inf)
        for link, end in ends.items():
            node = tree.below[link]
            lo = int(np.searchsorted(self.pos, tree.first[node]))
            hi = int(np.searchsorted(self.pos, tree.after[node]))
            if lo >= hi:
                continue
            full = ledger.room((link,)) < MIN_USEFUL_SHARE * self.solo[lo:hi]
            part = free_at[lo:hi]
            np.minimum(part, np.where(full, end, math.inf), out=part)
        sooner = self.solo_converges & (free_at + self.solo_seconds
                                         < option.end_seconds - 1e-6)
        for i in np.flatnonzero(sooner).tolist():
            name = self.names[i]
            if name != option.dest and fits(self.inst, name):
                return True
        return False


def _number(value) -> float:
    """An estimate's figure; JSON's null stands for infinity."""
    return math.inf if value is None else float(value)


def makespan(planned: list[Planned]) -> float:
    return max((p.end_seconds for p in planned), default=0.0)


def link_usage(planned: list[Planned]) -> dict[tuple, list[tuple[float, float]]]:
    """Per link, the step function of MiB/s in use: [(time, mibps), ...]."""
    events: dict[tuple, list[tuple[float, float]]] = {}
    for p in planned:
        for link in p.links:
            events.setdefault(link, []).append((p.start_seconds, p.bandwidth_mibps))
            events.setdefault(link, []).append((p.end_seconds, -p.bandwidth_mibps))
    usage = {}
    for link, evs in events.items():
        evs.sort()
        level = 0.0
        steps = []
        for t, delta in evs:
            level += delta
            steps.append((t, max(0.0, round(level, 6))))
        usage[link] = steps
    return usage
