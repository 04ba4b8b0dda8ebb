"""Filter plugins (namespace ``kvmplace.scheduler.filters``), one a module.

A filter answers one question about one host: may this guest go there?
``host_passes`` is the fast path (a bool); ``reason`` is asked only for the
hosts that fail, so explaining a rejection costs nothing when hosts pass.
Filters are pure: no I/O, no libvirt, no clock other than ``spec.now``.
"""
from __future__ import annotations

from kvmplace import objects
from kvmplace.scheduler.spec import RequestSpec


class BaseFilter:
    """Override ``host_passes`` and ``reason``."""

    #: entry-point name, set by the loader
    name = 'base'

    def __init__(self, conf):
        self.conf = conf

    def host_passes(self, host: objects.Host, spec: RequestSpec) -> bool:
        raise NotImplementedError

    def reason(self, host: objects.Host, spec: RequestSpec) -> str:
        """Why ``host`` failed, in words an operator understands."""
        raise NotImplementedError

    def filter_all(self, hosts: list[objects.Host], spec: RequestSpec
                   ) -> tuple[list[objects.Host], list[objects.Host]]:
        """Split hosts into (passed, failed), keeping order."""
        passed, failed = [], []
        check = self.host_passes
        for host in hosts:
            (passed if check(host, spec) else failed).append(host)
        return passed, failed
