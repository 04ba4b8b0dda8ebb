"""Small builders for inventories, so each test states only what it checks.

Everything goes through :func:`kvmplace.inventory.from_dict`, so a test
inventory is validated exactly like an operator's file and gets the same
defaults.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

from kvmplace import inventory
from kvmplace import objects

BASELINE_MIBPS = 20000.0
"""Baseline write bandwidth of the test NUMA nodes; health h measures h x this."""


def numa(*healths: Optional[float], cpus_per_node: int = 8, memory_mib: int = 32768,
         free_memory_mib: Optional[int] = None) -> list[dict[str, Any]]:
    """NUMA node dicts, one per health value (None: no bandwidth figures).

    Node i gets CPUs ``i*cpus_per_node .. (i+1)*cpus_per_node - 1``; give the
    host at least ``len(healths) * cpus_per_node`` vcpus.
    """
    nodes = []
    for i, health in enumerate(healths):
        node = {'id': i,
                'cpus': f'{i * cpus_per_node}-{(i + 1) * cpus_per_node - 1}',
                'memory_mib': memory_mib,
                'free_memory_mib': memory_mib if free_memory_mib is None else free_memory_mib}
        if health is not None:
            node['bandwidth_mibps'] = health * BASELINE_MIBPS
            node['baseline_mibps'] = BASELINE_MIBPS
        nodes.append(node)
    return nodes


class InventoryBuilder:
    """Collects host/instance/link dicts; ``build()`` validates them."""

    def __init__(self):
        self.hosts: list[dict[str, Any]] = []
        self.instances: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []

    def host(self, name: str, **fields) -> InventoryBuilder:
        data = {'name': name, 'vcpus': 32, 'memory_mib': 131072, 'link_mbps': 10000}
        data.update(fields)
        self.hosts.append(data)
        return self

    def instance(self, name: str, host: str, **fields) -> InventoryBuilder:
        data = {'name': name, 'host': host, 'memory_mib': 4096, 'vcpus': 2}
        data.update(fields)
        self.instances.append(data)
        return self

    def link(self, a: str, b: str, mbps: float) -> InventoryBuilder:
        self.links.append({'a': a, 'b': b, 'mbps': mbps})
        return self

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {'hosts': copy.deepcopy(self.hosts),
                                'instances': copy.deepcopy(self.instances)}
        if self.links:
            data['links'] = copy.deepcopy(self.links)
        return data

    def build(self) -> objects.Inventory:
        return inventory.from_dict(self.as_dict())
