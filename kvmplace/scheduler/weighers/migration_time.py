"""Raw: predicted total migration seconds (default multiplier -1: faster wins)."""
from kvmplace.scheduler.weighers import BaseWeigher


class MigrationTimeWeigher(BaseWeigher):
    multiplier_option = 'migration_time_weight_multiplier'

    def weigh(self, host, spec) -> float:
        return spec.estimate(host).total_seconds

    def weigh_all(self, hosts, spec) -> list[float]:
        return [float(est.total_seconds) for est in spec.estimates(hosts)]
