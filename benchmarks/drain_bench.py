#!/usr/bin/env python3
"""A real drain of a lab host, kvmplace against three baselines, seeded,
all timed on this process's clock.

The lab (6 hosts; see doc/source/benchmarks/drain.rst):

lab-h1   10 Gbit/s   the host to drain: five Linux guests (256-512 MiB,
                     filled, dirtying 0-10 MiB/s)
lab-h2..6 1 Gbit/s   destinations; per seed, two of them (at random) carry a
                     1 GiB guest and one (at random, independently) is
                     degraded: its link runs at 200 Mbit/s

Every host reports its link as the lab shapes it; no reading is injected:
what kvmplace knows of the degraded host, a RAM weigher could know too.

Per seed, from the same placement each time (every drained guest moved
back to lab-h1 by plain libvirt before each run), in an order rotated by
the seed:

kvmplace  a drain of lab-h1 through kvmplace-conductor's RPC API (what
          ``kvmplace drain`` calls) and one kvmplace-agent per host (their
          defaults, the lab's calibrated [estimator]); timed from the call
          to the drain record's end, seen by polling every 0.1 s.
nova      Nova's defaults: one live migration at a time from the host
          (max_concurrent_live_migrations = 1), each to the enabled host
          with the most free RAM (RAMWeigher), the max downtime stepped up
          as Nova's libvirt driver does (live_migration_downtime 500 ms,
          _steps 10, _delay 75 s per GiB, at least 2 GiB).
kubevirt  KubeVirt's defaults: at most 2 outbound migrations per node and 5
          in the cluster, each to the host with the most free RAM counting
          the ones in flight, its memory over 8 parallel connections
          (multifd, as KubeVirt's virt-handler sets for a VMI without a CPU
          limit); QEMU's default max downtime (KubeVirt sets none).
operator  an operator who first disables the degraded host, then Nova's
          defaults on the rest.

kvmplace plans with what its conductor has learned from the drains before
(path rates, and the concurrency costs of kvmplace.planner.concurrency):
one unscored drain runs first so the first scored one has a predecessor,
as any drain but a cloud's first has. Prints one JSON line with --json.

``--replay RESULT.json`` needs no lab: it replays the kvmplace drains of an
earlier result through the drain planner, the per-stream and the
shared-source concurrency models side by side, each seed planned with what
the seeds before it taught (benchmarks/drain_replay.py).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labbench  # noqa: E402

from kvmplace import objects  # noqa: E402

SOURCE = 'lab-h1'
DESTS = ['lab-h2', 'lab-h3', 'lab-h4', 'lab-h5', 'lab-h6']
SOURCE_LINK_MBPS = 10000
GOOD_LINK_MBPS = 1000
DEGRADED_LINK_MBPS = 200
#: The guests to drain: (memory MiB, dirty MiB/s). Each converges over
#: 200 Mbit/s at Nova's first 50 ms step.
DRAINED = [(384, 5), (256, 10), (256, 0), (256, 8), (256, 2)]
BACKGROUND = ['lab-vm6', 'lab-vm7']        # 1 GiB firmware guests
BACKGROUND_MIB = 1024
WARM_UP_GUEST = 'lab-vm8'
#: kvmplace's limit ([estimator] max_downtime_ms, its default).
MAX_DOWNTIME_MS = 500
#: Nova's [libvirt] defaults (nova/conf/libvirt.py).
NOVA_DOWNTIME_MS, NOVA_DOWNTIME_STEPS, NOVA_DOWNTIME_DELAY_S = 500, 10, 75
KUBEVIRT_PER_NODE, KUBEVIRT_PER_CLUSTER = 2, 5
#: KubeVirt's virt-handler sends memory over 8 parallel connections
#: (VIR_MIGRATE_PARALLEL, QEMU's multifd) for every VMI without a CPU
#: limit, since KubeVirt 1.4 (kubevirt/kubevirt pull request 12705:
#: ``parallelMultifdMigrationThreads = 8`` in pkg/virt-handler).
KUBEVIRT_MULTIFD_CONNECTIONS = 8
ARMS = ['kvmplace', 'nova', 'kubevirt', 'operator']


def nova_downtime_steps(memory_mib: int, disk_gib: float = 0.0) -> list[tuple[float, int]]:
    """Nova's max-downtime schedule (nova/virt/libvirt/migration.py
    downtime_steps; the driver counts at least 2 GiB of RAM)."""
    data_gb = max(2.0, memory_mib / 1024.0) + disk_gib
    delay = int(NOVA_DOWNTIME_DELAY_S * data_gb)
    base = NOVA_DOWNTIME_MS / NOVA_DOWNTIME_STEPS
    offset = (NOVA_DOWNTIME_MS - base) / NOVA_DOWNTIME_STEPS
    return [(float(delay * i), int(base + offset * i)) for i in range(NOVA_DOWNTIME_STEPS + 1)]


def guest_mix() -> list[dict]:
    mix = [{'kind': 'linux', 'memory_mib': mem, 'buffer_mib': mem * 5 // 8,
            'dirty_rate_mibps': rate, 'fill': True, 'host': SOURCE} for mem, rate in DRAINED]
    mix += [{'kind': 'firmware', 'memory_mib': BACKGROUND_MIB, 'host': host}
            for host in DESTS[:len(BACKGROUND)]]
    mix.append({'kind': 'firmware', 'memory_mib': 128, 'host': DESTS[-1]})
    return mix


def scenario(seed: int) -> dict:
    r = random.Random(seed)
    return {'seed': seed, 'degraded': r.choice(DESTS),
            'loaded': r.sample(DESTS, len(BACKGROUND))}


def drained_guests(state: dict) -> list[str]:
    return sorted(g['name'] for g in state['guests'] if g['kind'] != 'firmware')


def placement(state: dict) -> dict[str, str]:
    from kvmplace.lab import manager
    return manager.locate_guests(state)


def free_ram(state: dict, in_flight: dict[str, str] | None = None) -> dict[str, int]:
    """Free RAM per host as a RAM weigher sees it: the host's memory less
    the memory of its guests and of the guests on their way to it."""
    from kvmplace.lab import numa
    where = dict(placement(state))
    where.update(in_flight or {})
    memory = {g['name']: g['memory_mib'] for g in state['guests']}
    free = {}
    for host in state['hosts']:
        total = sum(n['memory_mib'] for n in numa.read(host['name']))
        free[host['name']] = total - sum(memory[g] for g, h in where.items()
                                         if h == host['name'])
    return free


def most_free(state: dict, allowed: list[str], in_flight=None) -> str:
    free = free_ram(state, in_flight)
    return max(sorted(allowed), key=lambda h: free[h])   # ties: first by name


def reset(state: dict) -> float:
    """Every drained guest back on SOURCE (plain libvirt, one thread per
    host it is on); the seconds it took."""
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


def _move(guest: str, dest: str, t0: float, **kw) -> dict:
    from kvmplace.lab import measure
    start = time.monotonic() - t0
    result = measure.migrate(guest, dest, **kw)
    labbench.log(f'  {guest} -> {dest}: {result.wall_seconds:.1f} s from {start:.1f} s, '
                 f'{result.stats.get("downtime")} ms down')
    return {'instance': guest, 'dest': dest, 'start_seconds': round(start, 3),
            'seconds': round(result.wall_seconds, 3),
            'downtime_ms': result.stats.get('downtime'),
            'data_mib': round(result.stats.get('data_processed', 0) / 2 ** 20, 1)}


def one_at_a_time(state: dict, allowed: list[str]) -> dict:
    """Nova's defaults: one at a time (by name), most free RAM, downtime steps."""
    memory = {g['name']: g['memory_mib'] for g in state['guests']}
    t0 = time.monotonic()
    moves = [_move(g, most_free(state, allowed), t0,
                   downtime_steps=nova_downtime_steps(memory[g]))
             for g in drained_guests(state)]
    return {'makespan_seconds': round(time.monotonic() - t0, 3), 'migrations': moves}


