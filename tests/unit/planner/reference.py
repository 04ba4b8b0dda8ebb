"""The drain/rebalance scheduler as it was before candidate bounding:
every candidate of every pending move examined at every event.

The bounded planner (kvmplace/planner/schedule.py: a lower bound on each
candidate's time, and whole-column evaluation of the candidates of a move)
must give exactly the plans this gives; test_bounded.py checks it on
generated clusters. The methods below are the exhaustive ones, verbatim;
only the event bookkeeping (_Running, _Busy, the ledger, _close) is shared.
"""
from __future__ import annotations

from typing import Callable, Optional

from kvmplace import estimator
from kvmplace import objects
from kvmplace.planner import schedule
from kvmplace.planner.schedule import (MIN_USEFUL_SHARE, Move, Planned, _Busy,  # noqa: F401
                                       _Running)


class ExhaustiveScheduler(schedule.Scheduler):
    """schedule.Scheduler with the exhaustive candidate loops."""

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
                best = None
                for dest in move.candidates:
                    if not fits(move.instance, dest):
                        continue
                    option = self._option(move.instance, dest, now)
                    if option and (best is None or option[0].end_seconds < best[0].end_seconds):
                        best = option
                if best is None:
                    continue
                if self._better_to_wait(move, best[0], running, fits):
                    continue
                plan, solo = best
                claim(move.instance, plan.dest)
                plan.solo_mibps = solo
                r = _Running(plan, solo, move.instance, self.params)
                r.set_rate(now, plan.bandwidth_mibps)
                self.ledger.take(plan.links, r.rate)
                r.held = plan.reserve_mibps = r.rate
                running.append(r)
                pending.remove(move)
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
            for r in running:
                r.advance(now)
            ended = [r for r in running if r is nxt or r.done >= 1.0 - 1e-9]
            for r in ended:
                running.remove(r)
                self.ledger.give(r.plan.links, r.held)
                if not isinstance(r, _Busy):
                    finished.append(self._close(r, now))
            self._top_up(running, now)
        return finished, unplaced
