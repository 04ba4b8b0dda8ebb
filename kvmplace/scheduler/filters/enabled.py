"""Reject hosts that are disabled or have stopped reporting.

A host whose agent has gone quiet may be down; sending a guest there risks
a migration into a dead host, so "up" is a hard requirement.
"""
from kvmplace import resources
from kvmplace.scheduler.filters import BaseFilter, split


class EnabledFilter(BaseFilter):

    def _stale_seconds(self, host, spec) -> float:
        return resources.report_age_seconds(host.updated_at, spec.now) or 0.0

    def host_passes(self, host, spec) -> bool:
        # An offline inventory without timestamps describes its hosts as they are.
        return (host.enabled and host.up and
                resources.host_is_up(host.updated_at, spec.now,
                                     spec.options.host_down_seconds, missing_is_up=True))

    def filter_all(self, hosts, spec):
        now = spec.now
        limit = spec.options.host_down_seconds
        is_up = resources.host_is_up
        return split(hosts, [host.enabled and host.up and
                             is_up(host.updated_at, now, limit, True)
                             for host in hosts])

    def reason(self, host, spec) -> str:
        if not host.enabled:
            return 'host is disabled'
        if not host.up:
            return 'host is down'
        return (f'host has not reported for {self._stale_seconds(host, spec):.0f} s '
                f'(host_down_seconds {spec.options.host_down_seconds})')
