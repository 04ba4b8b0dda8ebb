"""The per-request context every filter and weigher reads.

Filters and weighers are pure functions of (host, spec). Whatever is costly
and shared between them - the widest paths from the source, the migration
estimate for a host - is computed here once and memoized, so a ten-thousand
host request runs the pre-copy model only once per distinct (path rate,
destination NUMA health) pair.
"""
from __future__ import annotations

import time
from typing import Optional

from kvmplace import estimator
from kvmplace import objects
from kvmplace import topology as topo


class RequestSpec:
    """Everything known about one "where should this guest go?" question."""

    def __init__(self, conf, instance: objects.Instance, source: objects.Host,
                 request: objects.MigrationRequest, topology: topo.Topology,
                 params: Optional[estimator.ModelParams] = None,
                 now: Optional[float] = None):
        self.conf = conf
        self.instance = instance
        self.source = source
        self.request = request
        self.topology = topology
        base = params or estimator.ModelParams.from_conf(conf)
        self.params = base.with_policy(request.policy)
        self.now = time.time() if now is None else now
        self._width, _ = topology.widest_from(source.name)
        self._estimates: dict[tuple[float, float], objects.Estimate] = {}
        self._source_health = None

    def path_mbps(self, host: objects.Host) -> float:
        return self._width.get(host.name, 0.0)

    def dest_node(self, host: objects.Host) -> Optional[objects.NumaNode]:
        return host.best_node(self.instance.memory_mib)

    def dest_health(self, host: objects.Host) -> float:
        node = self.dest_node(host)
        return node.health if node is not None else 1.0

    def estimate(self, host: objects.Host) -> objects.Estimate:
        """The migration estimate to ``host``, memoized on what it depends on."""
        path = self.path_mbps(host)
        key = (path, self.dest_health(host))
        cached = self._estimates.get(key)
        if cached is None:
            cached = estimator.estimate(self.instance, self.source, host, path, self.params)
            self._estimates[key] = cached
        return cached
