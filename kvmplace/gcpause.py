"""Pause Python's cyclic garbage collector around bulk building.

Loading a 100,000-host inventory makes about two million objects, and
ranking it some hundreds of thousands more; none of them forms a cycle,
but every 700 allocations the collector walks the young ones, and every
so often all of them: a third to a half of the time such work takes. The
phases that build a cluster-sized answer pause it (reference counting
still frees everything as usual) and restore the previous state after,
so a long-lived process keeps its collector.

On the way out the objects made meanwhile join the oldest generation
(gc.freeze then gc.unfreeze: two list splices), as the survivors of a
young collection would: left young, the first allocation after the pause
walked all two million of them at once (0.3 s), and the next collections
again on their way up. Cycles among them are still found by the next
full collection. (kvmplace itself never freezes objects for good; a
process that did would see them unfrozen here.)
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block; the state before restored,
    what the block made moved to the oldest generation."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
