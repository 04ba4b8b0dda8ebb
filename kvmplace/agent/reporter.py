"""Casts from the agent to the conductor, and the periodic state report.

Everything here is a cast (fire and forget): a conductor that is down or
restarting must never stall or fail a migration the agent is driving, so
every send swallows and logs its error.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

import oslo_messaging as messaging

from kvmplace import rpc

LOG = logging.getLogger(__name__)


class ConductorNotifier:
    """Client side of the three casts the conductor listens for (v1.0), on
    the reports topic: the only conductor topic a compute host's broker
    account needs (doc/source/user/security.rst)."""

    VERSION = '1.0'

    def __init__(self, conf=None, client: Optional[messaging.RPCClient] = None):
        if client is None:
            kwargs = {} if conf is None else {'conf': conf}
            client = rpc.get_client(rpc.CONDUCTOR_REPORTS_TOPIC, self.VERSION, **kwargs)
        self.client = client

    def _cast(self, method: str, **kwargs) -> bool:
        try:
            self.client.cast({}, method, **kwargs)
            return True
        except Exception as exc:  # noqa: BLE001 - the conductor may be away
            LOG.warning('cast %s to the conductor failed: %s', method, exc)
            return False

    def report_state(self, host_state: dict) -> bool:
        return self._cast('report_state', host_state=host_state)

    def migration_progress(self, migration_id: str, progress: dict) -> bool:
        return self._cast('migration_progress', migration_id=migration_id, progress=progress)

    def migration_finished(self, migration_id: str, result: dict) -> bool:
        return self._cast('migration_finished', migration_id=migration_id, result=result)


class Periodic:
    """Runs ``fn`` now and then every ``interval_s()`` seconds until stopped.

    The interval is a callable so that the probe can stretch its period to
    keep its duty cycle bounded.
    """

    def __init__(self, name: str, fn: Callable[[], object], interval_s: Callable[[], float],
                 run_first: bool = True):
        self.name = name
        self.fn = fn
        self.interval_s = interval_s
        self.run_first = run_first
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _loop(self) -> None:
        if not self.run_first and self._stop.wait(self.interval_s()):
            return
        while not self._stop.is_set():
            try:
                self.fn()
            except Exception:  # noqa: BLE001 - keep the loop alive, say why
                LOG.exception('periodic task %s failed', self.name)
            if self._stop.wait(self.interval_s()):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
