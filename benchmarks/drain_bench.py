#!/usr/bin/env python3
"""A real drain of a lab host: kvmplace's conductor vs one-at-a-time to the
host with the most free RAM (Nova's default choice).

The scenario (6 lab hosts; see doc/source/benchmarks/drain.rst):

lab-h1  10 Gbit/s   the host to drain: five Linux guests of 256-768 MiB,
                    each filling its RAM, dirtying 0-10 MiB/s
lab-h2   1 Gbit/s   good destinations, each already running a 1 GiB guest
lab-h3   1 Gbit/s
lab-h4   1 Gbit/s
lab-h5 200 Mbit/s   empty: the most free RAM, on the slow network segment
lab-h6  10 Gbit/s   empty, but both NUMA nodes at 30 % of their memory
                    bandwidth (kvmplace-lab slow-node). The lab cannot slow
                    memory, so the effect the seed measured (a migration
                    into such a host at about a third of one stream) is
                    emulated by shaping its veth to 30 % of the calibrated
                    stream cap, while its agent still reports 10 Gbit/s

Three ways to empty lab-h1, each from the same placement (every guest back
on lab-h1 before each run, moved by plain libvirt):

kvmplace     ``kvmplace drain lab-h1 --wait`` through kvmplace-conductor and
             one kvmplace-agent per host (private RabbitMQ vhost, own
             database): link-aware parallel plan, NUMA-health filter.
nova         one guest at a time (Nova's max_concurrent_live_migrations=1),
             each to the host with the most free RAM at that moment (Nova's
             RAMWeigher), plain libvirt with a 500 ms max downtime.
same-dest    one guest at a time to the destinations kvmplace chose in the
             preceding kvmplace run: separates what parallelism buys from
             what choosing destinations buys.

Before measuring, a firmware guest tours every host once (the first QEMU a
freshly started lab host runs costs ~4 s more). The rounds alternate the
order (kvmplace first, then nova first). Medians. Prints one JSON line
with --json. Takes about 12 minutes here.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labbench  # noqa: E402

from kvmplace import objects  # noqa: E402

SOURCE = 'lab-h1'
LINKS = [10000, 1000, 1000, 1000, 200, 10000]
SLOW_HOST = 'lab-h6'
SLOW_HEALTH = 0.3
MAX_DOWNTIME_MS = 500
#: The guests to drain: (memory MiB, dirty MiB/s). Every one converges even
#: over 200 Mbit/s, so the one-at-a-time baseline never hangs.
DRAINED = [(768, 5), (512, 10), (512, 0), (384, 8), (256, 2)]
#: Load already on the good destinations (firmware guests: KVM, idle).
BACKGROUND = [('lab-h2', 1024), ('lab-h3', 1024), ('lab-h4', 1024)]
WARM_UP_GUEST = 'lab-vm9'         # the firmware guest after the background ones


def guest_mix() -> list[dict]:
    mix = [{'kind': 'linux', 'memory_mib': mem, 'buffer_mib': mem * 5 // 8,
            'dirty_rate_mibps': rate, 'fill': True, 'host': SOURCE} for mem, rate in DRAINED]
    mix += [{'kind': 'firmware', 'memory_mib': mem, 'host': host} for host, mem in BACKGROUND]
    mix.append({'kind': 'firmware', 'memory_mib': 128, 'host': 'lab-h2'})
    return mix


def warm_up(state: dict) -> None:
    """The firmware guest visits every host once, unmeasured, and ends where
    it started (not on the host to drain)."""
    from kvmplace.lab import measure
    names = [h['name'] for h in state['hosts']]
    start = measure.where(WARM_UP_GUEST)
    tour = names[names.index(start) + 1:] + names[:names.index(start) + 1]
    for host in tour:
        result = measure.migrate(WARM_UP_GUEST, host)
        labbench.log(f'warm-up: {WARM_UP_GUEST} -> {host} in {result.wall_seconds:.2f} s')


def stream_cap() -> float:
    """The lab's calibrated stream cap ([estimator] of the lab config)."""
    from kvmplace.lab import services
    with open(services.CONFIG_FILE) as f:
        for line in f:
            if line.strip().startswith('stream_cap_mibps'):
                return float(line.split('=')[1])
    return 230.0


def slow_down(state: dict, emulate: bool) -> dict:
    """Both NUMA nodes of SLOW_HOST at SLOW_HEALTH; its link shaped to what
    such a host lets one migration do (unless ``emulate`` is off)."""
    from kvmplace.lab import manager, netns, numa
    nodes = numa.read(SLOW_HOST)
    for node in nodes:
        manager.slow_node(SLOW_HOST, node['id'], int(node['baseline_mibps'] * SLOW_HEALTH))
    shaped = None
    if emulate:
        host = manager.host_record(SLOW_HOST)
        shaped = int(objects.mibps_to_mbps(SLOW_HEALTH * stream_cap()))
        netns.shape(host['netns'], host['veth'], shaped)
    return {'host': SLOW_HOST, 'health': SLOW_HEALTH, 'emulated_link_mbps': shaped}


def drained_guests(state: dict) -> list[str]:
    return sorted(g['name'] for g in state['guests'] if g['kind'] != 'firmware')


