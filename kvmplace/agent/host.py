"""The host's state, built from libvirt, /proc and /sys.

Its shape is the Host of ARCHITECTURE's inventory (name, enabled,
maintenance, link_mbps, vcpus, vcpus_used, memory_mib, memory_used_mib,
cpu_model, numa[...]) plus ``instances`` and what the conductor needs to
reach this host (``libvirt_uri``, ``migration_address``), so that the very
dict an agent reports loads into ``objects.Host.from_dict``.
"""
from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any, Callable, Optional
from urllib.parse import urlparse

import libvirt

from kvmplace import objects
from kvmplace.agent import guest as guest_mod
from kvmplace.agent import nic
from kvmplace.agent import numa

LOG = logging.getLogger(__name__)


def _quiet(_ctx, _err) -> None:
    """libvirt prints every error to stderr by default; the agent reports
    errors itself, with context."""


libvirt.registerErrorHandler(_quiet, None)


class Connection:
    """One shared libvirt connection, reopened when it dies.

    libvirt connections are thread-safe, so the RPC threads, the reporter
    and the migration monitors share it; only (re)opening is serialized.
    """

    def __init__(self, uri: str, opener: Callable[[str], Any] = libvirt.open):
        self.uri = uri
        self._opener = opener
        self._conn = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                LOG.warning('libvirt connection to %s lost; reconnecting', self.uri)
            self._conn = self._opener(self.uri)
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None


def host_cpu_model(caps_xml: str) -> Optional[str]:
    model = ET.fromstring(caps_xml).find('./host/cpu/model')
    return model.text.strip() if model is not None and model.text else None


def host_cpu_count(conn) -> int:
    """Length of libvirt's CPU maps on this host: the CPUs a pinning can
    name. (The test driver's map has 8 CPUs although its cells list 16.)"""
    try:
        return int(conn.getCPUMap()[0])
    except (libvirt.libvirtError, AttributeError):
        return int(conn.getInfo()[2])


def endpoints(conf) -> tuple[Optional[str], str]:
    """(migration_address, peer libvirt URI) other hosts use to reach us."""
    agent = conf.agent
    address = agent.migration_address or urlparse(agent.libvirt_uri).hostname
    if not address and agent.link_interface:
        address = nic.interface_ipv4(agent.link_interface)
    if agent.peer_libvirt_uri:
        peer = agent.peer_libvirt_uri
    elif not guest_mod.is_local_uri(agent.libvirt_uri):
        peer = agent.libvirt_uri
    elif address:
        peer = f'qemu+tcp://{address}/system'
    else:
        peer = agent.libvirt_uri
    return address, peer


class HostState:
    """Builds the host-state dict; cheap enough to build on every request."""

    def __init__(self, conf, connection: Connection, topology: numa.Topology,
                 pids: guest_mod.PidResolver,
                 dirty_rates: Optional[Callable[[str], Optional[float]]] = None,
                 active_jobs: Optional[Callable[[], list[dict]]] = None):
        self.conf = conf
        self.connection = connection
        self.topology = topology
        self.pids = pids
        self.dirty_rates = dirty_rates or (lambda uuid: None)
        self.active_jobs = active_jobs or (lambda: [])
        self._caps: Optional[str] = None

    def capabilities(self) -> str:
        if self._caps is None:
            self._caps = self.connection.get().getCapabilities()
        return self._caps

    def numa_nodes(self) -> list[dict]:
        conn = self.connection.get()
        return self.topology.nodes(self.capabilities(), conn.getCellsFreeMemory)

    def topology_cpus(self) -> set[int]:
        cpus: set[int] = set()
        for node in self.numa_nodes():
            cpus.update(objects.parse_cpu_list(node['cpus']))
        return cpus

    def guest_facts(self, dom, nodes: Optional[list[dict]] = None) -> dict:
        conn = self.connection.get()
        nodes = self.numa_nodes() if nodes is None else nodes
        return guest_mod.facts(dom, self.conf.agent.host, nodes, host_cpu_count(conn),
                               self.pids, self.conf.agent.shared_storage_paths,
                               self.dirty_rates(dom.UUIDString()))

    def build(self) -> dict[str, Any]:
        conf = self.conf.agent
        conn = self.connection.get()
        info = conn.getInfo()
        nodes = self.numa_nodes()
        instances = []
        for dom in conn.listAllDomains():
            try:
                instances.append(self.guest_facts(dom, nodes))
            except libvirt.libvirtError as exc:
                # A guest that vanished mid-read (migrated away) is skipped.
                LOG.debug('skipping a guest that disappeared: %s', exc)
        active = [g for g in instances if g['state'] not in ('shutoff', 'crashed')]
        link_mbps, link_source = nic.link_speed(conf.link_mbps, conf.link_interface,
                                                conf.fallback_link_mbps)
        address, peer_uri = endpoints(self.conf)
        node_cpus = sum(len(objects.parse_cpu_list(n['cpus'])) for n in nodes)
        node_memory = sum(int(n.get('memory_mib') or 0) for n in nodes)
        return {
            'name': conf.host,
            'enabled': conf.enabled,
            'maintenance': False,
            'link_mbps': link_mbps,
            'link_mbps_source': link_source,
            'vcpus': node_cpus or int(info[2]),
            'vcpus_used': sum(g['vcpus'] for g in active),
            'memory_mib': node_memory or int(info[1]),
            'memory_used_mib': sum(g['memory_mib'] for g in active),
            'cpu_model': host_cpu_model(self.capabilities()),
            'numa': nodes,
            'instances': instances,
            'libvirt_uri': peer_uri,
            'agent_libvirt_uri': conf.libvirt_uri,
            'migration_address': address,
            'hypervisor_hostname': conn.getHostname(),
            'reported_at': time.time(),
            'probe_measured_at': self.topology.measured_at,
            'active_jobs': self.active_jobs(),
        }
