"""Capacity bookkeeping while a plan fills hosts (same rules as the filters)."""
from __future__ import annotations

from kvmplace import objects
from kvmplace import resources


class Capacity:
    """RAM and vCPU room of each host, consumed as moves are planned."""

    def __init__(self, conf, inventory: objects.Inventory):
        s = conf.scheduler
        self.inventory = inventory
        self.ram_ratio = s.ram_allocation_ratio
        self.cpu_ratio = s.cpu_allocation_ratio
        self.reserved = s.reserved_host_memory_mib

    def free_mib(self, host: objects.Host) -> float:
        return resources.free_ram_mib(host.memory_mib, host.memory_used_mib,
                                      self.ram_ratio, self.reserved)

    def free_vcpus(self, host: objects.Host) -> float:
        return resources.free_vcpus(host.vcpus, host.vcpus_used, self.cpu_ratio)

    def fits(self, inst: objects.Instance, dest: str) -> bool:
        host = self.inventory.hosts[dest]
        return self.free_mib(host) >= inst.memory_mib and self.free_vcpus(host) >= inst.vcpus

    def claim(self, inst: objects.Instance, dest: str) -> None:
        """Move the guest's resources from its host to ``dest`` in the plan."""
        target = self.inventory.hosts[dest]
        target.memory_used_mib += inst.memory_mib
        target.vcpus_used += inst.vcpus
        source = self.inventory.hosts.get(inst.host)
        if source is not None:
            source.memory_used_mib = max(0, source.memory_used_mib - inst.memory_mib)
            source.vcpus_used = max(0, source.vcpus_used - inst.vcpus)
