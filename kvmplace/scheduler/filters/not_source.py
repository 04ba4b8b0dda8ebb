"""Reject the guest's current host: migrating to it is a no-op libvirt refuses."""
from kvmplace.scheduler.filters import BaseFilter


class NotSourceFilter(BaseFilter):

    def passes_column(self, cols, spec):
        source = spec.source.name
        return [name != source for name in cols.names]

    def reason(self, host, spec) -> str:
        return 'host is the source'
