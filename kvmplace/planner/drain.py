"""Plan the drain of a host: every guest off it, as fast as the network allows.

The host goes into maintenance in the working copy (no new placements), the
scheduler ranks destinations for each guest (all filters apply: RAM, CPU
model, NUMA health, convergence...), and the link-aware scheduler orders
and overlaps the moves so the source's uplink stays full without any link
being oversubscribed. Guests that cannot be placed are listed with reasons.

On a big cluster each guest is offered only the ``max_candidates`` hosts
with the highest upper bound on a migration's rate from the drained host
(:func:`candidate_hosts`): ranking all 10,000 hosts of a cloud for each of
50 guests took 5-12 s, and the fastest few hundred hosts are where a drain
goes. The bound never leaves a guest out: a guest with no host among them
is ranked on every host, and a plan that leaves a guest unscheduled is made
again on every host. A cluster no bigger than the bound is planned exactly
as without it.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Optional

from kvmplace import estimator
from kvmplace import objects
from kvmplace import resources
from kvmplace import topology as topo
from kvmplace.exception import KvmplaceError, NotFound
from kvmplace.planner import capacity as cap
from kvmplace.planner import concurrency as conc
from kvmplace.planner import schedule

#: Hosts each guest is offered on a big cluster (see the module doc).
MAX_CANDIDATES = 500


def plan(scheduler, inventory: objects.Inventory, host: str,
         topology: Optional[topo.Topology] = None,
         policy: Optional[objects.Policy] = None,
         reserve_fraction: float = 0.0, exclude: tuple = (), busy: tuple = (),
         max_candidates: Optional[int] = MAX_CANDIDATES,
         concurrency: conc.Concurrency = conc.NONE) -> dict:
    """The drain plan of ``host`` (ARCHITECTURE "CLI", drain --dry-run).

    ``max_candidates`` bounds the hosts each guest is offered (None: all).
    ``concurrency`` adds what a migration costs among others (fixed
    costs, contention, the drain's start lag: planner/concurrency.py) to
    the per-migration times and the makespan; the default adds nothing.
    """
    if host not in inventory.hosts:
        raise NotFound(f'unknown host "{host}"')
    working = working_copy(inventory)
    working.hosts[host].maintenance = True
    topology = topology or topo.Topology.from_inventory(working)
    guests = sorted((g for g in working.instances_on(host) if g.name not in exclude),
                    key=lambda g: g.name)
    if not guests and not exclude:
        raise KvmplaceError(f'nothing to do: host "{host}" has no guests')
    params = scheduler.params.with_policy(policy)
    capacity = cap.Capacity(scheduler.conf, working)
    offered = (candidate_hosts(working, topology, host, guests, params, capacity,
                               max_candidates) if max_candidates else None)
    moves, unplaced = candidate_moves(scheduler, working, topology, guests, policy, offered)
    planner = schedule.Scheduler(working, topology, params, reserve_fraction, concurrency)
    planned, not_scheduled = planner.run(moves, capacity.fits, capacity.claim, busy)
    if offered is not None and not_scheduled:
        # Perhaps only for want of the hosts left out: plan on all of them.
        return plan(scheduler, inventory, host, topology, policy, reserve_fraction, exclude,
                    busy, max_candidates=None, concurrency=concurrency)
    end = schedule.makespan(planned)
    if planned or busy:
        # The drain ends when it notices its last migration has.
        end = max(end, max((b[3] for b in busy), default=0.0)) + concurrency.start_lag_seconds
    uplink = uplink_mibps(topology, host, params, reserve_fraction)
    total_mib = sum(g.memory_mib + g.disk_mib for g in guests)
    moved_mib = sum(working_mem(inventory, p.instance) for p in planned)
    return {
        'host': host,
        'migrations': [p.to_dict() for p in sorted(planned, key=lambda p: (p.start_seconds,
                                                                          p.instance))],
        'unplaced': unplaced + not_scheduled,
        'predicted_makespan_seconds': round(end, 3),
        'concurrency': concurrency.to_dict(),
        'physical_bound_seconds': round(moved_mib / uplink, 3) if uplink else None,
        'uplink_mibps': round(uplink, 2),
        'memory_to_move_mib': total_mib,
    }


def working_copy(inventory: objects.Inventory) -> objects.Inventory:
    """A copy the plan may change: each host copied (its usage and flags
    change as the plan fills hosts), what is only read (NUMA figures,
    instances, links) shared. A deep copy of 10,000 hosts took 0.6 s."""
    return dataclasses.replace(inventory,
                               hosts={n: copy.copy(h) for n, h in inventory.hosts.items()},
                               instances=dict(inventory.instances))


def working_mem(inventory: objects.Inventory, name: str) -> float:
    inst = inventory.instances[name]
    return inst.memory_mib + inst.disk_mib


def candidate_hosts(inventory: objects.Inventory, topology: topo.Topology, host: str,
                    guests: list[objects.Instance], params: estimator.ModelParams,
                    capacity: cap.Capacity, limit: int) -> Optional[list[objects.Host]]:
    """The ``limit`` hosts a migration from ``host`` could go fastest to, by
    an upper bound on its rate; None when no more hosts could take a guest.

    The bound is the estimator's bandwidth terms that do not depend on the
    guest: the widest path's rate x link efficiency (or what the path
    learned, if more), against the streams scaled by the host's healthiest
    NUMA node (no guest gets a better node than that). Among equal bounds,
    more free RAM first (room for more guests), then by name. Hosts that
    cannot take the smallest guest (disabled, down, in maintenance, not
    enough free RAM) are not counted.
    """
    if not guests:
        return None
    smallest = min(g.memory_mib for g in guests)
    widths = topology.widths_from(host)
    stream = params.stream_cap_mibps * params.multifd_connections
    rows = []
    for h in inventory.hosts.values():
        if (h.name == host or not h.enabled or not h.up or h.maintenance
                or h.name not in widths):
            continue
        free = capacity.free_mib(h)
        if free < smallest:
            continue
        health = max((n.health for n in h.numa), default=1.0)
        learned = inventory.path_rates.get((host, h.name))
        if learned:      # estimator.link_term: it replaces link and stream cap
            bound = min(learned, health * max(stream, learned))
        else:            # health <= 1: below the stream cap too
            bound = min(resources.link_mibps(widths[h.name], params.link_efficiency),
                        health * stream)
        rows.append((-bound, -free, h.name, h))
    if len(rows) <= limit:
        return None
    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows[:limit]]


def candidate_moves(scheduler, inventory, topology, guests, policy=None, hosts=None):
    """Ranked destinations per guest; guests with none are unplaced.

    ``hosts`` (None: all) are the hosts offered; a guest none of them can
    take is ranked on every host."""
    moves, unplaced = [], []
    for guest in guests:
        request = objects.MigrationRequest(instance=guest.name,
                                           policy=policy or objects.Policy())
        result = scheduler.select(inventory, request, topology, hosts=hosts)
        if hosts is not None and not result['ranked']:
            result = scheduler.select(inventory, request, topology)
        if not result['ranked']:
            reasons = sorted({f"{r['filter']}: {r['reason']}" for r in result['rejected']
                              if r['filter'] not in ('not_source', 'maintenance')})
            unplaced.append({'instance': guest.name,
                             'reason': 'no host passes the filters' +
                                       (f" ({'; '.join(reasons[:3])})" if reasons else '')})
            continue
        ranked = result['ranked']
        moves.append(schedule.Move(guest, [r['host'] for r in ranked],
                                   ranked[0]['estimate']['total_seconds'],
                                   estimates=[r['estimate'] for r in ranked]))
    return moves, unplaced


def uplink_mibps(topology: topo.Topology, host: str, params: estimator.ModelParams,
                 reserve_fraction: float = 0.0) -> float:
    """Effective MiB/s of the host's links together (its way out)."""
    capacity = schedule.link_capacity(topology, params, reserve_fraction)
    return sum(capacity(topo.link_id(host, nbr)) for nbr in topology.graph.adj[host])
