"""A straightforward select(), the way the scheduler computed it before the
whole-column fast path: host by host, plugin method by plugin method.

The fast path (the plugins' column forms over the request's host table,
the per-request migration model, bucketed widest paths, column rounding
and ranking) must
give exactly this, byte for byte in JSON; test_fast_path.py checks it on
generated clusters. Only public, per-host interfaces are used here:
``host_passes``/``reason``, ``weigh`` (written by the plugin, or derived
by its base class from the column form it wrote), :func:`estimator.estimate`,
:meth:`Topology.widest_from` (the heap Dijkstra) and ``round()``.
"""
from __future__ import annotations

import math

from kvmplace import estimator
from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.scheduler.spec import RequestSpec


def best_node(host: objects.Host, need_memory_mib: int) -> objects.NumaNode | None:
    """Host.best_node as it was: max() with a key function."""
    if not host.numa:
        return None
    roomy = [n for n in host.numa if n.free_memory_mib >= need_memory_mib]
    pool = roomy or host.numa
    return max(pool, key=lambda n: (round(n.health, 6), n.free_memory_mib, -n.id))


class ReferenceSpec(RequestSpec):
    """A spec whose per-host answers come straight from the model, unmemoized:
    what the plugins' ``host_passes``, ``reason`` and ``weigh`` see here is
    independent of the fast path's memos and shortcuts."""

    def __init__(self, spec: RequestSpec, path_rates: dict):
        super().__init__(spec.conf, spec.instance, spec.source, spec.request,
                         spec.topology, spec.params, spec.now, path_rates=path_rates)
        self.params = spec.params
        self._ref_width, _ = spec.topology.widest_from(spec.source.name)

    def path_mbps(self, host):
        return self._ref_width.get(host.name, 0.0)

    def dest_health(self, host):
        node = best_node(host, self.instance.memory_mib)
        return node.health if node is not None else 1.0

    def estimate(self, host):
        src = estimator.source_nodes(self.instance, self.source)
        rates = estimator.rates(src, self.dest_health(host), self.path_mbps(host),
                                self.params, learned_mibps=self._learned.get(host.name))
        return estimator.estimate_at(self.instance, src, rates, self.params)


def normalize(values: list[float]) -> list[float]:
    """The manager's min-max normalization, one value at a time."""
    if not values:
        return []
    if all(v == values[0] for v in values):
        return [0.0] * len(values)
    finite = [v for v in values if math.isfinite(v)]
    lo = min(finite, default=0.0)
    span = max(finite, default=0.0) - lo
    out = []
    for v in values:
        if v == math.inf:
            out.append(1.0)
        elif not math.isfinite(v) or span <= 0:
            out.append(0.0)
        else:
            out.append((v - lo) / span)
    return out


def select(manager, inventory: objects.Inventory, request: objects.MigrationRequest,
           now: float) -> dict:
    """What ``manager.select(inventory, request, now=now)`` must return."""
    spec = ReferenceSpec(manager.build_spec(inventory, request,
                                            topo.Topology.from_inventory(inventory), now),
                         inventory.path_rates)
    instance, source = spec.instance, spec.source
    estimate = spec.estimate

    candidates = list(inventory.hosts.values())
    rejected = []
    if request.force_hosts:
        for host in candidates:
            if host.name not in request.force_hosts:
                rejected.append({'host': host.name, 'filter': 'force_hosts',
                                 'reason': 'not among the requested hosts'})
        candidates = [h for h in candidates if h.name in request.force_hosts]
    if request.ignore_hosts:
        for host in candidates:
            if host.name in request.ignore_hosts:
                rejected.append({'host': host.name, 'filter': 'ignore_hosts',
                                 'reason': 'excluded by the request'})
        candidates = [h for h in candidates if h.name not in request.ignore_hosts]
    for flt in manager.filters:
        if not candidates:
            break
        passed = []
        for host in candidates:
            if flt.host_passes(host, spec):
                passed.append(host)
            else:
                rejected.append({'host': host.name, 'filter': flt.name,
                                 'reason': flt.reason(host, spec)})
        candidates = passed
    ranked = []
    if candidates:
        totals = [0.0] * len(candidates)
        cols = []
        for weigher in manager.weighers:
            raw = [float(weigher.weigh(h, spec)) for h in candidates]
            norm = normalize(raw)
            mult = weigher.multiplier
            totals = [t + mult * x for t, x in zip(totals, norm)]
            cols.append((weigher.name, mult, raw, norm))
        order = sorted(range(len(candidates)),
                       key=lambda i: (-totals[i], candidates[i].name))
        ranked = [{'host': candidates[i].name, 'weight': round(totals[i], 6),
                   'weighers': {name: {'raw': round(raw[i], 4),
                                       'normalized': round(norm[i], 4),
                                       'multiplier': mult}
                                for name, mult, raw, norm in cols},
                   'estimate': estimate(candidates[i]).to_dict()}
                  for i in order]
    return {'instance': instance.name, 'source': source.name,
            'ranked': ranked, 'rejected': rejected}
