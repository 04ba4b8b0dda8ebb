"""Reject hosts in maintenance: they are being drained, not filled."""
from kvmplace.scheduler.filters import BaseFilter


class MaintenanceFilter(BaseFilter):

    def host_passes(self, host, spec) -> bool:
        return not host.maintenance

    def reason(self, host, spec) -> str:
        return 'host is in maintenance'
