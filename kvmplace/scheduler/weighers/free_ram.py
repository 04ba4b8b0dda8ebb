"""Raw: MiB left free on the host after the guest lands (Nova's RAMWeigher)."""
from kvmplace.scheduler.weighers import BaseWeigher


class FreeRamWeigher(BaseWeigher):
    multiplier_option = 'free_ram_weight_multiplier'

    def weigh(self, host, spec) -> float:
        s = spec.options
        return (host.memory_mib * s.ram_allocation_ratio - s.reserved_host_memory_mib
                - host.memory_used_mib - spec.instance.memory_mib)

    def weigh_all(self, hosts, spec) -> list[float]:
        s = spec.options
        ratio, reserved = s.ram_allocation_ratio, s.reserved_host_memory_mib
        need = spec.instance.memory_mib
        return [float(host.memory_mib * ratio - reserved - host.memory_used_mib - need)
                for host in hosts]
