"""NUMA topology of the host and the per-node memory write-bandwidth probe.

When one NUMA node's memory slows down, migrations
whose QEMU main thread runs on that node slow down with it, and the fix is
to pin that thread to a healthy node. Finding the slow node means measuring
each node's memory *write* bandwidth, which is what :class:`BandwidthProbe`
does: writer threads pinned to one node's CPUs write a buffer that they
first-touch after pinning (so Linux's local-allocation policy puts its pages
on that node), timed with ``ctypes.memset`` so that C, not Python, does the
writing and the GIL is released while it runs.

The topology comes from libvirt (capabilities cells + free memory per cell)
or from an override file for emulated topologies (the lab puts CPU 0 and
CPU 1 in different "nodes"); figures in the file win over the probe, so an
operator who measures with pcm-memory, or a test, can inject them.
"""
from __future__ import annotations

import ctypes
import json
import logging
import mmap
import os
import threading
import time
import xml.etree.ElementTree as ET
from typing import Callable, Optional

from kvmplace import objects
from kvmplace import resources

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024


def cells_from_capabilities(caps_xml: str) -> list[dict]:
    """[{"id", "cpus", "memory_mib"}] from ``virConnectGetCapabilities``."""
    root = ET.fromstring(caps_xml)
    nodes = []
    for cell in root.findall('./host/topology/cells/cell'):
        cell_id = int(cell.get('id', '0'))
        mem = cell.find('memory')
        memory_kib = int(mem.text) if mem is not None and mem.text else 0
        if mem is not None and mem.get('unit', 'KiB') not in ('KiB', 'k'):
            memory_kib = _to_kib(memory_kib, mem.get('unit'))
        cpus = [int(c.get('id', '')) for c in cell.findall('./cpus/cpu')]
        nodes.append({'id': cell_id, 'cpus': objects.format_cpu_list(cpus),
                      'memory_mib': memory_kib // 1024})
    return nodes


def _to_kib(value: int, unit: Optional[str]) -> int:
    factor = {'b': 1 / 1024, 'bytes': 1 / 1024, 'KiB': 1, 'k': 1, 'MiB': 1024,
              'M': 1024, 'GiB': 1024 ** 2, 'G': 1024 ** 2}.get(unit or 'KiB', 1)
    return int(value * factor)


def load_override(path: str) -> Optional[list[dict]]:
    """The override file's nodes, or None when there is none.

    A broken file is an error the operator must see (raised), not a silent
    fall back to libvirt's topology that would pin to the wrong CPUs.
    """
    if not path:
        return None
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as fh:
        data = json.load(fh)
    if isinstance(data, dict):
        data = data.get('numa') or data.get('nodes')
    if not isinstance(data, list) or not data:
        raise ValueError(f'{path}: must hold a non-empty JSON list of NUMA nodes')
    nodes = []
    for i, node in enumerate(data):
        if not isinstance(node, dict) or 'id' not in node or 'cpus' not in node:
            raise ValueError(f'{path}: node [{i}] needs "id" and "cpus"')
        if not isinstance(node['id'], int) or isinstance(node['id'], bool):
            raise ValueError(f'{path}: node [{i}].id must be an integer')
        try:
            objects.parse_cpu_list(node['cpus'])
        except ValueError as exc:
            raise ValueError(f'{path}: node [{i}].cpus {exc}') from None
        nodes.append(dict(node))
    return nodes


class Topology:
    """Merges libvirt's cells, the override file and probe results."""

    def __init__(self, override_file: str = '', baseline_mibps: float = 0.0):
        self.override_file = override_file
        self.baseline_mibps = baseline_mibps
        self.measured: dict[int, float] = {}
        self.measured_at: Optional[float] = None

    def nodes(self, caps_xml: str, cell_free_bytes: Callable[[int, int], list[int]]
              ) -> list[dict]:
        """The host's NUMA nodes in the inventory's shape."""
        cells = cells_from_capabilities(caps_xml)
        free_by_id: dict[int, int] = {}
        if cells:
            try:
                ids = [c['id'] for c in cells]
                free = cell_free_bytes(min(ids), max(ids) - min(ids) + 1)
                free_by_id = {min(ids) + i: int(v) // MIB for i, v in enumerate(free)}
            except Exception as exc:  # noqa: BLE001 - libvirt may not support it
                LOG.debug('per-cell free memory unavailable: %s', exc)
        nodes = []
        for cell in cells:
            nodes.append({'id': cell['id'], 'cpus': cell['cpus'],
                          'memory_mib': cell['memory_mib'],
                          'free_memory_mib': free_by_id.get(cell['id'], cell['memory_mib']),
                          'bandwidth_mibps': None, 'baseline_mibps': None})
        override = load_override(self.override_file)
        if override is not None:
            by_id = {n['id']: n for n in nodes}
            merged = []
            for node in override:
                base = dict(by_id.get(node['id'], {'memory_mib': 0, 'free_memory_mib': 0,
                                                   'bandwidth_mibps': None,
                                                   'baseline_mibps': None}))
                base.update({k: v for k, v in node.items() if v is not None})
                merged.append(base)
            nodes = merged
        self._apply_measurements(nodes)
        return sorted(nodes, key=lambda n: n['id'])

    def _apply_measurements(self, nodes: list[dict]) -> None:
        best = max(self.measured.values(), default=0.0)
        baseline = self.baseline_mibps or best or None
        for node in nodes:
            if node.get('bandwidth_mibps') is None and node['id'] in self.measured:
                node['bandwidth_mibps'] = round(self.measured[node['id']], 1)
                node['bandwidth_source'] = 'probe'
            elif node.get('bandwidth_mibps') is not None:
                node.setdefault('bandwidth_source', 'injected')
            if node.get('baseline_mibps') is None and node.get('bandwidth_mibps') is not None:
                node['baseline_mibps'] = round(baseline, 1) if baseline else None
            bw, base = node.get('bandwidth_mibps'), node.get('baseline_mibps')
            node['health'] = round(resources.node_health(bw, base), 4)

    def record(self, measured: dict[int, float]) -> None:
        self.measured = dict(measured)
        self.measured_at = time.time()


def _writer(cpus: tuple[int, ...], buffer_bytes: int, seconds: float,
            start: threading.Barrier, out: list, index: int) -> None:
    """One probe thread: pin, first-touch a buffer, then time memsets."""
    try:
        os.sched_setaffinity(0, cpus)  # 0 = this thread only
        buf = mmap.mmap(-1, buffer_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        ctypes.memset(addr, 1, buffer_bytes)  # first touch: pages land on this node
        start.wait()
        written = 0
        value = 2
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            ctypes.memset(addr, value, buffer_bytes)
            written += buffer_bytes
            value = (value % 250) + 2  # non-zero, changing: no zero-page tricks
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - t0
        out[index] = (written, elapsed)
        del addr
        buf.close()
    except Exception as exc:  # noqa: BLE001 - a failed writer reports None
        LOG.warning('bandwidth probe writer on CPUs %s failed: %s', cpus, exc)
        try:
            start.abort()
        except threading.BrokenBarrierError:
            pass
        out[index] = None


class BandwidthProbe:
    """Measures each node's memory write bandwidth in MiB/s."""

    def __init__(self, seconds_per_node: float = 0.25, buffer_mib: int = 64,
                 threads_per_node: int = 1):
        self.seconds_per_node = seconds_per_node
        self.buffer_mib = buffer_mib
        self.threads_per_node = threads_per_node

    def measure_node(self, cpus: tuple[int, ...]) -> Optional[float]:
        """MiB/s written by threads pinned to ``cpus``, or None if none of
        those CPUs exist on this machine (a test driver's topology)."""
        usable = tuple(sorted(set(cpus) & os.sched_getaffinity(0)))
        if not usable:
            return None
        count = self.threads_per_node
        results: list = [None] * count
        barrier = threading.Barrier(count)
        threads = [threading.Thread(target=_writer, name=f'numa-probe-{i}', daemon=True,
                                    args=(usable, self.buffer_mib * MIB, self.seconds_per_node,
                                          barrier, results, i))
                   for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = [r for r in results if r]
        if not done:
            return None
        total_bytes = sum(w for w, _ in done)
        elapsed = max(e for _, e in done)
        return total_bytes / MIB / elapsed if elapsed > 0 else None

    def run(self, nodes: list[dict]) -> dict[int, float]:
        """Measure every node one after the other (never two at once, so
        they do not compete for the memory bus)."""
        measured = {}
        for node in nodes:
            try:
                cpus = objects.parse_cpu_list(node['cpus'])
            except ValueError:
                continue
            value = self.measure_node(cpus)
            if value is not None:
                measured[node['id']] = value
        return measured

    def interval_seconds(self, configured_s: float, node_count: int, max_duty: float) -> float:
        """The probe period that keeps probe time / wall time <= max_duty."""
        busy = self.seconds_per_node * max(1, node_count) * 1.5  # + buffer first-touch
        return max(configured_s, busy / max_duty)