def kubevirt(state: dict) -> dict:
    """KubeVirt's defaults: <= 2 outbound per node (one source here, so 2
    at once; <= 5 in the cluster), most free RAM counting those in flight,
    8 multifd connections, QEMU's default max downtime."""
    lock = threading.Lock()
    queue = list(drained_guests(state))
    in_flight: dict[str, str] = {}
    moves: list[dict] = []
    t0 = time.monotonic()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                guest = queue.pop(0)
                dest = most_free(state, DESTS, in_flight)
                in_flight[guest] = dest
            move = _move(guest, dest, t0, parallel_connections=KUBEVIRT_MULTIFD_CONNECTIONS)
            with lock:
                in_flight.pop(guest, None)
                moves.append(move)
    workers = min(KUBEVIRT_PER_NODE, KUBEVIRT_PER_CLUSTER)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()
    return {'makespan_seconds': round(time.monotonic() - t0, 3),
            'migrations': sorted(moves, key=lambda m: m['start_seconds'])}


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.rstrip('Z')).replace(tzinfo=dt.UTC).timestamp()


def kvmplace_drain(stack: labbench.Stack) -> dict:
    """A drain through the conductor's RPC API (as a script or a cloud's
    maintenance tool would ask for it), followed every 0.1 s, timed on this
    clock; with what the conductor recorded (its own clock) for the
    prediction check."""
    api = stack.api()
    t0 = time.monotonic()
    rec = api.drain({}, SOURCE)
    while rec.get('status') == 'running':
        time.sleep(0.1)
        rec = api.get_drain({}, rec['id'])
    wall = time.monotonic() - t0
    if rec.get('status') != 'completed':
        raise RuntimeError(f'the drain did not complete: {rec.get("status")} '
                           f'{rec.get("error")}')
    plan = (rec.get('plan') or {}).get('initial') or {}
    planned = {m['instance']: m for m in plan.get('migrations') or []}
    created = _ts(rec['created_at'])
    moves = []
    for m in sorted(rec['migrations'], key=lambda m: m['created_at']):
        res = m.get('result') or {}
        p = planned.get(m['instance']) or {}
        moves.append({
            'instance': m['instance'], 'dest': m['dest'], 'status': m['status'],
            'planned_dest': p.get('dest'),
            'start_seconds': round(_ts(m['created_at']) - created, 3),
            'record_seconds': round(_ts(m['finished_at']) - _ts(m['created_at']), 3),
            'job_seconds': res.get('elapsed_seconds'),
            'downtime_ms': res.get('downtime_ms'),
            'predicted_start_seconds': p.get('start_seconds'),
            'predicted_seconds': p.get('predicted_seconds'),
            'bandwidth_cap_mibps': (m.get('policy') or {}).get('bandwidth_cap_mibps'),
            'data_mib': res.get('data_mib'),
            # What QEMU was given and did: why a pause or a time was what
            # it was (the agent's result, kvmplace.agent.migration).
            'iterations': res.get('iterations'),
            'downtime_limit_ms': res.get('downtime_limit_ms'),
            'downtime_steps': res.get('downtime_steps')})
        labbench.log(f"  {m['instance']} -> {m['dest']}: record {moves[-1]['record_seconds']} s "
                     f"(planned {p.get('predicted_seconds')}), job {res.get('elapsed_seconds')} s "
                     f"from {moves[-1]['start_seconds']:.1f} s, {res.get('downtime_ms')} ms down "
                     f"(QEMU's limit {res.get('downtime_limit_ms')} ms, "
                     f"{len(res.get('downtime_steps') or [])} changes, "
                     f"{res.get('iterations')} iterations)")
    api.set_maintenance({}, SOURCE, False)
    return {'makespan_seconds': round(wall, 3),
            'record_makespan_seconds': round(_ts(rec['finished_at']) - created, 3),
            'predicted_makespan_seconds': plan.get('predicted_makespan_seconds'),
            'concurrency': plan.get('concurrency'),
            'unplaced': plan.get('unplaced'), 'migrations': moves}


