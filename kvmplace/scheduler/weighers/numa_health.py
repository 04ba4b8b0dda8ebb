"""Raw: health (0..1) of the destination node that will carry QEMU's main thread."""
from kvmplace.scheduler.weighers import BaseWeigher


class NumaHealthWeigher(BaseWeigher):
    multiplier_option = 'numa_health_weight_multiplier'

    def weigh(self, host, spec) -> float:
        return spec.dest_health(host)

    def weigh_all(self, hosts, spec) -> list[float]:
        return [float(health) for health in spec.dest_healths(hosts)]
