"""Reject the guest's current host: migrating to it is a no-op libvirt refuses."""
from kvmplace.scheduler.filters import BaseFilter, split


class NotSourceFilter(BaseFilter):

    def host_passes(self, host, spec) -> bool:
        return host.name != spec.source.name

    def filter_all(self, hosts, spec):
        source = spec.source.name
        return split(hosts, [host.name != source for host in hosts])

    def reason(self, host, spec) -> str:
        return 'host is the source'
