"""Keep RAM headroom on destinations, and prefer hosts with vCPUs to spare.

A third-party example: each plugin writes one predicate, in the form that
reads best, and keeps its options in its own group ``[headroom]``. The
filter is written per column (numpy over every candidate at once); the
weigher per host. kvmplace's base classes derive the other form of each,
and ``kvmplace.scheduler.testing.check_plugin`` checks that they agree.

Packaged, the plugins are registered as entry points::

    [entry_points]
    kvmplace.scheduler.filters =
        headroom = headroom:HeadroomFilter
    kvmplace.scheduler.weighers =
        free_vcpu = headroom:FreeVcpuWeigher
    oslo.config.opts =
        headroom = headroom:list_opts
"""
from oslo_config import cfg

from kvmplace import resources
from kvmplace.scheduler.filters import BaseFilter
from kvmplace.scheduler.weighers import BaseWeigher

GROUP = cfg.OptGroup('headroom', help='RAM headroom kept on migration targets.')
OPTS = [
    cfg.FloatOpt('min_free_ram_fraction', default=0.1, min=0.0, max=1.0,
                 help='Fraction of a host\'s usable RAM that must stay free '
                      'after the guest lands.'),
    cfg.FloatOpt('free_vcpu_weight_multiplier', default=1.0,
                 help='Multiplier of the free_vcpu weigher.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}


class HeadroomFilter(BaseFilter):
    """Reject hosts left with less than min_free_ram_fraction of their
    usable RAM free once the guest lands (room for the guests they host
    to grow)."""

    def passes_column(self, cols, spec):
        s = spec.options
        usable = resources.usable_ram_mib(cols.memory_mib, s.ram_allocation_ratio,
                                          s.reserved_host_memory_mib)
        left = cols.free_ram_mib - spec.instance.memory_mib
        return left >= spec.conf.headroom.min_free_ram_fraction * usable

    def reason(self, host, spec):
        return (f'would keep {spec.free_ram_mib(host) - spec.instance.memory_mib:.0f} MiB '
                f'free, below min_free_ram_fraction '
                f'{spec.conf.headroom.min_free_ram_fraction:g} of its usable RAM')


class FreeVcpuWeigher(BaseWeigher):
    """Raw: vCPUs still free on the host (cpu_allocation_ratio applied)."""
    multiplier_group = 'headroom'
    multiplier_name = 'free_vcpu_weight_multiplier'

    def weigh(self, host, spec):
        return spec.free_vcpus(host)
