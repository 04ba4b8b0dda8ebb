"""Raw: widest-path Mbit/s from the source.

Overlaps with migration_time when the link is the bottleneck, but also
rewards headroom: a wide path stays fast when other migrations share it.
"""
from kvmplace.scheduler.weighers import BaseWeigher


class PathBandwidthWeigher(BaseWeigher):
    multiplier_option = 'path_bandwidth_weight_multiplier'

    def weigh(self, host, spec) -> float:
        return spec.path_mbps(host)

    def weigh_all(self, hosts, spec) -> list[float]:
        return [float(mbps) for mbps in spec.paths_mbps(hosts)]
