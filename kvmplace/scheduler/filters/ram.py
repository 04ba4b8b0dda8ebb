"""Reject hosts without room for the guest's memory.

Free memory is :func:`kvmplace.resources.free_ram_mib`: ``memory_mib x
ram_allocation_ratio - reserved - used``; the default ratio 1.0 means no
overcommit, which suits migration targets: an overcommitted destination
swaps while pages arrive and stalls the copy.
"""
from kvmplace.scheduler.filters import BaseFilter


class RamFilter(BaseFilter):

    def passes_column(self, cols, spec):
        return cols.free_ram_mib >= spec.instance.memory_mib

    def reason(self, host, spec) -> str:
        return (f'needs {spec.instance.memory_mib} MiB RAM, host has '
                f'{max(0, spec.free_ram_mib(host)):.0f} MiB free '
                f'(ram_allocation_ratio {spec.options.ram_allocation_ratio:g})')