def placement(state: dict) -> dict[str, str]:
    from kvmplace.lab import manager
    return manager.locate_guests(state)


def free_ram(state: dict) -> dict[str, int]:
    """Free RAM per host as Nova's RAMWeigher sees it: the host's memory
    less the memory of the guests that run there."""
    from kvmplace.lab import numa
    where = placement(state)
    memory = {g['name']: g['memory_mib'] for g in state['guests']}
    free = {}
    for host in state['hosts']:
        total = sum(n['memory_mib'] for n in numa.read(host['name']))
        used = sum(memory[g] for g, h in where.items() if h == host['name'])
        free[host['name']] = total - used
    return free


def reset(state: dict) -> float:
    """Every drained guest back on SOURCE (plain libvirt, one thread per
    host it is on); returns the seconds it took."""
    from kvmplace.lab import measure
    started = time.monotonic()
    where = placement(state)
    by_host: dict[str, list[str]] = {}
    for guest in drained_guests(state):
        if where.get(guest) is None:
            raise RuntimeError(f'{guest} runs nowhere')
        if where[guest] != SOURCE:
            by_host.setdefault(where[guest], []).append(guest)

    def back(guests):
        for g in guests:
            measure.migrate(g, SOURCE, max_downtime_ms=MAX_DOWNTIME_MS)
    if by_host:
        with concurrent.futures.ThreadPoolExecutor(len(by_host)) as pool:
            for f in [pool.submit(back, gs) for gs in by_host.values()]:
                f.result()
    return time.monotonic() - started


def sequential(state: dict, choose) -> dict:
    """One guest at a time (by name), each to ``choose(guest)``."""
    from kvmplace.lab import measure
    moves = []
    started = time.monotonic()
    for guest in drained_guests(state):
        dest = choose(guest)
        t0 = time.monotonic() - started
        result = measure.migrate(guest, dest, max_downtime_ms=MAX_DOWNTIME_MS)
        moves.append({'instance': guest, 'dest': dest, 'start_seconds': round(t0, 3),
                      'seconds': round(result.wall_seconds, 3),
                      'downtime_ms': result.stats.get('downtime'),
                      'data_mib': round(result.stats.get('data_processed', 0) / 2 ** 20, 1)})
        labbench.log(f'  {guest} -> {dest}: {result.wall_seconds:.1f} s, '
                     f'{result.stats.get("downtime")} ms down')
    makespan = time.monotonic() - started
    return {'makespan_seconds': round(makespan, 3), 'migrations': moves,
            'max_downtime_ms': max((m['downtime_ms'] or 0) for m in moves)}


def nova(state: dict) -> dict:
    def most_free(guest: str) -> str:
        free = free_ram(state)
        free.pop(SOURCE, None)
        return max(sorted(free), key=lambda h: free[h])   # ties: first by name
    return sequential(state, most_free)


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.rstrip('Z')).replace(
        tzinfo=dt.UTC).timestamp()


def kvmplace_drain(state: dict, stack: labbench.Stack) -> dict:
    wall0 = time.monotonic()
    rec = stack.cli('drain', SOURCE, '--wait', timeout=1200)
    wall = time.monotonic() - wall0
    if rec.get('status') != 'completed':
        raise RuntimeError(f'the drain did not complete: {rec.get("status")} '
                           f'{rec.get("error")}')
    t0 = _ts(rec['created_at'])
    moves = []
    for m in sorted(rec['migrations'], key=lambda m: m['created_at']):
        res = m.get('result') or {}
        moves.append({'instance': m['instance'], 'dest': m['dest'], 'status': m['status'],
                      'start_seconds': round(_ts(m['created_at']) - t0, 3),
                      'end_seconds': round(_ts(m['finished_at']) - t0, 3),
                      'seconds': res.get('elapsed_seconds'),
                      'downtime_ms': res.get('downtime_ms'),
                      'predicted_seconds': (m.get('estimate') or {}).get('total_seconds'),
                      'bandwidth_cap_mibps': (m.get('policy') or {}).get(
                          'bandwidth_cap_mibps'),
                      'data_mib': res.get('data_mib')})
        labbench.log(f"  {m['instance']} -> {m['dest']}: {res.get('elapsed_seconds')} s "
                     f"from {moves[-1]['start_seconds']:.1f} s, {res.get('downtime_ms')} ms down")
    plan = (rec.get('plan') or {}).get('initial') or {}
    stack.cli('hosts', 'maintenance', SOURCE, 'off')
    return {'makespan_seconds': round(_ts(rec['finished_at']) - t0, 3),
            'cli_wall_seconds': round(wall, 3),
            'predicted_makespan_seconds': plan.get('predicted_makespan_seconds'),
            'unplaced': plan.get('unplaced'),
            'migrations': moves,
            'max_downtime_ms': max((m['downtime_ms'] or 0) for m in moves)}


def verify_drained(state: dict) -> None:
    where = placement(state)
    for guest in drained_guests(state):
        if where.get(guest) in (None, SOURCE):
            raise RuntimeError(f'{guest} is on {where.get(guest)} after the drain')


