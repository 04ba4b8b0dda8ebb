"""Reject hosts without room for the guest's memory.

Usable memory is ``memory_mib x ram_allocation_ratio - reserved``; the
default ratio 1.0 means no overcommit, which suits migration targets: an
overcommitted destination swaps while pages arrive and stalls the copy.
"""
from kvmplace.scheduler.filters import BaseFilter


class RamFilter(BaseFilter):

    def free_mib(self, host) -> float:
        s = self.conf.scheduler
        return (host.memory_mib * s.ram_allocation_ratio - s.reserved_host_memory_mib
                - host.memory_used_mib)

    def host_passes(self, host, spec) -> bool:
        return self.free_mib(host) >= spec.instance.memory_mib

    def reason(self, host, spec) -> str:
        return (f'needs {spec.instance.memory_mib} MiB RAM, host has '
                f'{max(0, self.free_mib(host)):.0f} MiB free '
                f'(ram_allocation_ratio {self.conf.scheduler.ram_allocation_ratio:g})')
