"""Reject hosts in maintenance: they are being drained, not filled."""
from kvmplace.scheduler.filters import BaseFilter, split


class MaintenanceFilter(BaseFilter):

    def host_passes(self, host, spec) -> bool:
        return not host.maintenance

    def filter_all(self, hosts, spec):
        return split(hosts, [not host.maintenance for host in hosts])

    def reason(self, host, spec) -> str:
        return 'host is in maintenance'
