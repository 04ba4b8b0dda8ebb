"""Reject hosts that are disabled or have stopped reporting.

A host whose agent has gone quiet may be down; sending a guest there risks
a migration into a dead host, so "up" is a hard requirement (up as
:func:`kvmplace.resources.host_is_up` defines it, ``[scheduler]
host_down_seconds``).
"""
from kvmplace import resources
from kvmplace.scheduler.filters import BaseFilter


class EnabledFilter(BaseFilter):

    def passes_column(self, cols, spec):
        return cols.enabled & cols.up

    def reason(self, host, spec) -> str:
        if not host.enabled:
            return 'host is disabled'
        if not host.up:
            return 'host is down'
        age = resources.report_age_seconds(host.updated_at, spec.now) or 0.0
        return (f'host has not reported for {age:.0f} s '
                f'(host_down_seconds {spec.options.host_down_seconds})')
