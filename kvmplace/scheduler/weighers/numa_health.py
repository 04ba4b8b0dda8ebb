"""Raw: health (0..1) of the destination node that will carry QEMU's main thread."""
from kvmplace.scheduler.weighers import BaseWeigher


class NumaHealthWeigher(BaseWeigher):
    multiplier_name = 'numa_health_weight_multiplier'

    def weigh_column(self, cols, spec):
        return cols.dest_health
