"""Filter plugins (namespace ``kvmplace.scheduler.filters``), one a module.

A filter answers one question about one host: may this guest go there?
``host_passes`` is the fast path (a bool); ``reason`` is asked only for the
hosts that fail, so explaining a rejection costs nothing when hosts pass.
Filters are pure: no I/O, no libvirt, no clock other than ``spec.now``.
"""
from __future__ import annotations

from itertools import compress
from operator import not_

from kvmplace import objects
from kvmplace.scheduler.spec import RequestSpec


def split(hosts: list[objects.Host], passes: list[bool]
          ) -> tuple[list[objects.Host], list[objects.Host]]:
    """(hosts whose flag is true, the others), both keeping order."""
    return list(compress(hosts, passes)), list(compress(hosts, map(not_, passes)))


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
        """Split hosts into (passed, failed), keeping order.

        The manager calls this once per request with every candidate. A
        filter may override it to read the request's values once and test
        each host inline rather than through ``host_passes``; it must pass
        exactly the hosts ``host_passes`` passes (tests/unit/scheduler/
        test_fast_path.py checks the built-in filters).
        """
        check = self.host_passes
        return split(hosts, [check(host, spec) for host in hosts])
