"""Pause Python's cyclic garbage collector around bulk building.

Loading a 100,000-host inventory makes about two million objects, and
ranking it some hundreds of thousands more; none of them forms a cycle,
but every 700 allocations the collector walks the young ones, and every
so often all of them: a third to a half of the time such work takes. The
phases that build a cluster-sized answer pause it (reference counting
still frees everything as usual) and restore the previous state after,
so a long-lived process keeps its collector.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block; the state before restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
