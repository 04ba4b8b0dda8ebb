"""Time as the conductor's workflows and drains see it.

Injected (``Collaborators.clock``, ``DrainExecutor(clock=...)``) so that a
unit test can let minutes of back-off and polling pass in milliseconds
(tests/unit/conductor/fakes.FakeClock) instead of sleeping through them.
"""
from __future__ import annotations

import threading
import time


class Clock:
    """The real clock: time.monotonic/time.time, real sleeps and waits."""

    def monotonic(self) -> float:
        """Seconds for durations and deadlines (never jumps)."""
        return time.monotonic()

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for records and reports)."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds``; True if it is set."""
        return event.wait(seconds)


REAL = Clock()
