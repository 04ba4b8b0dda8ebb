"""Reject hosts that are unreachable or sit behind a slow link.

A migration over 1 GbE runs at about 75 MB/s: a 64 GiB guest
takes a quarter of an hour at that rate, so slow links are excluded up
front (``[scheduler] min_link_mbps``) rather than merely weighed down.
"""
from kvmplace.scheduler.filters import BaseFilter


class LinkSpeedFilter(BaseFilter):

    def passes_column(self, cols, spec):
        path = cols.path_mbps
        return (path > 0) & (path >= spec.options.min_link_mbps)

    def reason(self, host, spec) -> str:
        path = spec.path_mbps(host)
        if path <= 0:
            return 'no network path from the source'
        return (f'widest path from the source is {path:g} Mbit/s, below '
                f'min_link_mbps {spec.options.min_link_mbps}')
