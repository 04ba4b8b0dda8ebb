"""Raw: MiB left free on the host after the guest lands (Nova's RAMWeigher)."""
from kvmplace.scheduler.weighers import BaseWeigher


class FreeRamWeigher(BaseWeigher):
    multiplier_name = 'free_ram_weight_multiplier'

    def weigh_column(self, cols, spec):
        return cols.free_ram_mib - spec.instance.memory_mib
