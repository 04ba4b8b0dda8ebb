"""Load the enabled plugins and answer "where should this guest go?".

Plugins are loaded by name from config with stevedore, in the configured
order; a name that is not installed stops start-up with a clear error
(a silently missing filter would let through hosts it should reject).
Weights are normalized here and only here.
"""
from __future__ import annotations

import logging
import math
from itertools import compress
from typing import Iterable, Optional

import numpy as np
from stevedore import named

from kvmplace import estimator
from kvmplace import gcpause
from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.exception import ConfigError, InvalidInput, NotFound
from kvmplace.scheduler import columns
from kvmplace.scheduler.hosts import HostColumns
from kvmplace.scheduler.ranked import RankedHosts
from kvmplace.scheduler.spec import RequestSpec
from kvmplace.scheduler.weighers import as_floats

LOG = logging.getLogger(__name__)

FILTER_NAMESPACE = 'kvmplace.scheduler.filters'
WEIGHER_NAMESPACE = 'kvmplace.scheduler.weighers'


def load_plugins(namespace: str, names: list[str], conf) -> list:
    """Instantiate the named plugins of ``namespace`` in the given order."""
    missing: list[str] = []
    failures: list[str] = []

    def _on_missing(names_missing):
        missing.extend(sorted(names_missing))

    def _on_failure(manager, entrypoint, exc):
        failures.append(f'{entrypoint.name}: {exc}')

    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f'{namespace}: {", ".join(dup)} enabled twice')
    mgr = named.NamedExtensionManager(
        namespace, names=names, name_order=True, invoke_on_load=True,
        invoke_args=(conf,), on_missing_entrypoints_callback=_on_missing,
        on_load_failure_callback=_on_failure)
    if missing or failures:
        problems = [f'"{n}" is not installed' for n in missing] + failures
        raise ConfigError(f'{namespace}: ' + '; '.join(problems))
    plugins = []
    for ext in mgr:
        obj = ext.obj
        assert obj is not None      # invoke_on_load: every extension was built
        obj.name = ext.name
        plugins.append(obj)
    return plugins


def normalize(values: list[float]) -> list[float]:
    """Min-max normalize to 0..1; all-equal values normalize to 0 (Nova).

    Only finite values set the range. An infinite raw value (a migration
    that never ends: no path, zero bandwidth) normalizes to 1 if +inf and
    0 if -inf, and NaN to 0, so that one such host cannot make its weight,
    or everyone's, NaN (a NaN weight has no place in a ranking, nor in JSON).
    """
    if not values:
        return []
    if all(v == values[0] for v in values):
        return [0.0] * len(values)
    finite = [v for v in values if math.isfinite(v)]
    lo = min(finite, default=0.0)
    span = max(finite, default=0.0) - lo
    if len(finite) == len(values):
        # The usual case, without a function call per value: all finite and
        # not all equal, so span > 0 (or inf, where one() divides too).
        return [(v - lo) / span for v in values]

    def one(v: float) -> float:
        if v == math.inf:
            return 1.0
        if not math.isfinite(v) or span <= 0:
            return 0.0
        return (v - lo) / span

    return [one(v) for v in values]


def normalize_column(values: np.ndarray) -> np.ndarray:
    """:func:`normalize` of a float64 column, as a column: the same doubles.

    When every value is finite and they are not all equal, normalize gives
    ``(v - lo) / span`` with ``lo = min(values)`` and ``span = max(values) -
    lo``: numpy makes the same two IEEE operations per value. ``lo`` is the
    first minimum (argmin), as min() returns, so that a column holding both
    0.0 and -0.0 subtracts the same zero. Every other column (non-finite
    values, all equal, empty) goes through normalize itself.
    """
    if len(values) and np.isfinite(values).all():
        lo = values[int(np.argmin(values))]
        hi = values[int(np.argmax(values))]
        if lo != hi:
            return (values - lo) / (hi - lo)
    return np.array(normalize(values.tolist()), dtype=np.float64)


def as_column(values, count: int) -> np.ndarray:
    """:func:`as_floats` as a float64 column (the same values)."""
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1 or len(out) != count:
        as_floats(values, count)        # its error for a wrong count
        raise ValueError(f'a weigher answered {out.shape} values for {count} hosts')
    return out


