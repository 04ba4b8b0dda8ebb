"""Facts about one guest: sizes, state, pinning, QEMU PID, disks.

The dict built here is what the conductor stores and what the scheduler
loads with ``objects.Instance.from_dict`` (extra keys are ignored there).
"""
from __future__ import annotations

import logging
import os
import threading
import xml.etree.ElementTree as ET
from typing import Any, Optional
from urllib.parse import urlparse

import libvirt

from kvmplace import objects
from kvmplace.agent import procfs

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: 'nostate', libvirt.VIR_DOMAIN_RUNNING: 'running',
    libvirt.VIR_DOMAIN_BLOCKED: 'blocked', libvirt.VIR_DOMAIN_PAUSED: 'paused',
    libvirt.VIR_DOMAIN_SHUTDOWN: 'shutdown', libvirt.VIR_DOMAIN_SHUTOFF: 'shutoff',
    libvirt.VIR_DOMAIN_CRASHED: 'crashed', libvirt.VIR_DOMAIN_PMSUSPENDED: 'pmsuspended',
}
PORTABLE_CPU_MODELS = frozenset({'qemu64', 'qemu32', 'kvm64', 'kvm32', '486', 'pentium',
                                 'pentium2', 'pentium3', 'coreduo', 'core2duo'})
"""QEMU's baseline models that run on any x86 host: reported as no model
(``cpu_model`` None) so that the scheduler's CPU-model filter does not treat
them as a model only an identical host can run."""
NETWORK_FS = ('nfs', 'nfs4', 'cifs', 'smb3', 'ceph', 'glusterfs', 'fuse.glusterfs',
              'gpfs', 'ocfs2', 'gfs2', 'lustre', 'fuse.sshfs', '9p')


def is_local_uri(uri: str) -> bool:
    """A libvirt URI without a host names this machine's daemon, so its
    PID files and /proc entries are ours to read."""
    parsed = urlparse(uri)
    return not parsed.hostname and '+' not in parsed.scheme


def state_name(dom) -> tuple[str, bool]:
    """(state name, incoming): ``incoming`` marks the paused shell of a
    migration that is still arriving here, which must not count as the
    guest's live copy."""
    state, reason = dom.state()
    incoming = (state == libvirt.VIR_DOMAIN_PAUSED and
                reason in (libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
                           getattr(libvirt, 'VIR_DOMAIN_PAUSED_POSTCOPY', -1),
                           libvirt.VIR_DOMAIN_PAUSED_STARTING_UP))
    return STATE_NAMES.get(state, 'unknown'), incoming


def crash_of(dom) -> Optional[str]:
    """Why ``dom`` counts as crashed, or None. A guest kernel panic reaches
    libvirt through a panic device: by ``<on_crash>`` the domain is left
    'crashed' (preserve), paused (reason 'crashed'), or shut off (reason
    'crashed'); a restart is seen as a new domain ID by the caller."""
    state, reason = dom.state()
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return 'the guest crashed (kernel panic reported by its panic device)'
    if state == libvirt.VIR_DOMAIN_PAUSED and \
            reason == getattr(libvirt, 'VIR_DOMAIN_PAUSED_CRASHED', -1):
        return 'the guest crashed and is paused (kernel panic reported by its panic device)'
    if state == libvirt.VIR_DOMAIN_SHUTOFF and reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED:
        return 'the guest crashed and was shut off'
    return None


def cpumap_to_list(cpumap) -> str:
    return objects.format_cpu_list(i for i, on in enumerate(cpumap) if on)


def list_to_cpumap(cpus: tuple[int, ...], host_cpus: int) -> tuple[bool, ...]:
    wanted = set(cpus)
    return tuple(i in wanted for i in range(host_cpus))