def chooses_limit(stack: labbench.Stack) -> bool:
    """Whether the lab's conductor and agents choose QEMU's downtime limit
    per migration ([estimator] choose_downtime_limit): kept in the result
    so a replay plans as the run did (drain_replay.chose_limit)."""
    from kvmplace import conf as kconf
    return bool(kconf.new_conf(config_files=stack.configs).estimator.choose_downtime_limit)


def wait_reported(stack: labbench.Stack, state: dict, links: dict[str, int],
                  timeout_s: float = 90) -> None:
    """The conductor sees every host reporting afresh, every drained guest
    on SOURCE with its dirty rate sampled, and every host's link as shaped
    now (asked over RPC: a CLI process per look cost seconds each)."""
    api = stack.api()
    want = set(drained_guests(state))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            hosts = {h['name']: h for h in api.list_hosts({})}
            source = api.get_host({}, SOURCE)
        except Exception as exc:  # noqa: BLE001 - the conductor may still be starting
            labbench.log(f'conductor not answering yet: {exc}')
            time.sleep(1.0)
            continue
        sampled = {g['name'] for g in (source.get('state') or {}).get('instances') or []
                   if g.get('dirty_rate_known')}
        if (want <= set(source.get('instances') or []) and want <= sampled
                and all(h['name'] in hosts and hosts[h['name']]['up']
                        and (hosts[h['name']]['seconds_since_report'] or 99) < 5
                        for h in state['hosts'])
                and all(hosts.get(h, {}).get('link_mbps') == mbps for h, mbps in links.items())):
            return
        time.sleep(0.5)
    raise RuntimeError('the conductor does not see the guests on the source or the links')


