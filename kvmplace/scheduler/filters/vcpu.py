"""Reject hosts without room for the guest's vCPUs (with cpu_allocation_ratio)."""
from kvmplace.scheduler.filters import BaseFilter


class VcpuFilter(BaseFilter):

    def passes_column(self, cols, spec):
        return cols.free_vcpus >= spec.instance.vcpus

    def reason(self, host, spec) -> str:
        return (f'needs {spec.instance.vcpus} vCPUs, host has '
                f'{max(0, spec.free_vcpus(host)):.0f} free '
                f'(cpu_allocation_ratio {spec.options.cpu_allocation_ratio:g})')
