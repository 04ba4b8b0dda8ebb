"""Admission of migrations: concurrency limits and link capacity.

A migration may start only when its source, its destination and the
cluster are under their limits *and* every link on its path has room for
its bandwidth. Link room is counted in effective MiB/s (nominal rate x link
efficiency, minus the configured reserve), the same units the estimator
gives each migration, so a link is never asked to carry more than it can.
A migration alone on its path is always admitted (it cannot oversubscribe
anything by itself: its bandwidth is already capped by the path).
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Slot:
    migration_id: str
    source: str
    dest: str
    links: tuple
    mibps: float
    #: part of a drain/rebalance plan: its parallelism was chosen from link
    #: room already, so the fixed-count limits do not apply (links still do)
    planned: bool = False


@dataclass
class Admission:
    max_per_source: int
    max_per_dest: int
    max_total: int
    link_capacity_mibps: Callable[[tuple], float]
    #: a per-source limit that planned migrations obey too: Nova's own
    #: max_concurrent_live_migrations (0: none, the libvirt driver)
    max_per_source_always: int = 0
    slots: dict[str, Slot] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    #: Set by :meth:`close` (the conductor stops): nothing is admitted any
    #: more. Before, a stopping conductor's workflows released their slots
    #: as they were interrupted, and a queued workflow took the freed slot
    #: and started pre_pin and migrate on the way out.
    closed: bool = False

    def close(self) -> None:
        """Admit nothing from now on, and wake every waiter to see it."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _blocker(self, slot: Slot) -> Optional[str]:
        if self.closed:
            return 'the conductor is stopping'
        sources = Counter(s.source for s in self.slots.values())
        dests = Counter(s.dest for s in self.slots.values())
        if not slot.planned:
            if len(self.slots) >= self.max_total:
                return f'{len(self.slots)} migrations running (max_concurrent_total)'
            if sources[slot.source] >= self.max_per_source:
                return f'{slot.source} already sends {sources[slot.source]} (per-source limit)'
            if dests[slot.dest] >= self.max_per_dest:
                return f'{slot.dest} already receives {dests[slot.dest]} (per-destination limit)'
        if self.max_per_source_always and sources[slot.source] >= self.max_per_source_always:
            return (f'{slot.source} already sends {sources[slot.source]} (Nova\'s '
                    'max_concurrent_live_migrations)')
        for link in slot.links:
            used = sum(s.mibps for s in self.slots.values() if link in s.links)
            if used and used + slot.mibps > self.link_capacity_mibps(link) + 1e-6:
                return (f'link {link[0]}-{link[1]} carries {used:.0f} MiB/s of '
                        f'{self.link_capacity_mibps(link):.0f}')
        return None

    def try_acquire(self, slot: Slot) -> Optional[str]:
        """Take a slot now, or say what blocks it."""
        with self._cond:
            reason = self._blocker(slot)
            if reason is None:
                self.slots[slot.migration_id] = slot
            return reason

    def acquire(self, slot: Slot, cancelled: Callable[[], bool],
                on_wait: Callable[[str], None] = lambda r: None,
                poll_seconds: float = 1.0) -> bool:
        """Block until the slot is admitted (True) or ``cancelled()`` (False)."""
        with self._cond:
            told = None
            while True:
                reason = self._blocker(slot)
                if reason is None:
                    self.slots[slot.migration_id] = slot
                    return True
                if cancelled() or self.closed:
                    return False
                if reason != told:
                    on_wait(reason)
                    told = reason
                self._cond.wait(poll_seconds)

    def release(self, migration_id: str) -> None:
        with self._cond:
            if self.slots.pop(migration_id, None) is not None:
                self._cond.notify_all()

