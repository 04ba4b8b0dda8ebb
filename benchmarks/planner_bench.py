#!/usr/bin/env python3
"""Planner scale: drain plans, a re-plan mid-drain, and select's JSON on
a cloud-sized inventory.

    .venv/bin/python benchmarks/planner_bench.py --hosts 10000 --guests 50 --json

Three figures (see doc/source/benchmarks/planner.rst):

drain_plan_seconds
    ``drain.plan`` (what ``kvmplace drain HOST --dry-run`` runs) of
    ``--guests`` guests off one host of the synthetic cluster of
    ``--hosts`` hosts (``cluster.py``: racks, 1/10/25 Gbit/s NICs, slow
    NUMA nodes, full hosts, old CPU models). Median of ``--repeats``.
replan_seconds_1000_hosts
    The re-plan the drain executor makes when a migration ends: the same
    drain on a 1,000-host cluster, with the migrations the first plan
    starts at once still running (holding their links, half done) and
    left out. Median of ``--repeats``.
select_100k_json_seconds, select_100k_peak_rss_mib
    The real CLI, ``kvmplace select vm-bench -f json --inventory FILE``,
    on a 100,000-host inventory file, in a child process: wall time and
    the child's peak RSS (getrusage RUSAGE_CHILDREN). Output to /dev/null.
    Median of ``--repeats`` runs, with each run's wall time, the median
    CPU time (user + sys) and the 1-minute load average before each run:
    the machine may be shared.
    ``select_100k_phases`` splits the same work in another child: reading
    and validating the file, ranking, writing the JSON.

With ``--exhaustive`` the drain is also planned ranking every host for
every guest (no candidate bound), for the makespan it would have.
Not timed: building the clusters and writing the file.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster  # noqa: E402  (benchmarks/cluster.py)
import labbench  # noqa: E402  (machine())

SOURCE = cluster.host_name(cluster.SOURCE_INDEX)
SELECT_HOSTS = 100_000
REPLAN_HOSTS = 1_000


def _say(message: str) -> None:
    print(f'planner_bench: {message}', file=sys.stderr, flush=True)


def drain_inventory_dict(n_hosts: int, guests: int, seed: int) -> dict:
    """cluster.py's cluster, its first host made big enough to hold
    ``guests`` guests (1-16 GiB, 0-60 MiB/s dirty, Cascadelake), with the
    clock moved to now: silent hosts keep their age, the others report."""
    data = cluster.make_cluster(n_hosts, seed)
    inv = data['inventory']
    rng = random.Random(seed + 1)
    inv['instances'] = [
        {'name': f'vm-{i:03d}', 'host': SOURCE,
         'memory_mib': rng.choice([1024, 2048, 4096, 8192, 16384]),
         'vcpus': rng.choice([1, 2, 4, 8]), 'dirty_rate_mibps': round(rng.uniform(0, 60), 1),
         'emulator_node': rng.choice([0, 1, None]), 'cpu_model': 'Cascadelake-Server'}
        for i in range(guests)]
    src = inv['hosts'][cluster.SOURCE_INDEX]
    src['memory_mib'] = max(src['memory_mib'], 2 * sum(g['memory_mib']
                                                       for g in inv['instances']))
    src['memory_used_mib'] = sum(g['memory_mib'] for g in inv['instances'])
    src['vcpus'] = max(src['vcpus'], sum(g['vcpus'] for g in inv['instances']))
    src['vcpus_used'] = sum(g['vcpus'] for g in inv['instances'])
    for node in src['numa']:
        node['memory_mib'] = src['memory_mib'] // len(src['numa'])
    _rebase_clock(data)
    return inv


def _rebase_clock(data: dict) -> None:
    now = time.time()
    for host in data['inventory']['hosts']:
        age = data['now'] - host.pop('updated_at')
        if age > 60:
            host['updated_at'] = now - age


def _median_seconds(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_drain(n_hosts: int, guests: int, seed: int, repeats: int, exhaustive: bool) -> dict:
    from kvmplace import conf as kconf
    from kvmplace import inventory as kinv
    from kvmplace import topology as topo
    from kvmplace.planner import drain
    from kvmplace.scheduler import manager
    inv = kinv.from_dict(drain_inventory_dict(n_hosts, guests, seed))
    sched = manager.SchedulerManager(kconf.new_conf())
    topology = topo.Topology.from_inventory(inv)
    seconds, plan = _median_seconds(lambda: drain.plan(sched, inv, SOURCE, topology), repeats)
    out = {'drain_plan_seconds': round(seconds, 3),
           'drain_planned': len(plan['migrations']), 'drain_unplaced': len(plan['unplaced']),
           'drain_makespan_seconds': plan['predicted_makespan_seconds'],
           'drain_physical_bound_seconds': plan['physical_bound_seconds']}
    if exhaustive:
        t0 = time.perf_counter()
        full = drain.plan(sched, inv, SOURCE, topology, max_candidates=None)
        out['drain_exhaustive_plan_seconds'] = round(time.perf_counter() - t0, 3)
        out['drain_exhaustive_makespan_seconds'] = full['predicted_makespan_seconds']
    return out


def bench_replan(guests: int, seed: int, repeats: int) -> dict:
    from kvmplace import conf as kconf
    from kvmplace import inventory as kinv
    from kvmplace import topology as topo
    from kvmplace.planner import drain
    from kvmplace.scheduler import manager
    inv = kinv.from_dict(drain_inventory_dict(REPLAN_HOSTS, guests, seed))
    sched = manager.SchedulerManager(kconf.new_conf())
    topology = topo.Topology.from_inventory(inv)
    first = drain.plan(sched, inv, SOURCE, topology)
    going = [m for m in first['migrations'] if m['start_seconds'] <= 1e-6]
    busy = tuple((m['instance'], [tuple(link) for link in m['links']], m['bandwidth_mibps'],
                  m['predicted_seconds'] / 2) for m in going)
    exclude = tuple(m['instance'] for m in going)
    seconds, plan = _median_seconds(
        lambda: drain.plan(sched, inv, SOURCE, topology, exclude=exclude, busy=busy), repeats)
    return {'replan_seconds_1000_hosts': round(seconds, 3), 'replan_running': len(going),
            'replan_planned': len(plan['migrations'])}


PHASES = r'''
import json, os, sys, time
from kvmplace import conf as kconf, inventory as inv, objects
from kvmplace.scheduler import manager, output
from kvmplace.cli import base
t0 = time.perf_counter(); i = inv.load(sys.argv[1]); t1 = time.perf_counter()
d = manager.SchedulerManager(kconf.new_conf()).select(
    i, objects.MigrationRequest(instance=sys.argv[2])); t2 = time.perf_counter()
with open(os.devnull, 'w') as f:
    output.write_json(d, f, default=base._jsonable)
t3 = time.perf_counter()
print(json.dumps({'load': round(t1 - t0, 3), 'rank': round(t2 - t1, 3),
                  'write': round(t3 - t2, 3), 'ranked': len(d['ranked'])}))
'''


def bench_select(workdir: str, seed: int, repeats: int) -> dict:
    data = cluster.make_cluster(SELECT_HOSTS, seed)
    _rebase_clock(data)
    path = os.path.join(workdir, 'inventory.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data['inventory'], f)
    del data
    cli = os.path.join(os.path.dirname(sys.executable), 'kvmplace')
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    walls, cpus, loads = [], [], []
    for _ in range(repeats):
        # The machine is shared: the 1-minute load average before each run,
        # and the child's CPU time (user + sys) beside its wall time.
        loads.append(round(os.getloadavg()[0], 2))
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with open(os.devnull, 'w') as sink:
            subprocess.run([cli, 'select', cluster.INSTANCE, '-f', 'json', '--inventory',
                            path], stdout=sink, check=True)
        walls.append(time.perf_counter() - t0)
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(done.ru_utime + done.ru_stime - used.ru_utime - used.ru_stime)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    phases = json.loads(subprocess.run([sys.executable, '-c', PHASES, path, cluster.INSTANCE],
                                       capture_output=True, text=True, check=True).stdout)
    return {'select_100k_json_seconds': round(statistics.median(walls), 3),
            'select_100k_json_seconds_runs': [round(w, 3) for w in walls],
            'select_100k_cpu_seconds': round(statistics.median(cpus), 3),
            'select_100k_load_average_1m': loads,
            'select_100k_peak_rss_mib': round(peak_kib / 1024, 1),
            'select_100k_rss_is_max_of_children': before > 0,
            'select_100k_phases': phases}


def _commit() -> str:
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=HERE, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=HERE, capture_output=True, text=True).stdout.strip()
        return head + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--guests', type=int, default=50)
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--exhaustive', action='store_true',
                        help='also plan the drain ranking every host (slow)')
    parser.add_argument('--no-select', action='store_true',
                        help='skip the 100,000-host select')
    parser.add_argument('--json', action='store_true', help='only the JSON line')
    args = parser.parse_args(argv)
    if args.hosts < 2 or args.guests < 1:
        parser.error('--hosts must be >= 2 and --guests >= 1')
    out: dict = {'hosts': args.hosts, 'guests': args.guests, 'seed': args.seed,
                 'repeats': args.repeats}
    with tempfile.TemporaryDirectory(prefix='kvmplace-planner-bench-') as workdir:
        # The select child first: RUSAGE_CHILDREN's peak is then its own.
        if not args.no_select:
            _say(f'select on {SELECT_HOSTS} hosts (CLI, -f json)')
            out.update(bench_select(workdir, args.seed, args.repeats))
    _say(f'drain of {args.guests} guests on {args.hosts} hosts')
    out.update(bench_drain(args.hosts, args.guests, args.seed, args.repeats, args.exhaustive))
    _say(f're-plan on {REPLAN_HOSTS} hosts')
    out.update(bench_replan(args.guests, args.seed, args.repeats))
    out.update(date=dt.datetime.now(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
               commit=_commit(), machine=labbench.machine(),
               python=sys.version.split()[0])
    if not args.json:
        for key, value in out.items():
            print(f'{key:38} {value}')
    print(json.dumps(out), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