class SchedulerManager:
    """Filters then weighers over host states; every decision explained."""

    def __init__(self, conf, filters: Optional[list] = None,
                 weighers: Optional[list] = None):
        self.conf = conf
        self.filters = filters if filters is not None else load_plugins(
            FILTER_NAMESPACE, list(conf.scheduler.enabled_filters), conf)
        self.weighers = weighers if weighers is not None else load_plugins(
            WEIGHER_NAMESPACE, list(conf.scheduler.enabled_weighers), conf)
        self.params = estimator.ModelParams.from_conf(conf)

    def build_spec(self, inventory: objects.Inventory, request: objects.MigrationRequest,
                   topology: Optional[topo.Topology] = None,
                   now: Optional[float] = None) -> RequestSpec:
        instance = inventory.instances.get(request.instance)
        if instance is None:
            raise NotFound(f'unknown instance "{request.instance}"')
        source = inventory.hosts.get(instance.host)
        if source is None:
            raise NotFound(f'instance "{instance.name}" is on unknown host "{instance.host}"')
        for field in ('force_hosts', 'ignore_hosts'):
            for name in getattr(request, field):
                if name not in inventory.hosts:
                    raise NotFound(f'unknown host "{name}"')
        topology = topology or topo.Topology.from_inventory(inventory)
        return RequestSpec(self.conf, instance, source, request, topology, self.params, now,
                           path_rates=inventory.path_rates)

    def select(self, inventory: objects.Inventory, request: objects.MigrationRequest,
               topology: Optional[topo.Topology] = None,
               hosts: Optional[Iterable[objects.Host]] = None,
               now: Optional[float] = None, ranked_columns: bool = False) -> dict:
        """Rank the candidate hosts for ``request``.

        Returns ``{"instance", "source", "ranked": [...], "rejected": [...]}``
        as ARCHITECTURE "CLI" defines; ``ranked`` best first: a list of
        dicts, or with ``ranked_columns`` the :class:`RankedHosts` they are
        made from (for a caller that only writes them out as JSON).
        """
        # The topology and the source's path widths are cluster-sized too
        # (a dict entry per host): paused with the ranking, or a full
        # collection walks the whole inventory while they are built.
        with gcpause.paused():
            spec = self.build_spec(inventory, request, topology, now)
            return self.select_with_spec(spec, hosts if hosts is not None
                                         else inventory.hosts.values(), ranked_columns)

    def select_with_spec(self, spec: RequestSpec, hosts: Iterable[objects.Host],
                         ranked_columns: bool = False) -> dict:
        with gcpause.paused():      # a cluster-sized answer, no cycles in it
            return self._select(spec, hosts, ranked_columns)

    def _select(self, spec: RequestSpec, hosts: Iterable[objects.Host],
                ranked_columns: bool) -> dict:
        request = spec.request
        candidates = list(hosts)
        rejected: list[dict] = []
        if request.force_hosts:
            wanted = set(request.force_hosts)
            for host in candidates:
                if host.name not in wanted:
                    rejected.append({'host': host.name, 'filter': 'force_hosts',
                                     'reason': 'not among the requested hosts'})
            candidates = [h for h in candidates if h.name in wanted]
        if request.ignore_hosts:
            ignored = set(request.ignore_hosts)
            for host in candidates:
                if host.name in ignored:
                    rejected.append({'host': host.name, 'filter': 'ignore_hosts',
                                     'reason': 'excluded by the request'})
            candidates = [h for h in candidates if h.name not in ignored]
        table = spec.table(candidates)
        index = None
        for flt in self.filters:
            if not candidates:
                break
            passes = flt.filter_mask(table.view(index, candidates), spec)
            failed = []
            if not passes.all():
                failed = [candidates[i] for i in np.flatnonzero(~passes).tolist()]
                candidates = list(compress(candidates, passes.tolist()))
                index = np.flatnonzero(passes) if index is None else index[passes]
            for host in failed:
                rejected.append({'host': host.name, 'filter': flt.name,
                                 'reason': flt.reason(host, spec)})
            LOG.debug('filter %(name)s: %(left)d hosts left, %(out)d rejected',
                      {'name': flt.name, 'left': len(candidates), 'out': len(failed)})
        ranked = self._weigh(table.view(index, candidates), spec)
        return {'instance': spec.instance.name, 'source': spec.source.name,
                'ranked': ranked if ranked_columns else ranked.rows(), 'rejected': rejected}

    def _weigh(self, cols: HostColumns, spec: RequestSpec) -> RankedHosts:
        """Each weigher over all hosts, normalized here; the ranked result.

        Work is done a column (one weigher, every host) at a time, and the
        rounding the output asks for a column at a time too
        (:mod:`kvmplace.scheduler.columns`); the result keeps the columns
        (:class:`RankedHosts`), whose rows assemble each host's explanation
        in ranked order.
        """
        hosts = cols.hosts
        if not hosts:
            return RankedHosts([], [], {}, [], [])
        names = [h.name for h in hosts]
        totals = np.zeros(len(hosts))
        # Each weigher's explanation of every host, a column at a time; a
        # weigher named twice keeps its first place and its last column, as
        # assigning each host's dict in turn did. The arithmetic is numpy's
        # over the columns: the same IEEE operations, one at a time, as the
        # Python expressions it replaces (normalize_column says how).
        cells: dict[str, tuple[list[float], list[float], object]] = {}
        for weigher in self.weighers:
            raw = as_column(weigher.weigh_column(cols, spec), len(hosts))
            norm = normalize_column(raw)
            mult = weigher.multiplier
            totals = totals + mult * norm
            cells[weigher.name] = (columns.round_all(raw, 4), columns.round_all(norm, 4), mult)
        return RankedHosts(names, columns.round_all(totals, 6), cells, cols.estimates,
                           columns.rank(totals.tolist(), names))

    def estimate(self, inventory: objects.Inventory, instance_name: str, dest_name: str,
                 policy: Optional[objects.Policy] = None,
                 topology: Optional[topo.Topology] = None) -> objects.Estimate:
        """The estimate for one (instance, destination) pair."""
        request = objects.MigrationRequest(instance=instance_name,
                                           policy=policy or objects.Policy())
        dest = inventory.hosts.get(dest_name)
        if dest is None:
            raise NotFound(f'unknown host "{dest_name}"')
        spec = self.build_spec(inventory, request, topology)
        if dest.name == spec.source.name:
            raise InvalidInput('--to', f'"{dest_name}" is already the instance\'s host')
        if spec.path_mbps(dest) <= 0:
            raise InvalidInput('--to', f'no network path from "{spec.source.name}" '
                               f'to "{dest_name}"')
        return spec.estimate(dest)