def wait_reported(stack: labbench.Stack, state: dict, timeout_s: float = 60) -> None:
    """The conductor sees every drained guest back on SOURCE."""
    want = set(drained_guests(state))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = stack.cli('hosts', 'show', SOURCE)
        if want <= set(shown.get('instances') or []):
            return
        time.sleep(1.0)
    raise RuntimeError('the conductor does not see the guests back on the source')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print one JSON line')
    parser.add_argument('--keep-lab', action='store_true', help='leave the lab up')
    parser.add_argument('--rounds', type=int, default=2,
                        help='rounds of the three runs, alternating order (default 2)')
    parser.add_argument('--no-emulate-slow-memory', action='store_true',
                        help='do not shape the slow-memory host\'s link (then a migration '
                             'into it runs at full speed: the lab cannot slow memory)')
    parser.add_argument('--no-same-dest', action='store_true',
                        help='skip the one-at-a-time run to kvmplace\'s destinations')
    args = parser.parse_args(argv)
    why = labbench.require_lab_tools()
    if why:
        sys.stderr.write(f'drain_bench: {why}\n')
        return 2
    runs: dict[str, list[dict]] = {'kvmplace': [], 'nova': [], 'same-dest': []}
    resets = []
    with labbench.lab('drain_bench', len(LINKS), LINKS, guest_mix(),
                      keep=args.keep_lab) as state, \
            tempfile.TemporaryDirectory(prefix='kvmplace-drain-') as tmp:
        lab_started = state['bench_locked_at']
        warm_up(state)
        slow = slow_down(state, not args.no_emulate_slow_memory)
        labbench.log(f'slow memory: {slow}')
        stack = labbench.Stack(state, tmp, estimator={})
        try:
            stack.wait_ready()
            labbench.log('stack up: every host reporting, dirty rates sampled')
            kvm_dests: dict[str, str] = {}
            for rnd in range(args.rounds):
                order = ['kvmplace', 'same-dest', 'nova'] if rnd % 2 == 0 else \
                    ['nova', 'same-dest', 'kvmplace']
                if args.no_same_dest:
                    order.remove('same-dest')
                for kind in order:
                    if kind == 'same-dest' and not kvm_dests:
                        continue
                    resets.append(round(reset(state), 1))
                    wait_reported(stack, state)
                    labbench.log(f'round {rnd + 1}: {kind}')
                    if kind == 'kvmplace':
                        run = kvmplace_drain(state, stack)
                        kvm_dests = {m['instance']: m['dest'] for m in run['migrations']
                                     if m['status'] == 'completed'}
                    elif kind == 'nova':
                        run = nova(state)
                    else:
                        run = sequential(state, lambda g, d=dict(kvm_dests): d[g])
                    verify_drained(state)
                    run['round'] = rnd + 1
                    runs[kind].append(run)
                    labbench.log(f'round {rnd + 1}: {kind} makespan '
                                 f'{run["makespan_seconds"]:.1f} s')
        finally:
            stack.stop()
        health = labbench.guest_health(state)

    def med(kind, key='makespan_seconds'):
        value = labbench.median(r[key] for r in runs[kind])
        return None if value is None else round(value, 3)
    k, n, s = med('kvmplace'), med('nova'), med('same-dest')
    max_down = max(m['downtime_ms'] or 0 for r in runs['kvmplace'] for m in r['migrations'])
    out = {
        'benchmark': 'drain',
        'kvmplace_makespan_seconds': k,
        'sequential_makespan_seconds': n,
        'ratio': round(k / n, 3) if k and n else None,
        'max_downtime_ms': max_down,
        'downtime_limit_ms': MAX_DOWNTIME_MS,
        'every_downtime_within_limit': max_down <= MAX_DOWNTIME_MS,
        'baseline_max_downtime_ms': max((r['max_downtime_ms'] for r in runs['nova']),
                                        default=None),
        'same_dest_sequential_makespan_seconds': s,
        'ratio_parallelism_only': round(k / s, 3) if k and s else None,
        'kvmplace_cli_wall_seconds': med('kvmplace', 'cli_wall_seconds'),
        'kvmplace_predicted_makespan_seconds': med('kvmplace', 'predicted_makespan_seconds'),
        'runs': runs,
        'reset_seconds': resets,
        'scenario': {'source': SOURCE, 'links_mbps': dict(zip(
            [f'lab-h{i + 1}' for i in range(len(LINKS))], LINKS)),
            'drained_guests': [{'memory_mib': m, 'dirty_rate_mibps': d} for m, d in DRAINED],
            'background_guests': [{'host': h, 'memory_mib': m} for h, m in BACKGROUND],
            'slow_memory': slow},
        'machine': labbench.machine(),
        'runtime_seconds': round(time.monotonic() - lab_started, 1),
        **health,
    }
    if args.json:
        print(json.dumps(objects.plain(out), sort_keys=True))
    else:
        print(f"kvmplace {k} s, one at a time to most free RAM {n} s: ratio {out['ratio']}; "
              f"one at a time to kvmplace's hosts {s} s; max downtime {max_down} ms")
    return 0


if __name__ == '__main__':
    sys.exit(main())
