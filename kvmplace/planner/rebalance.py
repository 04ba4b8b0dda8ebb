"""Plan a rebalance: even out memory use, leave hosts whose memory slowed down.

Two goals, in this order:
1. every guest off a host with no NUMA node at healthy bandwidth (slowed
   memory makes every migration and every guest there slow);
   never onto such a host;
2. the spread of memory use (max - min of used/total over the usable
   hosts) under the threshold, with the fewest moves: each move takes the
   guest from the fullest host to the emptiest that best closes the gap.
Capacity is never exceeded (same rules as the RAM and vCPU filters), and
every destination passes the scheduler's filters.
"""
from __future__ import annotations

import copy
import statistics
from typing import Optional

from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.planner import capacity as cap
from kvmplace.planner import schedule

DEFAULT_THRESHOLD = 0.10
MAX_MOVES = 200


def usable(host: objects.Host, threshold: float) -> bool:
    return host.enabled and host.up and not host.maintenance and host.best_health >= threshold


def metrics(inventory: objects.Inventory, health_threshold: float) -> dict:
    hosts = [h for h in inventory.hosts.values() if h.enabled and not h.maintenance]
    mem = {h.name: h.memory_used_mib / h.memory_mib for h in hosts if h.memory_mib}
    cpu = {h.name: h.vcpus_used / h.vcpus for h in hosts if h.vcpus}
    healthy = {n: v for n, v in mem.items() if inventory.hosts[n].best_health >= health_threshold}
    unhealthy = sorted(h.name for h in hosts if h.best_health < health_threshold)
    return {
        'memory_use': {n: round(v, 4) for n, v in sorted(mem.items())},
        'memory_spread': round(max(healthy.values()) - min(healthy.values()), 4)
        if healthy else 0.0,
        'memory_stdev': round(statistics.pstdev(healthy.values()), 4) if healthy else 0.0,
        'cpu_spread': round(max(cpu.values()) - min(cpu.values()), 4) if cpu else 0.0,
        'unhealthy_hosts': unhealthy,
        'guests_on_unhealthy_hosts': sorted(i.name for i in inventory.instances.values()
                                            if i.host in unhealthy),
    }


def plan(scheduler, inventory: objects.Inventory, threshold: float = DEFAULT_THRESHOLD,
         topology: Optional[topo.Topology] = None, policy: Optional[objects.Policy] = None,
         reserve_fraction: float = 0.0) -> dict:
    conf = scheduler.conf
    health_min = conf.scheduler.numa_health_threshold
    working = copy.deepcopy(inventory)
    topology = topology or topo.Topology.from_inventory(working)
    before = metrics(working, health_min)
    capacity = cap.Capacity(conf, working)
    chosen: list[tuple[objects.Instance, str]] = []
    unplaced: list[dict] = []

    def candidates(inst: objects.Instance) -> list[str]:
        request = objects.MigrationRequest(instance=inst.name, policy=policy or objects.Policy())
        ranked = scheduler.select(working, request, topology)['ranked']
        return [r['host'] for r in ranked
                if usable(working.hosts[r['host']], health_min)]

    def apply(inst: objects.Instance, dest: str) -> None:
        original = copy.copy(inst)
        capacity.claim(inst, dest)
        inst.host = dest
        chosen.append((original, dest))

    # 1. Evacuate unhealthy hosts, biggest guests first.
    for name in before['unhealthy_hosts']:
        for inst in sorted(working.instances_on(name), key=lambda i: -i.memory_mib):
            dests = [d for d in candidates(inst) if capacity.fits(inst, d)]
            if not dests:
                unplaced.append({'instance': inst.name,
                                 'reason': f'on unhealthy host {name}, but no healthy host '
                                           'has room and passes the filters'})
                continue
            # Emptiest acceptable host keeps the spread down while evacuating.
            dest = min(dests, key=lambda d: _use(working.hosts[d]))
            apply(inst, dest)

    # 2. Close the memory-use gap.
    for _ in range(MAX_MOVES):
        pool = [h for h in working.hosts.values() if usable(h, health_min) and h.memory_mib]
        if len(pool) < 2:
            break
        full = max(pool, key=_use)
        empty = min(pool, key=_use)
        gap = _use(full) - _use(empty)
        if gap <= threshold:
            break
        best = None
        for inst in working.instances_on(full.name):
            if not capacity.fits(inst, empty.name):
                continue
            after = _spread_after(pool, full, empty, inst)
            if after >= gap - 1e-9:
                continue
            if best is None or after < best[0]:
                best = (after, inst)
        if best is None:
            break
        inst = best[1]
        if empty.name not in candidates(inst):
            # The emptiest host is not acceptable for this guest (CPU model,
            # link, convergence): try the next-emptiest acceptable one.
            dests = [d for d in candidates(inst) if capacity.fits(inst, d)
                     and _spread_after(pool, full, working.hosts[d], inst) < gap]
            if not dests:
                break
            apply(inst, min(dests, key=lambda d: _use(working.hosts[d])))
        else:
            apply(inst, empty.name)

    after_metrics = metrics(working, health_min)
    params = scheduler.params.with_policy(policy)
    # Schedule on the original placement: each move from its real source.
    sched_inv = copy.deepcopy(inventory)
    moves = [schedule.Move(sched_inv.instances[orig.name], [dest], 0.0)
             for orig, dest in chosen]
    for move in moves:
        src = sched_inv.hosts[move.instance.host]
        dst = sched_inv.hosts[move.candidates[0]]
        path = topology.widest_path(src.name, dst.name)
        from kvmplace import estimator
        move.solo_seconds = estimator.estimate(move.instance, src, dst,
                                               path.mbps if path else 0.0,
                                               params, learned_mibps=sched_inv.path_rates.get(
                                                   (src.name, dst.name))).total_seconds
    planner = schedule.Scheduler(sched_inv, topology, params, reserve_fraction)
    planned, not_scheduled = planner.run(moves, lambda i, d: True, lambda i, d: None)
    return {
        'migrations': [p.to_dict() for p in sorted(planned, key=lambda p: (p.start_seconds,
                                                                          p.instance))],
        'unplaced': unplaced + not_scheduled,
        'before': before,
        'after': after_metrics,
        'threshold': threshold,
        'predicted_makespan_seconds': round(schedule.makespan(planned), 3),
    }


def _use(host: objects.Host) -> float:
    return host.memory_used_mib / host.memory_mib if host.memory_mib else 0.0


def _spread_after(pool, full, empty, inst) -> float:
    uses = []
    for h in pool:
        used = h.memory_used_mib
        if h is full:
            used -= inst.memory_mib
        elif h is empty:
            used += inst.memory_mib
        uses.append(used / h.memory_mib)
    return max(uses) - min(uses)
