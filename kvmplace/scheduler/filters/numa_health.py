"""Reject hosts with no NUMA node at healthy memory bandwidth.

When a host's memory slows down, migration into and out of it crawls (10 GbE
at about 100 MB/s instead of 300). The incoming QEMU main thread is pinned
to the destination's healthiest node *with room for the guest's memory* (the
node the estimate uses too), so a host passes when that node is at
``numa_health_threshold`` or better. Hosts that report no bandwidth figures
count as healthy.
"""
from kvmplace.scheduler.filters import BaseFilter


class NumaHealthFilter(BaseFilter):

    def passes_column(self, cols, spec):
        return cols.dest_health >= spec.options.numa_health_threshold

    def reason(self, host, spec) -> str:
        return (f'best NUMA node with room runs at {spec.dest_health(host):.0%} of its '
                f'baseline write bandwidth, below numa_health_threshold '
                f'{spec.options.numa_health_threshold:.0%}')
