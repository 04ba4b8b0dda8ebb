"""One user of the lab at a time.

There is one lab per machine (fixed bridge, namespaces and guest names), and
a test session that migrates lab-vm1 while a benchmark times it would ruin
both. Every lab user - the integration test session, the benchmarks, the
demo - holds this exclusive lock while it works; others wait their turn.
The lock is a flock on a file, so it is released when the process ends,
even by kill -9.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time

LOCK_FILE = '/run/kvmplace-lab.lock'
_held: dict[str, int] = {}


def acquire(who: str, timeout_s: float = 3600.0, path: str = LOCK_FILE) -> None:
    """Block until this process holds the lab (re-entrant per process)."""
    if path in _held:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not told:
                holder = os.pread(fd, 200, 0).decode(errors='replace').strip()
                sys.stderr.write(f'{who}: waiting for the lab (held by {holder or "?"})\n')
                told = True
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(f'the lab stayed busy for {timeout_s:.0f} s') from None
            time.sleep(1.0)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{who} pid {os.getpid()}\n'.encode(), 0)
    _held[path] = fd


def release(path: str = LOCK_FILE) -> None:
    fd = _held.pop(path, None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
