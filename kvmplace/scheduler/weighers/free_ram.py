"""Raw: MiB left free on the host after the guest lands (Nova's RAMWeigher)."""
from kvmplace.scheduler.weighers import BaseWeigher


class FreeRamWeigher(BaseWeigher):
    multiplier_option = 'free_ram_weight_multiplier'

    def weigh(self, host, spec) -> float:
        s = spec.options
        return (host.memory_mib * s.ram_allocation_ratio - s.reserved_host_memory_mib
                - host.memory_used_mib - spec.instance.memory_mib)
