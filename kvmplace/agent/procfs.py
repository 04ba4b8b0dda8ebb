"""Facts about QEMU processes read from /proc.

Why /proc and not libvirt: libvirt reports the pinning it *asked for*;
pinning the emulator thread away from a slowed node only helps if the QEMU
main thread really runs on the healthy node's CPUs, so every pinning the
agent does is read back from the live thread's ``Cpus_allowed_list``. The
main thread of a process is the task whose id equals the PID.

``proc_root`` is a parameter so unit tests can point at a fake tree.
"""
from __future__ import annotations

import os
import re
from typing import Optional

from kvmplace import objects

PROC = '/proc'
_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                      r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8', errors='replace') as fh:
            return fh.read()
    except OSError:
        return None


def status_field(pid: int, field: str, tid: Optional[int] = None,
                 proc_root: str = PROC) -> Optional[str]:
    """One field of /proc/PID[/task/TID]/status, or None if the task is gone."""
    path = (f'{proc_root}/{pid}/task/{tid}/status' if tid is not None
            else f'{proc_root}/{pid}/status')
    text = _read(path)
    if text is None:
        return None
    prefix = field + ':'
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def thread_affinity(pid: int, tid: Optional[int] = None, proc_root: str = PROC
                    ) -> Optional[str]:
    """The CPUs a thread may run on ("0-3,8"), as the kernel enforces it.

    Without ``tid`` this is the main thread (tid == pid).
    """
    return status_field(pid, 'Cpus_allowed_list', pid if tid is None else tid, proc_root)


def affinity_cpus(pid: int, proc_root: str = PROC) -> Optional[tuple[int, ...]]:
    text = thread_affinity(pid, proc_root=proc_root)
    if not text:
        return None
    try:
        return objects.parse_cpu_list(text)
    except ValueError:
        return None


def tgid_of(tid: int, proc_root: str = PROC) -> Optional[int]:
    """The process (thread group) a thread id belongs to."""
    value = status_field(tid, 'Tgid', proc_root=proc_root)
    return int(value) if value and value.isdigit() else None


def cmdline(pid: int, proc_root: str = PROC) -> Optional[list[str]]:
    text = _read(f'{proc_root}/{pid}/cmdline')
    if not text:
        return None
    return [arg for arg in text.split('\0') if arg]


def is_qemu_of(pid: int, uuid: str, proc_root: str = PROC) -> bool:
    """Is ``pid`` a QEMU process started for the guest with this UUID?

    A PID file can be stale and a PID can be reused; the UUID on QEMU's
    command line (libvirt always passes ``-uuid``) is what identifies it.
    """
    args = cmdline(pid, proc_root)
    if not args:
        return False
    for i, arg in enumerate(args[:-1]):
        if arg == '-uuid' and args[i + 1].lower() == uuid.lower():
            return True
    return False


def find_qemu_pids(uuid: str, proc_root: str = PROC) -> list[int]:
    """Every process whose command line carries ``-uuid UUID``.

    Two hits happen mid-migration (source and destination QEMU on one
    machine); callers must not guess between them.
    """
    if not _UUID_RE.match(uuid or ''):
        return []
    found = []
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and is_qemu_of(int(entry), uuid, proc_root):
            found.append(int(entry))
    return sorted(found)


def read_pid_file(path: str) -> Optional[int]:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def cpu_count_online(sys_root: str = '/sys') -> Optional[int]:
    """Number of CPU ids this machine has (for bounds checks)."""
    text = _read(f'{sys_root}/devices/system/cpu/possible')
    if not text:
        return os.cpu_count()
    try:
        return max(objects.parse_cpu_list(text.strip())) + 1
    except ValueError:
        return os.cpu_count()
