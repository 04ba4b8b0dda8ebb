"""Per-guest dirty rate, sampled in the background and cached.

The dirty rate decides whether pre-copy converges (ARCHITECTURE's model), so
the scheduler needs it for every guest. libvirt measures it with
``virDomainStartDirtyRateCalc``; only the page-sampling mode is used because
the dirty-bitmap mode crashed a TCG guest on QEMU 7.2 (LAB.md). Sampling
takes seconds, so it never runs inside a host-state request: a background
thread refreshes a cache that reports read. Where libvirt cannot measure,
the rate seen by the guest's last migration job is used.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

import libvirt

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024
_MEASURED = getattr(libvirt, 'VIR_DOMAIN_DIRTYRATE_MEASURED', 2)


class DirtyRates:
    """uuid -> (MiB/s, when, source) with "libvirt" beating "migration"."""

    def __init__(self):
        self._rates: dict[str, tuple[float, float, str]] = {}
        self._lock = threading.Lock()
        self.unsupported = False

    def get(self, uuid: str) -> Optional[float]:
        with self._lock:
            entry = self._rates.get(uuid)
        return entry[0] if entry else None

    def source(self, uuid: str) -> Optional[str]:
        with self._lock:
            entry = self._rates.get(uuid)
        return entry[2] if entry else None

    def put(self, uuid: str, mibps: float, source: str) -> None:
        with self._lock:
            current = self._rates.get(uuid)
            if source == 'migration' and current and current[2] == 'libvirt':
                return  # a direct measurement is better than a job's figure
            self._rates[uuid] = (max(0.0, float(mibps)), time.time(), source)

    def from_job_stats(self, uuid: str, stats: dict) -> None:
        """Remember the dirty rate a migration job reported."""
        rate = stats.get('memory_dirty_rate')
        page = stats.get('memory_page_size') or 4096
        if rate:
            self.put(uuid, rate * page / MIB, 'migration')

    def sample(self, conn, skip: set[str], calc_seconds: int, deadline_s: float = 30.0
               ) -> dict[str, float]:
        """Start a calculation on every running guest, then collect them.

        All guests are sampled at once so that a round costs calc_seconds,
        not calc_seconds x guests. Guests in ``skip`` (migrating) are left
        alone.
        """
        if self.unsupported:
            return {}
        doms = []
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING):
            if dom.UUIDString() in skip:
                continue
            try:
                dom.startDirtyRateCalc(calc_seconds,
                                       libvirt.VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)
                doms.append(dom)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    self.unsupported = True
                    LOG.info('dirty-rate calculation unsupported by %s; using job '
                             'statistics only', conn.getURI())
                    return {}
                LOG.debug('dirty-rate calc on %s not started: %s', dom.name(), exc)
        found: dict[str, float] = {}
        end = time.monotonic() + calc_seconds + deadline_s
        pending = list(doms)
        while pending and time.monotonic() < end:
            time.sleep(min(0.5, calc_seconds))
            try:
                stats = conn.domainListGetStats(pending, libvirt.VIR_DOMAIN_STATS_DIRTYRATE)
            except libvirt.libvirtError as exc:
                LOG.debug('dirty-rate stats: %s', exc)
                break
            still = []
            for dom, values in stats:
                if values.get('dirtyrate.calc_status') == _MEASURED:
                    mibps = float(values.get('dirtyrate.megabytes_per_second', 0))
                    found[dom.UUIDString()] = mibps
                    self.put(dom.UUIDString(), mibps, 'libvirt')
                else:
                    still.append(dom)
            pending = still
        return found
