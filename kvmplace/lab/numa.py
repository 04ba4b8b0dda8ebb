"""Each lab host's emulated two-node NUMA topology (``<host>/numa.json``).

The machine has one real NUMA node; the lab splits its CPUs into two
emulated nodes (CPU 0 in node 0, CPU 1 in node 1 on a 2-CPU machine) so
that pinning a QEMU emulator thread "to the other node" is a real change of
CPUs that can be read back from /proc. Memory bandwidth cannot be made slow
per node here, so it is injected: ``bandwidth_mibps`` is the figure an
agent reports as measured, ``baseline_mibps`` the healthy figure; health is
their ratio. ``set_bandwidth`` (``kvmplace-lab slow-node``) edits it.

The file is a JSON list of nodes with the same fields as the inventory's
NUMA nodes (ARCHITECTURE.md)::

    [{"id": 0, "cpus": "0", "memory_mib": 4096, "free_memory_mib": 3840,
      "bandwidth_mibps": 10000, "baseline_mibps": 10000}, {"id": 1, ...}]
"""
from __future__ import annotations

import json
import os
import tempfile

from kvmplace.lab import state as labstate
from kvmplace.lab.errors import LabError

DEFAULT_HOST_MEMORY_MIB = 8192
DEFAULT_BASELINE_MIBPS = 10000


def cpu_split(cpu_count: int | None = None) -> tuple[str, str]:
    """CPU lists of the two emulated nodes: first half, second half."""
    count = cpu_count or os.cpu_count() or 1
    if count == 1:
        return "0", "0"
    half = count // 2

    def span(lo: int, hi: int) -> str:
        return str(lo) if lo == hi else f"{lo}-{hi}"
    return span(0, half - 1), span(half, count - 1)


def topology(memory_mib: int = DEFAULT_HOST_MEMORY_MIB,
             used_mib: tuple[int, int] = (0, 0),
             baseline_mibps: int = DEFAULT_BASELINE_MIBPS) -> list[dict]:
    """A healthy two-node topology for one lab host."""
    per_node = memory_mib // 2
    return [{"id": node, "cpus": cpus, "memory_mib": per_node,
             "free_memory_mib": max(0, per_node - used_mib[node]),
             "bandwidth_mibps": baseline_mibps, "baseline_mibps": baseline_mibps}
            for node, cpus in enumerate(cpu_split())]


def write(host: str, nodes: list[dict]) -> str:
    """Write atomically: an agent may read the file at any moment."""
    path = labstate.numa_file(host)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".numa.")
    with os.fdopen(fd, "w") as f:
        json.dump(nodes, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read(host: str) -> list[dict]:
    try:
        with open(labstate.numa_file(host)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabError(f"{host}: no NUMA topology file (is the lab up?)") from None


def set_bandwidth(host: str, node: int, bandwidth_mibps: int | None) -> list[dict]:
    """Mark ``node`` of ``host`` slow (or healthy again with None = baseline)."""
    nodes = read(host)
    for entry in nodes:
        if entry["id"] == node:
            if bandwidth_mibps is not None and bandwidth_mibps <= 0:
                raise LabError("bandwidth must be a positive number of MiB/s")
            entry["bandwidth_mibps"] = (entry["baseline_mibps"] if bandwidth_mibps is None
                                        else bandwidth_mibps)
            write(host, nodes)
            return nodes
    raise LabError(f"{host} has no NUMA node {node} "
                   f"(nodes: {', '.join(str(n['id']) for n in nodes)})")