def set_up(state: dict, sc: dict, current: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """The seed's links and background placement; returns the links and
    the hosts whose link changed."""
    from kvmplace.lab import manager, measure
    links = {h: DEGRADED_LINK_MBPS if h == sc['degraded'] else GOOD_LINK_MBPS for h in DESTS}
    changed = [h for h, mbps in links.items() if current.get(h) != mbps]
    for h in changed:
        manager.set_link(h, links[h])
    for guest, host in zip(BACKGROUND, sc['loaded']):
        if measure.where(guest) != host:
            measure.migrate(guest, host)
    return links, changed


def verify_drained(state: dict) -> None:
    where = placement(state)
    for guest in drained_guests(state):
        if where.get(guest) in (None, SOURCE):
            raise RuntimeError(f'{guest} is on {where.get(guest)} after the drain')


def warm_up(state: dict) -> None:
    """A firmware guest visits every host once, unmeasured (a fresh lab
    host's first QEMU costs ~4 s more), and ends where it started."""
    from kvmplace.lab import measure
    names = [h['name'] for h in state['hosts']]
    start = measure.where(WARM_UP_GUEST)
    for host in names[names.index(start) + 1:] + names[:names.index(start) + 1]:
        measure.migrate(WARM_UP_GUEST, host)


def summarise(seeds: list[dict]) -> dict:
    baselines = [a for a in ARMS if a != 'kvmplace']
    med = {a: statistics.median(s[a]['makespan_seconds'] for s in seeds) for a in ARMS}
    best = min(baselines, key=lambda a: med[a])
    ratios = [s['kvmplace']['makespan_seconds']
              / min(s[a]['makespan_seconds'] for a in baselines) for s in seeds]
    makespan_errors = [abs(s['kvmplace']['predicted_makespan_seconds']
                           - s['kvmplace']['record_makespan_seconds'])
                       / s['kvmplace']['record_makespan_seconds'] for s in seeds]
    migration_errors = [abs(m['predicted_seconds'] - m['record_seconds']) / m['record_seconds']
                        for s in seeds for m in s['kvmplace']['migrations']
                        if m['status'] == 'completed' and m['predicted_seconds']]
    downs = [m['downtime_ms'] or 0 for s in seeds for m in s['kvmplace']['migrations']]
    return {
        'seeds': len(seeds),
        'ratio_vs_best_baseline': round(statistics.median(ratios), 3),
        'ratios_per_seed': [round(r, 3) for r in ratios],
        'best_baseline': best,
        'median_makespan_seconds': {a: round(med[a], 3) for a in ARMS},
        'makespan_prediction_median_abs_error': round(statistics.median(makespan_errors), 3),
        'makespan_prediction_errors': [round(e, 3) for e in makespan_errors],
        'migration_prediction_mape': round(statistics.mean(migration_errors), 3)
        if migration_errors else None,
        'max_downtime_ms': max(downs),
        'downtime_limit_ms': MAX_DOWNTIME_MS,
        'every_downtime_within_limit': max(downs) <= MAX_DOWNTIME_MS,
        'baseline_max_downtime_ms': {a: max((m['downtime_ms'] or 0) for s in seeds
                                            for m in s[a]['migrations']) for a in baselines},
    }


def replay(path: str, as_json: bool) -> int:
    """``--replay``: score the planner on a result's recorded drains, offline."""
    import drain_replay
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f'drain_bench: --replay: cannot read {path}: {exc}\n')
        return 2
    out = {'benchmark': 'drain-replay', 'replayed': path,
           **drain_replay.replay(sys.modules[__name__], result), **labbench.provenance()}
    if as_json:
        print(json.dumps(objects.plain(out), sort_keys=True))
    else:
        for name, m in out['models'].items():
            later = m.get('after_first_seed') or {}
            print(f"{name}: per-migration MAPE {m['migration_prediction_mape']}, makespan "
                  f"median |error| {m['makespan_prediction_median_abs_error']} "
                  f"{m['makespan_prediction_errors']}; after the first seed "
                  f"{later.get('migration_prediction_mape')} and "
                  f"{later.get('makespan_prediction_median_abs_error')}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print one JSON line')
    parser.add_argument('--seeds', type=int, default=5, help='scored seeds (default 5)')
    parser.add_argument('--first-seed', type=int, default=1,
                        help='the first scored seed (default 1; seed 0 is the unscored drain)')
    parser.add_argument('--keep-lab', action='store_true', help='leave the lab up')
    parser.add_argument('--replay', metavar='JSON',
                        help='no lab: replay the kvmplace drains of an earlier --json '
                             'result through the planner, old and new concurrency model '
                             'side by side (benchmarks/drain_replay.py)')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error('--seeds must be at least 1')
    if args.replay:
        return replay(args.replay, args.json)
    why = labbench.require_lab_tools()
    if why:
        sys.stderr.write(f'drain_bench: {why}\n')
        return 2
    links0 = [SOURCE_LINK_MBPS] + [GOOD_LINK_MBPS] * len(DESTS)
    seeds: list[dict] = []
    choose_limit = None
    with labbench.lab('drain_bench', len(links0), links0, guest_mix(),
                      keep=args.keep_lab) as state, \
            tempfile.TemporaryDirectory(prefix='kvmplace-drain-') as tmp:
        lab_started = state['bench_locked_at']
        warm_up(state)
        current = {h: GOOD_LINK_MBPS for h in DESTS}
        stack = None
        try:
            for seed in [args.first_seed - 1] + list(range(args.first_seed,
                                                           args.first_seed + args.seeds)):
                scored = seed >= args.first_seed
                sc = scenario(seed)
                labbench.log(f'seed {seed}{"" if scored else " (unscored)"}: {sc}')
                if stack is not None:
                    stack.stop()
                    stack = None
                current, changed = set_up(state, sc, current)
                reset(state)
                # Agents read their link at start: a fresh stack on the same
                # database (what it learned stays), the changed paths forgotten.
                stack = labbench.Stack(state, tmp, estimator={})
                choose_limit = chooses_limit(stack)
                wait_reported(stack, state, current, timeout_s=180)
                for host in changed:
                    stack.api().forget_path_rates({}, dest=host)
                    stack.api().forget_path_rates({}, source=host)
                arms = ARMS if scored else ['kvmplace']
                k = seed % len(arms)
                result: dict = dict(sc)
                for arm in arms[k:] + arms[:k]:
                    result.setdefault('reset_seconds', []).append(round(reset(state), 1))
                    wait_reported(stack, state, current)
                    labbench.log(f'seed {seed}: {arm}')
                    if arm == 'kvmplace':
                        run = kvmplace_drain(stack)
                    elif arm == 'nova':
                        run = one_at_a_time(state, DESTS)
                    elif arm == 'operator':
                        run = one_at_a_time(state, [h for h in DESTS if h != sc['degraded']])
                    else:
                        run = kubevirt(state)
                    verify_drained(state)
                    result[arm] = run
                    labbench.log(f'seed {seed}: {arm} makespan {run["makespan_seconds"]:.1f} s'
                                 + (f' (record {run["record_makespan_seconds"]:.1f} s, '
                                    f'predicted {run["predicted_makespan_seconds"]} s)'
                                    if arm == 'kvmplace' else ''))
                if scored:
                    seeds.append(result)
                else:
                    labbench.log(f'unscored drain: {result["kvmplace"]["makespan_seconds"]} s')
        finally:
            if stack is not None:
                stack.stop()
        health = labbench.guest_health(state)
    out = {'benchmark': 'drain', **summarise(seeds), 'runs': seeds,
           'choose_downtime_limit': choose_limit,
           'scenario': {'source': SOURCE, 'source_link_mbps': SOURCE_LINK_MBPS,
                        'dest_link_mbps': GOOD_LINK_MBPS,
                        'degraded_link_mbps': DEGRADED_LINK_MBPS,
                        'drained_guests': [{'memory_mib': m, 'dirty_rate_mibps': d}
                                           for m, d in DRAINED],
                        'background_guest_mib': BACKGROUND_MIB,
                        'nova_downtime_steps_512mib': nova_downtime_steps(512)},
           'clock': 'every makespan: this process\'s monotonic clock, from the first call '
                    '(kvmplace: the drain RPC; baselines: the first libvirt migrate) to the '
                    'end seen (kvmplace: its record completed, polled every 0.1 s; '
                    'baselines: the last migrate returned); predictions are checked '
                    'against the conductor\'s records',
           'runtime_seconds': round(time.monotonic() - lab_started, 1),
           **state['provenance'], **health}
    if args.json:
        print(json.dumps(objects.plain(out), sort_keys=True))
    else:
        print(f"kvmplace vs best baseline ({out['best_baseline']}): median ratio "
              f"{out['ratio_vs_best_baseline']}; makespan prediction median |error| "
              f"{out['makespan_prediction_median_abs_error']}, per-migration MAPE "
              f"{out['migration_prediction_mape']}; max downtime {out['max_downtime_ms']} ms")
    return 0


if __name__ == '__main__':
    sys.exit(main())
