"""Small helpers for running system tools and watching processes.

Every external command goes through :func:`run` with an argument list (never
a shell string), so host names and paths can never be read as shell syntax,
and a failure becomes a :class:`LabError` naming the command and its stderr.
"""
from __future__ import annotations

import errno
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

from kvmplace.lab.errors import LabError

LOG = logging.getLogger(__name__)

#: Debian packages the lab uses, with the reason each is needed.
REQUIRED_PACKAGES: dict[str, str] = {
    "libvirt-daemon-system": "libvirtd and virtlogd per host",
    "libvirt-daemon-driver-qemu": "the QEMU driver of libvirtd",
    "libvirt-clients": "virsh, used by tests and operators",
    "qemu-system-x86": "the guests",
    "qemu-utils": "qemu-img and qemu-io for guest disks",
    "iproute2": "ip netns, veth pairs and tc shaping",
    "openssl": "the lab CA and each host's libvirt TLS certificates",
    "rabbitmq-server": "the message broker of the kvmplace services",
    "busybox-static": "the guests' userland",
    "cpio": "packing the guests' initramfs",
    "gcc": "building the guests' memory dirtier",
    "libc6-dev": "static libc for the memory dirtier",
}


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 120,
        input_text: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``argv``; on failure raise a LabError with its stderr."""
    LOG.debug("run: %s", " ".join(argv))
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True,
                              timeout=timeout, input=input_text, env=env)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: timed out after {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv)} failed (exit {proc.returncode})"
                       + (f": {detail[-1]}" if detail else ""))
    return proc


def require_root_linux() -> None:
    """The lab creates namespaces, bridges and daemons: only root can."""
    if platform.system() != "Linux":
        raise LabError("the lab runs on Linux only")
    if os.geteuid() != 0:
        raise LabError("the lab must run as root (namespaces, bridges, libvirtd)")


def missing_packages(packages: Iterable[str]) -> list[str]:
    """Debian packages not installed, asked of dpkg in one call."""
    names = list(packages)
    proc = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names],
               check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1].startswith("ii")}
    return [name for name in names if name not in installed]


def ensure_packages(packages: Iterable[str] = REQUIRED_PACKAGES) -> list[str]:
    """Install whatever is missing with apt-get; return what was installed."""
    if shutil.which("dpkg-query") is None:
        raise LabError("dpkg-query not found: the lab needs a Debian-based system")
    missing = missing_packages(packages)
    if not missing:
        return []
    LOG.info("installing Debian packages: %s", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    proc = run(install, check=False, timeout=900, env=env)
    if proc.returncode != 0:
        run(["apt-get", "update"], check=False, timeout=300, env=env)
        proc = run(install, check=False, timeout=900, env=env)
    if proc.returncode != 0 or missing_packages(missing):
        raise LabError("could not install Debian packages "
                       f"{' '.join(missing)}; install them with: apt-get install "
                       f"{' '.join(missing)}")
    return missing


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; a LabError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(address: str, port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections at address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pidfile(path: str) -> int | None:
    """The pid in a pidfile, or None if missing or unreadable."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kill_pids(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL what is left."""
    pids = [pid for pid in pids if pid_alive(pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Reap our own children, if any of them were.
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def pids_in_netns(netns_path: str) -> list[int]:
    """Every process whose network namespace is the one at ``netns_path``.

    ``down`` uses this to find what a lab host left running (libvirtd,
    virtlogd, QEMU, agents) without trusting any record: a crash may have
    lost the pids, but not the namespace membership.
    """
    try:
        target = os.stat(netns_path)
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
            found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (for wrappers that fork, like
    rabbitmq-server -> su -> sh -> beam.smp, each in its own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if pid_alive(current):
            found.append(current)
        todo.extend(children.get(current, []))
    return found
