"""Reject hosts without room for the guest's memory.

Usable memory is ``memory_mib x ram_allocation_ratio - reserved``; the
default ratio 1.0 means no overcommit, which suits migration targets: an
overcommitted destination swaps while pages arrive and stalls the copy.
"""
from kvmplace import resources
from kvmplace.scheduler.filters import BaseFilter, split


class RamFilter(BaseFilter):

    @staticmethod
    def free_mib(host, spec) -> float:
        s = spec.options
        return resources.free_ram_mib(host.memory_mib, host.memory_used_mib,
                                      s.ram_allocation_ratio, s.reserved_host_memory_mib)

    def host_passes(self, host, spec) -> bool:
        return self.free_mib(host, spec) >= spec.instance.memory_mib

    def filter_all(self, hosts, spec):
        s = spec.options
        ratio, reserved = s.ram_allocation_ratio, s.reserved_host_memory_mib
        need = spec.instance.memory_mib
        free = resources.free_ram_mib
        return split(hosts, [free(host.memory_mib, host.memory_used_mib, ratio, reserved) >= need
                             for host in hosts])

    def reason(self, host, spec) -> str:
        return (f'needs {spec.instance.memory_mib} MiB RAM, host has '
                f'{max(0, self.free_mib(host, spec)):.0f} MiB free '
                f'(ram_allocation_ratio {spec.options.ram_allocation_ratio:g})')
