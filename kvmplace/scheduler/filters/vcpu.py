"""Reject hosts without room for the guest's vCPUs (with cpu_allocation_ratio)."""
from kvmplace import resources
from kvmplace.scheduler.filters import BaseFilter, split


class VcpuFilter(BaseFilter):

    @staticmethod
    def free_vcpus(host, spec) -> float:
        return resources.free_vcpus(host.vcpus, host.vcpus_used,
                                    spec.options.cpu_allocation_ratio)

    def host_passes(self, host, spec) -> bool:
        return self.free_vcpus(host, spec) >= spec.instance.vcpus

    def filter_all(self, hosts, spec):
        ratio = spec.options.cpu_allocation_ratio
        need = spec.instance.vcpus
        free = resources.free_vcpus
        return split(hosts, [free(host.vcpus, host.vcpus_used, ratio) >= need
                             for host in hosts])

    def reason(self, host, spec) -> str:
        return (f'needs {spec.instance.vcpus} vCPUs, host has '
                f'{max(0, self.free_vcpus(host, spec)):.0f} free '
                f'(cpu_allocation_ratio {spec.options.cpu_allocation_ratio:g})')