class PidResolver:
    """Finds the QEMU process of a running guest.

    Order: libvirt's PID file when the daemon is local (checked against the
    UUID on QEMU's command line: a stale file or a reused PID must not be
    pinned), then the QEMU monitor's vCPU thread ids mapped to their process
    through /proc (works over a remote URI, as in the lab where the agent
    reaches a namespaced libvirtd by TCP), then a /proc scan for a unique
    ``-uuid``. Results are cached per domain id (which changes when QEMU
    restarts).
    """

    def __init__(self, libvirt_uri: str, pid_dir: str, proc_root: str = procfs.PROC):
        self.local = is_local_uri(libvirt_uri)
        self.pid_dir = pid_dir
        self.proc_root = proc_root
        self._cache: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def pid(self, dom) -> Optional[int]:
        if not dom.isActive():
            return None
        uuid = dom.UUIDString()
        key = (uuid, dom.ID())
        with self._lock:
            cached = self._cache.get(key)
        if cached and procfs.is_qemu_of(cached, uuid, self.proc_root):
            return cached
        pid = self._from_pid_file(dom, uuid) or self._from_monitor(dom, uuid) or \
            self._from_scan(uuid)
        if pid:
            with self._lock:
                self._cache[key] = pid
        return pid

    def _from_pid_file(self, dom, uuid: str) -> Optional[int]:
        if not self.local or not self.pid_dir:
            return None
        pid = procfs.read_pid_file(os.path.join(self.pid_dir, dom.name() + '.pid'))
        if pid and procfs.is_qemu_of(pid, uuid, self.proc_root):
            return pid
        return None

    def _from_monitor(self, dom, uuid: str) -> Optional[int]:
        try:
            import json

            import libvirt_qemu
            reply = libvirt_qemu.qemuMonitorCommand(
                dom, '{"execute":"query-cpus-fast"}', 0)
            tids = [c.get('thread-id') for c in json.loads(reply).get('return', [])]
        except Exception as exc:  # noqa: BLE001 - not QEMU, or monitor busy
            LOG.debug('QEMU monitor gave no thread ids for %s: %s', dom.name(), exc)
            return None
        for tid in tids:
            if isinstance(tid, int) and tid > 0:
                pid = procfs.tgid_of(tid, self.proc_root)
                if pid and procfs.is_qemu_of(pid, uuid, self.proc_root):
                    return pid
        return None

    def _from_scan(self, uuid: str) -> Optional[int]:
        pids = procfs.find_qemu_pids(uuid, self.proc_root)
        return pids[0] if len(pids) == 1 else None


def _disk_is_shared(disk_type: str, path: Optional[str], shared_paths: list[str]) -> bool:
    if disk_type == 'network':
        return True
    if not path:
        return True
    for prefix in shared_paths:
        if prefix and (path == prefix or path.startswith(prefix.rstrip('/') + '/')):
            return True
    return _fs_type(path) in NETWORK_FS


def _fs_type(path: str) -> Optional[str]:
    """File system type of the mount holding ``path`` (from /proc/mounts)."""
    best, fstype = '', None
    try:
        with open('/proc/self/mounts', encoding='utf-8') as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and (path == parts[1] or
                                        path.startswith(parts[1].rstrip('/') + '/')):
                    if len(parts[1]) > len(best):
                        best, fstype = parts[1], parts[2]
    except OSError:
        return None
    return fstype


def disks(dom, root: ET.Element, shared_paths: list[str]) -> list[dict]:
    """Writable disks: what a non-shared-storage migration has to copy."""
    out = []
    for disk in root.findall('./devices/disk'):
        if disk.get('device', 'disk') != 'disk' or disk.find('readonly') is not None:
            continue
        source = disk.find('source')
        target = disk.find('target')
        driver = disk.find('driver')
        dtype = disk.get('type', 'file')
        path = None
        if source is not None:
            path = source.get('file') or source.get('dev') or source.get('name')
        entry = {'target': target.get('dev') if target is not None else None,
                 'type': dtype, 'path': path,
                 'format': driver.get('type') if driver is not None else None,
                 'capacity_mib': None, 'allocation_mib': None,
                 'shared': _disk_is_shared(dtype, path, shared_paths)}
        if entry['target']:
            try:
                capacity, allocation, _physical = dom.blockInfo(entry['target'])
                entry['capacity_mib'] = round(capacity / MIB, 1)
                entry['allocation_mib'] = round(allocation / MIB, 1)
            except libvirt.libvirtError as exc:
                LOG.debug('blockInfo %s %s: %s', dom.name(), entry['target'], exc)
        out.append(entry)
    return out


