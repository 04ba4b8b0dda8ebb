"""Reject the guest's current host: migrating to it is a no-op libvirt refuses."""
from kvmplace.scheduler.filters import BaseFilter


class NotSourceFilter(BaseFilter):

    def host_passes(self, host, spec) -> bool:
        return host.name != spec.source.name

    def reason(self, host, spec) -> str:
        return 'host is the source'
