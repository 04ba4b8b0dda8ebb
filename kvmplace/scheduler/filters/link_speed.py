"""Reject hosts that are unreachable or sit behind a slow link.

A migration over 1 GbE runs at about 75 MB/s: a 64 GiB guest
takes a quarter of an hour at that rate, so slow links are excluded up
front (``[scheduler] min_link_mbps``) rather than merely weighed down.
"""
from kvmplace.scheduler.filters import BaseFilter, split


class LinkSpeedFilter(BaseFilter):

    def host_passes(self, host, spec) -> bool:
        path = spec.path_mbps(host)
        return path > 0 and path >= spec.options.min_link_mbps

    def filter_all(self, hosts, spec):
        least = spec.options.min_link_mbps
        return split(hosts, [path > 0 and path >= least for path in spec.paths_mbps(hosts)])

    def reason(self, host, spec) -> str:
        path = spec.path_mbps(host)
        if path <= 0:
            return 'no network path from the source'
        return (f'widest path from the source is {path:g} Mbit/s, below '
                f'min_link_mbps {spec.options.min_link_mbps}')