def guest_cpu_model(root: ET.Element) -> tuple[Optional[str], Optional[str]]:
    """(model, mode) of the guest's own CPU definition. None model: QEMU's
    portable default (qemu64 and the like) or host-passthrough/host-model
    (follows the host)."""
    cpu = root.find('./cpu')
    if cpu is None:
        return None, None
    mode = cpu.get('mode', 'custom')
    model = cpu.find('model')
    if mode == 'custom' and model is not None and model.text:
        name = model.text.strip()
        return (None if name in PORTABLE_CPU_MODELS else name), mode
    return None, mode


def emulator_node(affinity: Optional[tuple[int, ...]], nodes: list[dict]) -> Optional[int]:
    """The node whose CPUs hold every CPU the main thread may run on; None
    when it floats across nodes (then its memory bandwidth is the worst
    node's, which is what pre-pinning fixes)."""
    if not affinity:
        return None
    wanted = set(affinity)
    for node in nodes:
        try:
            if wanted <= set(objects.parse_cpu_list(node['cpus'])):
                return node['id']
        except ValueError:
            continue
    return None


def facts(dom, host: str, nodes: list[dict], host_cpus: int, pids: PidResolver,
          shared_paths: list[str], dirty_rate_mibps: Optional[float] = None
          ) -> dict[str, Any]:
    """Everything the conductor and the scheduler need about one guest."""
    root = ET.fromstring(dom.XMLDesc(0))
    info = dom.info()
    state, incoming = state_name(dom)
    active = bool(dom.isActive())
    model, mode = guest_cpu_model(root)
    disk_list = disks(dom, root, shared_paths)
    local = [d for d in disk_list if not d['shared']]
    disk_mib = sum((d['allocation_mib'] or d['capacity_mib'] or 0.0) for d in local)
    result: dict[str, Any] = {
        'name': dom.name(), 'uuid': dom.UUIDString(), 'host': host,
        'memory_mib': int(info[1]) // 1024, 'vcpus': int(info[3]), 'state': state,
        'incoming': incoming, 'persistent': bool(dom.isPersistent()),
        'cpu_model': model, 'cpu_mode': mode,
        'dirty_rate_mibps': float(dirty_rate_mibps or 0.0),
        'dirty_rate_known': dirty_rate_mibps is not None,
        'disks': disk_list, 'disk_gib': round(disk_mib / 1024.0, 6),
        'shared_storage': not local,
        'emulator_cpus': None, 'emulator_node': None, 'vcpu_cpus': [],
        'qemu_pid': None, 'qemu_affinity': None,
    }
    if not active:
        return result
    try:
        result['emulator_cpus'] = cpumap_to_list(dom.emulatorPinInfo())
    except libvirt.libvirtError as exc:
        LOG.debug('emulatorPinInfo %s: %s', dom.name(), exc)
    try:
        vcpu_info, _maps = dom.vcpus()
        result['vcpu_cpus'] = [int(v[3]) for v in vcpu_info]
    except libvirt.libvirtError as exc:
        LOG.debug('vcpus %s: %s', dom.name(), exc)
    pid = pids.pid(dom)
    result['qemu_pid'] = pid
    affinity = procfs.affinity_cpus(pid, pids.proc_root) if pid else None
    result['qemu_affinity'] = objects.format_cpu_list(affinity) if affinity else None
    # Where the main thread really is (from /proc); libvirt's pinning only
    # when the process cannot be seen (test driver).
    if affinity is None and result['emulator_cpus']:
        affinity = objects.parse_cpu_list(result['emulator_cpus'])
    result['emulator_node'] = emulator_node(affinity, nodes)
    return result
