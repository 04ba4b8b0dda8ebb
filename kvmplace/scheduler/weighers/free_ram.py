"""Raw: MiB left free on the host after the guest lands (Nova's RAMWeigher)."""
from kvmplace import resources
from kvmplace.scheduler.weighers import BaseWeigher


class FreeRamWeigher(BaseWeigher):
    multiplier_option = 'free_ram_weight_multiplier'

    def weigh(self, host, spec) -> float:
        s = spec.options
        return (resources.free_ram_mib(host.memory_mib, host.memory_used_mib,
                                       s.ram_allocation_ratio, s.reserved_host_memory_mib)
                - spec.instance.memory_mib)

    def weigh_all(self, hosts, spec) -> list[float]:
        s = spec.options
        ratio, reserved = s.ram_allocation_ratio, s.reserved_host_memory_mib
        need = spec.instance.memory_mib
        free = resources.free_ram_mib
        return [float(free(host.memory_mib, host.memory_used_mib, ratio, reserved) - need)
                for host in hosts]
