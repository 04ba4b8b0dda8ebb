"""The conductor's one way to ask again (tenacity), with an injectable clock.

Several places must keep asking until an answer comes or time runs out:
post_verify while the destination does not answer, get_job and locate
during a rollback, a workflow or drain whose database fails under it, a
job that is being aborted. They differ only in what counts as "done",
how long to go on and how the pause grows; this module is that loop, so
that each caller states those three things and nothing else.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional, TypeVar

import tenacity

from kvmplace.conductor import clock as clock_mod

T = TypeVar('T')


def call(fn: Callable[[], T], *, clock: clock_mod.Clock = clock_mod.REAL,
         done: Callable[[T], bool] = lambda result: True,
         retry_on: tuple[type[BaseException], ...] = (),
         timeout_s: Optional[float] = None, pause_s: float = 1.0, factor: float = 2.0,
         max_pause_s: float = 15.0, stop: Optional[threading.Event] = None,
         on_retry: Optional[Callable[[Any, float], None]] = None) -> T:
    """``fn()`` until ``done(result)``, or until time or ``stop`` ends it.

    Exceptions of ``retry_on`` are retried like a result that is not done;
    any other propagates at once. Between attempts the pause starts at
    ``pause_s`` and grows by ``factor`` up to ``max_pause_s``. With
    ``timeout_s``, no attempt starts after the deadline (an attempt whose
    pause would end past it is the last). ``stop`` (an Event) ends the
    waiting early and is the last attempt too. When it gives up, the last
    attempt's outcome is the answer: its result is returned, its exception
    raised. ``on_retry(outcome, pause_s)`` (the result or the exception)
    is called before each pause, to log it.
    """
    deadline = None if timeout_s is None else clock.monotonic() + timeout_s

    def pause(state: tenacity.RetryCallState) -> float:
        return min(pause_s * factor ** (state.attempt_number - 1), max_pause_s)

    def give_up(state: tenacity.RetryCallState) -> bool:
        if stop is not None and stop.is_set():
            return True
        return deadline is not None and clock.monotonic() + pause(state) > deadline

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            outcome = state.outcome
            on_retry(outcome.exception() if outcome.failed else outcome.result(),
                     pause(state))

    def sleep(seconds: float) -> None:
        if stop is not None:
            clock.wait(stop, seconds)
        else:
            clock.sleep(seconds)

    retrying = tenacity.Retrying(
        retry=(tenacity.retry_if_exception_type(retry_on)
               | tenacity.retry_if_result(lambda result: not done(result))),
        stop=give_up, wait=pause, sleep=sleep, before_sleep=before_sleep,
        retry_error_callback=_last_outcome)
    return retrying(fn)


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    """Giving up: the last attempt's result, or its exception raised."""
    assert state.outcome is not None
    return state.outcome.result()
