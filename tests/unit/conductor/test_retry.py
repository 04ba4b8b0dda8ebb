"""The conductor's one retry loop (conductor/retry.py) on a fake clock:
minutes of back-off pass without real sleeping."""
from __future__ import annotations

import threading
import time

import pytest

from kvmplace.conductor import retry
from tests.unit.conductor.fakes import FakeClock


def test_asks_again_until_done_with_a_growing_pause():
    clock, answers = FakeClock(), iter([1, 2, 3, 4, 5])
    start = time.monotonic()
    assert retry.call(lambda: next(answers), clock=clock, done=lambda n: n == 4) == 4
    assert clock.slept_s == 1 + 2 + 4
    assert time.monotonic() - start < 1.0


def test_gives_up_at_the_deadline_with_the_last_answer():
    clock, calls = FakeClock(), []
    answer = retry.call(lambda: calls.append(1) or {'ok': False}, clock=clock,
                        done=lambda a: a['ok'], timeout_s=121, max_pause_s=15)
    # 1 + 2 + 4 + 8 + 15 x 7 = 120: another 15 s would pass the deadline.
    assert answer == {'ok': False} and len(calls) == 12
    assert clock.slept_s == 120


def test_retries_only_the_named_exceptions_and_reraises_the_last():
    clock = FakeClock()
    with pytest.raises(KeyError):
        retry.call(lambda: {}['x'], clock=clock, retry_on=(KeyError,), timeout_s=10)
    assert clock.slept_s == 1 + 2 + 4
    calls = []
    with pytest.raises(ValueError):
        retry.call(lambda: calls.append(1) or int('x'), clock=clock, retry_on=(KeyError,))
    assert len(calls) == 1


def test_a_stop_event_ends_the_waiting():
    clock, stop, calls = FakeClock(), threading.Event(), []

    def failing():
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        raise KeyError('db down')

    told = []
    with pytest.raises(KeyError):
        retry.call(failing, clock=clock, retry_on=(KeyError,), stop=stop, max_pause_s=30,
                   on_retry=lambda exc, pause: told.append(pause))
    assert len(calls) == 3 and told == [1.0, 2.0]
