"""The per-request context every filter and weigher reads.

Filters and weighers are pure functions of (host, spec). Whatever is costly
and shared between them - the widest paths from the source, the source's
NUMA nodes, each host's destination node, the migration estimate for a
host - is computed here once per request and memoized, so a ten-thousand
host request picks each host's node once and runs the pre-copy model only
once per distinct set of bandwidths (see estimator.rates and
kvmplace.scheduler.model). Memos are keyed by host name and live as long as
the spec (one request): host states are never assumed to stay the same from
one request to the next.

The derived numbers every plugin reads are offered here, as Nova keeps
them on its HostState, so no plugin restates a formula: per host
:meth:`RequestSpec.free_ram_mib`, :meth:`RequestSpec.free_vcpus`,
:meth:`RequestSpec.host_up`, :meth:`RequestSpec.dest_health`,
:meth:`RequestSpec.path_mbps` and :meth:`RequestSpec.estimate`; per column
:meth:`RequestSpec.columns` (:mod:`kvmplace.scheduler.hosts`), whose
columns are built once per request over every candidate and whose path,
health and estimate columns fill the same memos as the per-host forms.
"""
from __future__ import annotations

import time
import types
from typing import Optional

import numpy as np

from kvmplace import estimator
from kvmplace import objects
from kvmplace import resources
from kvmplace import topology as topo
from kvmplace.scheduler.hosts import HostColumns, HostTable, best_node_healths
from kvmplace.scheduler.model import RequestModel


class RequestSpec:
    """Everything known about one "where should this guest go?" question."""

    def __init__(self, conf, instance: objects.Instance, source: objects.Host,
                 request: objects.MigrationRequest, topology: topo.Topology,
                 params: Optional[estimator.ModelParams] = None,
                 now: Optional[float] = None,
                 path_rates: Optional[dict[tuple[str, str], float]] = None):
        self.conf = conf
        #: The [scheduler] options in force for this request, read once:
        #: filters ask for their thresholds once per host, and an oslo.config
        #: lookup costs more than the check itself. One request also never
        #: sees two values of an option.
        self.options = types.SimpleNamespace(**dict(conf.scheduler))
        self.instance = instance
        self.source = source
        self.request = request
        self.topology = topology
        base = params or estimator.ModelParams.from_conf(conf)
        self.params = base.with_policy(request.policy)
        self.now = time.time() if now is None else now
        self._width = topology.widths_from(source.name)
        self._source = estimator.source_nodes(instance, source)
        self._model = RequestModel(instance, self._source, self.params)
        #: Learned MiB/s of the paths from this source, by destination: one
        #: dict lookup per host on the hot path.
        self._learned = {dest: mibps for (src, dest), mibps in (path_rates or {}).items()
                         if src == source.name}
        self._dest_health: dict[str, float] = {}
        self._host_estimates: dict[str, objects.Estimate] = {}
        self._table: Optional[HostTable] = None

    # -- columns ----------------------------------------------------------
    def table(self, hosts: list[objects.Host]) -> HostTable:
        """Make ``hosts`` this request's candidates: the table whose
        columns every plugin's column form reads (the manager calls this
        once per request, after force_hosts and ignore_hosts)."""
        self._table = HostTable(self, hosts)
        return self._table

    def columns(self, hosts: list[objects.Host]) -> HostColumns:
        """``hosts`` as columns: a view of the request's table when they
        are among its candidates (its columns are not built again), else
        a table of their own."""
        table = self._table
        if table is not None:
            index = table.positions(hosts)
            if index is not None:
                return table.view(index, list(hosts))
        return HostTable(self, hosts).view()

    # -- per host ---------------------------------------------------------
    def free_ram_mib(self, host: objects.Host) -> float:
        """MiB still free on ``host`` (ram_allocation_ratio and reserved)."""
        s = self.options
        return resources.free_ram_mib(host.memory_mib, host.memory_used_mib,
                                      s.ram_allocation_ratio, s.reserved_host_memory_mib)

    def free_vcpus(self, host: objects.Host) -> float:
        """vCPUs still free on ``host`` (cpu_allocation_ratio)."""
        return resources.free_vcpus(host.vcpus, host.vcpus_used,
                                    self.options.cpu_allocation_ratio)

    def host_up(self, host: objects.Host) -> bool:
        """``host`` says it is up and reported within host_down_seconds
        (a host without a report time, as offline inventories give, is up)."""
        return host.up and resources.host_is_up(host.updated_at, self.now,
                                                self.options.host_down_seconds,
                                                missing_is_up=True)

    def path_mbps(self, host: objects.Host) -> float:
        """Widest-path Mbit/s from the source to ``host``; 0 when unreachable."""
        return self._width.get(host.name, 0.0)

    def paths_mbps(self, hosts: list[objects.Host]) -> list[float]:
        """:meth:`path_mbps` of each host, in order."""
        width = self._width
        return [width.get(host.name, 0.0) for host in hosts]

    def dest_node(self, host: objects.Host) -> Optional[objects.NumaNode]:
        return host.best_node(self.instance.memory_mib)

    def dest_health(self, host: objects.Host) -> float:
        """Health of the node of ``host`` that would carry QEMU's main thread."""
        health = self._dest_health.get(host.name)
        if health is None:
            health = estimator.dest_health(self.instance, host)
            self._dest_health[host.name] = health
        return health

    def dest_healths(self, hosts: list[objects.Host]) -> list[float]:
        """:meth:`dest_health` of each host, in order."""
        memo = self._dest_health
        missing = [host for host in hosts if host.name not in memo]
        if missing:
            self.fill_dest_healths(missing)
        return [memo[host.name] for host in hosts]

    def fill_dest_healths(self, hosts: list[objects.Host]) -> np.ndarray:
        """:meth:`dest_health` of each host computed as one column
        (:func:`hosts.best_node_healths`), and memoized for the per-host
        form (a rejected host's reason, a weigher written per host)."""
        healths = best_node_healths(hosts, self.instance.memory_mib)
        self._dest_health.update(zip([host.name for host in hosts], healths.tolist()))
        return healths

    def estimate(self, host: objects.Host) -> objects.Estimate:
        """The migration estimate to ``host``, memoized on what it depends on.

        An estimate depends on the destination only through the bandwidths
        of :func:`estimator.rates`, so hosts with the same rates share one.
        """
        est = self._host_estimates.get(host.name)
        if est is None:
            est = self.estimates([host])[0]
        return est

    def estimates(self, hosts: list[objects.Host]) -> list[objects.Estimate]:
        """:meth:`estimate` of each host, in order."""
        memo = self._host_estimates
        missing = [h for h in hosts if h.name not in memo]
        if missing:
            width = self._width
            self.fill_estimates(missing, self.dest_healths(missing),
                                [width.get(host.name, 0.0) for host in missing])
        return [memo[h.name] for h in hosts]

    def fill_estimates(self, hosts: list[objects.Host], dest_healths: list[float],
                       paths_mbps: list[float]) -> list[objects.Estimate]:
        """The estimates to ``hosts``, given their destination health and
        path rate (:meth:`dest_health`, :meth:`path_mbps`), memoized for
        the per-host form."""
        model = self._model
        learned = self._learned
        names = [host.name for host in hosts]
        made = model.estimates(model.rates_all(dest_healths, paths_mbps,
                                               [learned.get(name) for name in names]))
        self._host_estimates.update(zip(names, made))
        return made
