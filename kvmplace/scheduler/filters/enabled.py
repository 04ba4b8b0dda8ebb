"""Reject hosts that are disabled or have stopped reporting.

A host whose agent has gone quiet may be down; sending a guest there risks
a migration into a dead host, so "up" is a hard requirement.
"""
from kvmplace.scheduler.filters import BaseFilter, split


class EnabledFilter(BaseFilter):

    def _stale_seconds(self, host, spec) -> float:
        if host.updated_at is None:
            return 0.0
        return spec.now - host.updated_at

    def host_passes(self, host, spec) -> bool:
        return (host.enabled and host.up and
                self._stale_seconds(host, spec) <= spec.options.host_down_seconds)

    def filter_all(self, hosts, spec):
        now = spec.now
        limit = spec.options.host_down_seconds
        return split(hosts, [host.enabled and host.up and
                             (0.0 if host.updated_at is None
                              else now - host.updated_at) <= limit
                             for host in hosts])

    def reason(self, host, spec) -> str:
        if not host.enabled:
            return 'host is disabled'
        if not host.up:
            return 'host is down'
        return (f'host has not reported for {self._stale_seconds(host, spec):.0f} s '
                f'(host_down_seconds {spec.options.host_down_seconds})')
