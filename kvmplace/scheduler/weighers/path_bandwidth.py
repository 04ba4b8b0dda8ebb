"""Raw: widest-path Mbit/s from the source.

Overlaps with migration_time when the link is the bottleneck, but also
rewards headroom: a wide path stays fast when other migrations share it.
"""
from kvmplace.scheduler.weighers import BaseWeigher


class PathBandwidthWeigher(BaseWeigher):
    multiplier_name = 'path_bandwidth_weight_multiplier'

    def weigh_column(self, cols, spec):
        return cols.path_mbps
