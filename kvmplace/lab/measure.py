"""Plain libvirt operations on lab guests, with the figures tests need.

Independent of kvmplace's own agent and conductor on purpose: the lab's
acceptance tests (and calibrating the estimator) need to know what a plain
libvirt migration between two lab hosts does, measured by libvirt itself.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kvmplace.lab import guests as labguests
from kvmplace.lab import manager
from kvmplace.lab import state as labstate
from kvmplace.lab.errors import LabError

libvirt = manager.libvirt_module()

#: Live, peer-to-peer, persistent on the destination, undefined on the
#: source: what kvmplace's agent does too.
MIGRATE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)


@dataclass
class MigrationResult:
    """A finished migration as libvirt measured it."""

    guest: str
    source: str
    dest: str
    wall_seconds: float
    stats: dict                       # completed job statistics (destination)
    samples: list[dict] = field(default_factory=list)  # source job stats, ~0.25 s apart

    @property
    def mean_bytes_per_second(self) -> float:
        """Bytes moved over the job's elapsed time (setup and downtime included)."""
        elapsed_s = self.stats.get("time_elapsed", 0) / 1000.0
        return self.stats.get("data_processed", 0) / elapsed_s if elapsed_s else 0.0

    @property
    def peak_bytes_per_second(self) -> float:
        """Highest rate QEMU reported while the job ran (memory_bps)."""
        rates = [s.get("memory_bps", 0) for s in self.samples]
        return max(rates + [self.stats.get("memory_bps", 0)])

    @property
    def steady_bytes_per_second(self) -> float:
        """Median of the rates QEMU reported while the job ran: the link's
        steady rate, insensitive to a short burst at the start."""
        rates = sorted(s["memory_bps"] for s in self.samples if s.get("memory_bps"))
        return rates[len(rates) // 2] if rates else self.stats.get("memory_bps", 0)

    @property
    def disk_bytes(self) -> int:
        """Disk data copied (non-shared storage); the completed statistics on
        the destination do not always carry it, the source's samples do."""
        return max([s.get("disk_processed", 0) for s in self.samples]
                   + [self.stats.get("disk_processed", 0)])

    def dirty_rates_mibps(self) -> list[float]:
        """QEMU's dirty-page rate of each sample taken after the first pass."""
        return [s["memory_dirty_rate"] * s.get("memory_page_size", 4096) / 2**20
                for s in self.samples
                if s.get("memory_iteration", 0) >= 2 and "memory_dirty_rate" in s]


def where(guest: str) -> str:
    """The lab host running ``guest`` now."""
    host = manager.locate_guests(labstate.load()).get(guest)
    if host is None:
        raise LabError(f"{guest} is not running on any lab host")
    return host


def migrate(guest: str, dest: str, *, non_shared_disk: bool = False,
            bandwidth_mibps: int | None = None, extra_flags: int = 0,
            max_downtime_ms: int | None = None,
            dest_uri: str | None = None,
            downtime_steps: list[tuple[float, int]] | None = None,
            parallel_connections: int | None = None) -> MigrationResult:
    """Live-migrate ``guest`` to lab host ``dest`` and measure it.

    With ``non_shared_disk`` the guest's local disks are copied
    (VIR_MIGRATE_NON_SHARED_DISK); libvirt needs the destination image to
    exist already, so it is created first on ``dest``. ``max_downtime_ms``
    is set on the job as soon as it exists (as kvmplace's agent and Nova
    do); without it QEMU's default (300 ms) applies. ``dest_uri`` is the
    URI the source's libvirtd dials (peer-to-peer); default: ``dest``'s
    ``qemu+tcp`` URI, the TLS test passes its ``qemu+tls`` one.
    ``downtime_steps`` [(seconds, ms), ...] raises the max downtime as the
    job ages, as Nova's live_migration_downtime_steps do (its first step
    replaces ``max_downtime_ms``).
    ``parallel_connections`` sends memory over that many connections
    (VIR_MIGRATE_PARALLEL, QEMU's multifd), as KubeVirt does by default.
    """
    steps = sorted(downtime_steps or [])
    if steps:
        max_downtime_ms = steps[0][1]
        steps = steps[1:]
    source = where(guest)
    if source == dest:
        raise LabError(f"{guest} already runs on {dest}")
    src_conn = manager.connect(source)
    dst_conn = manager.connect(dest)
    try:
        dom = src_conn.lookupByName(guest)
        flags = MIGRATE_FLAGS | extra_flags
        if non_shared_disk:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
            spec = _spec(guest)
            if spec.disk_mib:
                labguests.prepare_disk_on(dest, spec)
        params: dict = {}
        if bandwidth_mibps:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mibps
        if parallel_connections:
            flags |= libvirt.VIR_MIGRATE_PARALLEL
            params[libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = parallel_connections
        samples: list[dict] = []
        done = threading.Event()

        def poll() -> None:
            poller = manager.connect(source)
            try:
                pdom = poller.lookupByName(guest)
                downtime_set = max_downtime_ms is None
                while not done.wait(0.05 if not downtime_set else 0.25):
                    try:
                        stats = pdom.jobStats()
                    except libvirt.libvirtError:
                        break
                    if stats.get("type", 0) != libvirt.VIR_DOMAIN_JOB_NONE:
                        samples.append(stats)
                        if not downtime_set and max_downtime_ms is not None:
                            try:
                                pdom.migrateSetMaxDowntime(int(max_downtime_ms), 0)
                                downtime_set = True
                            except libvirt.libvirtError:
                                pass
                        while steps and time.monotonic() - started >= steps[0][0]:
                            try:
                                pdom.migrateSetMaxDowntime(int(steps.pop(0)[1]), 0)
                            except libvirt.libvirtError:
                                pass
            finally:
                poller.close()

        started = time.monotonic()
        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            dom.migrateToURI3(dest_uri or manager.host_record(dest)["libvirt_uri"],
                              params, flags)
        except libvirt.libvirtError as exc:
            raise LabError(f"migrating {guest} {source} -> {dest} failed: {exc}") from None
        finally:
            done.set()
            thread.join()
        wall = time.monotonic() - started
        stats = dst_conn.lookupByName(guest).jobStats(
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        return MigrationResult(guest, source, dest, wall, stats, samples)
    finally:
        src_conn.close()
        dst_conn.close()


def _spec(guest: str) -> labguests.GuestSpec:
    for record in labstate.load().get("guests", []):
        if record["name"] == guest:
            fields = {k: record[k] for k in labguests.GuestSpec.__dataclass_fields__
                      if k in record}
            return labguests.GuestSpec(**fields)
    raise LabError(f"no lab guest named {guest}")


def dirty_rate_mibps(guest: str, seconds: int = 2, rounds: int = 4) -> float:
    """Mean of ``rounds`` libvirt page-sampling dirty-rate calculations.

    Page sampling hashes 512 random pages per GiB; one small guest gives
    only ~128 samples, so one round is noisy (about +-15 %): averaging a
    few rounds is what makes the figure trustworthy. (Dirty-bitmap mode
    crashed TCG guests on QEMU 7.2, see LAB.md.)
    """
    conn = manager.connect(where(guest))
    try:
        dom = conn.lookupByName(guest)
        figures = []
        for _ in range(rounds):
            dom.startDirtyRateCalc(seconds, libvirt.VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)
            deadline = time.monotonic() + seconds + 10
            while True:
                time.sleep(0.2)
                stats = _dirtyrate_stats(conn, dom)
                if stats.get("dirtyrate.calc_status") == \
                        libvirt.VIR_DOMAIN_DIRTYRATE_MEASURED:
                    figures.append(float(stats["dirtyrate.megabytes_per_second"]))
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"{guest}: dirty-rate calculation did not finish")
        return sum(figures) / len(figures)
    finally:
        conn.close()


def describe(guest: str, log_lines: int = 15) -> str:
    """Where ``guest`` runs, libvirt's state and reason there, whether a job
    runs on it, and the tail of its serial console: what a failed lab
    assertion needs to say about a guest that does not behave."""
    states = {getattr(libvirt, n): n[len("VIR_DOMAIN_"):].lower()
              for n in dir(libvirt) if n.startswith("VIR_DOMAIN_")
              and n[len("VIR_DOMAIN_"):] in ("RUNNING", "PAUSED", "SHUTOFF", "CRASHED",
                                             "BLOCKED", "SHUTDOWN", "PMSUSPENDED")}
    try:
        host = where(guest)
    except LabError as exc:
        return str(exc)
    conn = manager.connect(host)
    try:
        dom = conn.lookupByName(guest)
        state, reason = dom.state()
        job = dom.jobInfo()[0]
    finally:
        conn.close()
    log = labguests.host_path(host, labguests.SERIAL_LOG.format(name=guest))
    try:
        with open(log, "rb") as f:
            tail = f.read()[-8192:].decode(errors="replace").splitlines()[-log_lines:]
    except OSError as exc:
        tail = [f"(no console log: {exc})"]
    return (f"{guest} on {host}: state {states.get(state, state)} reason {reason}, "
            f"job type {job}; console tail:\n" + "\n".join(tail))


#: What a guest kernel prints when it breaks (oops, BUG, panic, lockups).
KERNEL_FAULT_MARKERS = (b"Oops", b"BUG:", b"Kernel panic", b"general protection fault",
                        b"soft lockup", b"hard LOCKUP")


def console_events(guest: str) -> dict:
    """Kernel faults and boots of ``guest`` so far, over every lab host's
    serial log (a guest's console follows it: each host appends to its own
    file). A panicked guest reboots (panic=-1) and prints the ready marker
    again, so ``boots`` going up means the guest lost its state."""
    import glob

    faults, boots = [], 0
    pattern = labguests.host_path("*", labguests.SERIAL_LOG.format(name=guest))
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as f:
            for line in f.read().splitlines():
                if any(m in line for m in KERNEL_FAULT_MARKERS):
                    faults.append(line.decode(errors="replace").strip())
                if labguests.READY_MARKER.encode() in line:
                    boots += 1
    return {"faults": faults, "boots": boots}


def _dirtyrate_stats(conn, dom) -> dict:
    records = conn.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_DIRTYRATE)
    return records[0][1] if records else {}
