"""Pinning the QEMU main (emulator) thread, and reading it back.

Pinning vCPU threads does not help a migration slowed by a sick NUMA node;
pinning the *main* thread (libvirt's emulator threads,
``virDomainPinEmulator``) to a healthy node's CPUs does, because that thread
runs the migration and touches the guest's memory. libvirt applies the pin
through cgroups and sched_setaffinity; the agent trusts neither its own
request nor libvirt's echo, and reads the thread's real CPU list from /proc.
"""
from __future__ import annotations

import time
from typing import Optional

import libvirt

from kvmplace import objects
from kvmplace.agent import guest as guest_mod
from kvmplace.agent import procfs
from kvmplace.exception import KvmplaceError


def choose_node(nodes: list[dict], need_memory_mib: int, exclude: Optional[int] = None
                ) -> Optional[dict]:
    """The healthiest node with room (objects.Host.best_node's rule)."""
    pool = [n for n in nodes if n['id'] != exclude] or nodes
    host = objects.Host(name='-', numa=[objects.NumaNode.from_dict(n) for n in pool])
    best = host.best_node(need_memory_mib)
    if best is None:
        return None
    return next(n for n in pool if n['id'] == best.id)


def pin_emulator(dom, cpus: tuple[int, ...], host_cpus: int) -> None:
    """Pin the live guest's emulator threads (not its vCPUs) to ``cpus``."""
    try:
        dom.pinEmulator(guest_mod.list_to_cpumap(cpus, host_cpus),
                        libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise KvmplaceError(f'pinning the emulator of {dom.name()} to '
                            f'{objects.format_cpu_list(cpus)} failed: '
                            f'{exc.get_error_message()}') from None


def current_pin(dom) -> Optional[str]:
    try:
        return guest_mod.cpumap_to_list(dom.emulatorPinInfo())
    except libvirt.libvirtError:
        return None


def read_back(pid: Optional[int], want: tuple[int, ...], proc_root: str = procfs.PROC,
              timeout_s: float = 2.0) -> Optional[str]:
    """The main thread's real affinity, waiting briefly until it shows
    ``want`` (cgroup changes land asynchronously on some kernels)."""
    if not pid:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        cpus = procfs.affinity_cpus(pid, proc_root)
        if cpus is None or set(cpus) == set(want) or time.monotonic() >= deadline:
            return objects.format_cpu_list(cpus) if cpus else None
        time.sleep(0.05)
