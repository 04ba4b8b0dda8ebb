"""Raw: predicted total migration seconds (default multiplier -1: faster wins)."""
from kvmplace.scheduler.weighers import BaseWeigher


class MigrationTimeWeigher(BaseWeigher):
    multiplier_name = 'migration_time_weight_multiplier'

    def weigh_column(self, cols, spec):
        return [est.total_seconds for est in cols.estimates]
