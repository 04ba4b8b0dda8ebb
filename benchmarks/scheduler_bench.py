#!/usr/bin/env python3
"""Time one kvmplace ``select`` against Nova's filter and weigher handlers.

    .venv/bin/python benchmarks/scheduler_bench.py --hosts 10000 --json

Both sides work on the same synthetic cluster (``cluster.py``, generated
from ``--seed`` and written to a temporary JSON file that both read):

kvmplace
    ``SchedulerManager.select(inventory, request)``, exactly what
    ``kvmplace select`` and the conductor run for one request: the request
    spec, the network topology graph and the widest paths from the source,
    the nine default filters (with a reason for every rejected host), the
    four default weighers with central normalization, a pre-copy migration
    estimate for every host that reaches the convergence filter, and the
    ranked result with its per-host explanation. Not timed: reading and
    validating the inventory file, loading the plugins (service start-up).

Nova
    ``HostFilterHandler.get_filtered_objects`` then
    ``HostWeightHandler.get_weighed_objects`` from the ``nova`` package,
    run by ``nova_side.py`` in its own virtual environment on one
    ``FakeHostState`` per host with the same RAM, vCPU and service state.
    Not timed: building the host states (nova-scheduler keeps them between
    requests), the Placement query that replaced Nova's RAM/CPU filters.

The two run in separate processes and take turns (kvmplace first on even
repetitions, Nova first on odd ones), one warm-up each, with a full garbage
collection before every timed run. Medians (p50) and nearest-rank p95 are
reported; ``speedup`` is nova_p50 / kvmplace_p50.

The Nova virtual environment is created on first use (``pip install
'nova>=34,<35'``, about a minute) in ``--nova-venv``, by default
``$XDG_CACHE_HOME/kvmplace-bench/nova-venv`` (``~/.cache/...``).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster  # noqa: E402  (benchmarks/cluster.py, standard library only)

NOVA_REQUIREMENT = 'nova>=34,<35'
NOVA_SIDE = os.path.join(HERE, 'nova_side.py')
READY_MARKER = '.kvmplace-bench-ready'

# Nova 34.0.0 ships no RamFilter/CoreFilter/DiskFilter nor their Aggregate*
# variants (Placement checks capacity before the filters run) and no
# AvailabilityZoneFilter (a Placement pre-filter now); checked in the
# installed package. These are the defaults of its
# [filter_scheduler] enabled_filters.
NOVA_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter',
                'ServerGroupAntiAffinityFilter', 'ServerGroupAffinityFilter']
# Nova's default [filter_scheduler] weight_classes: every weigher it ships.
NOVA_WEIGHERS = ['all']

# The matched run: on each side only the plugins that make the checks both
# sides make. Host enabled / not in maintenance / up (kvmplace enabled +
# maintenance; Nova ComputeFilter, which treats a disabled service as
# either), the guest's CPU runs there (kvmplace cpu_model; Nova
# ComputeCapabilitiesFilter + ImagePropertiesFilter), not the source
# (kvmplace not_source; Nova drops ignore_hosts first), spread by free RAM
# (free_ram; RAMWeigher). RAM and vCPU capacity are left out of both: Nova
# 34 checks them in Placement, outside the timed handlers.
MATCHED_KVMPLACE_FILTERS = ['enabled', 'maintenance', 'not_source', 'cpu_model']
MATCHED_KVMPLACE_WEIGHERS = ['free_ram']
MATCHED_NOVA_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter']
MATCHED_NOVA_WEIGHERS = ['RAMWeigher']


def _default_venv() -> str:
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(cache, 'kvmplace-bench', 'nova-venv')


def _say(message: str) -> None:
    print(f'scheduler_bench: {message}', file=sys.stderr, flush=True)


def ensure_nova_venv(path: str, requirement: str = NOVA_REQUIREMENT) -> str:
    """The venv's python, after creating the venv if it is not ready."""
    python = os.path.join(path, 'bin', 'python')
    if os.path.exists(os.path.join(path, READY_MARKER)) and os.path.exists(python):
        return python
    if os.path.exists(path):
        _say(f'{path} is incomplete; recreating it')
        shutil.rmtree(path)
    _say(f'no Nova virtual environment at {path}: creating it '
         f'(pip install "{requirement}", about a minute)')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    base = getattr(sys, '_base_executable', None) or sys.executable
    subprocess.run([base, '-m', 'venv', path], check=True)
    subprocess.run([python, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check',
                    requirement], check=True)
    with open(os.path.join(path, READY_MARKER), 'w', encoding='utf-8') as f:
        f.write(requirement + '\n')
    _say(f'{path} ready')
    return python


class NovaSide:
    """nova_side.py in the Nova venv: one timed pass per ``run()``."""

    def __init__(self, python: str, cluster_path: str, filters: list[str],
                 weighers: list[str], log_path: str):
        self._log = open(log_path, 'w', encoding='utf-8')
        self.proc = subprocess.Popen(
            [python, NOVA_SIDE, '--cluster', cluster_path,
             '--filters', ','.join(filters), '--weighers', ','.join(weighers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, bufsize=1)
        self.log_path = log_path
        self.info = self._read()
        if not self.info.get('ready'):
            raise RuntimeError(f'nova_side.py did not start: {self.info}')

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._log.flush()
            with open(self.log_path, encoding='utf-8') as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f'nova_side.py exited ({self.proc.returncode}):\n{tail}')
        return json.loads(line)

    def run(self) -> dict:
        self.proc.stdin.write('run\n')
        self.proc.stdin.flush()
        return self._read()

    def per_plugin_us(self) -> dict:
        self.proc.stdin.write('plugins\n')
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('quit\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class KvmplaceSide:
    """A SchedulerManager with the default plugins (or the ones named) and
    the parsed inventory."""

    def __init__(self, data: dict, filters: Optional[list[str]] = None,
                 weighers: Optional[list[str]] = None, inventory_obj=None):
        from kvmplace import conf as kconf
        from kvmplace import inventory
        from kvmplace import objects
        from kvmplace.scheduler import manager

        self.now = data['now']
        self.inventory = (inventory_obj if inventory_obj is not None
                          else inventory.from_dict(data['inventory']))
        self.conf = kconf.new_conf()
        if filters is not None:
            self.conf.set_override('enabled_filters', filters, group='scheduler')
        if weighers is not None:
            self.conf.set_override('enabled_weighers', weighers, group='scheduler')
        self.scheduler = manager.SchedulerManager(self.conf)
        self.request = objects.MigrationRequest(instance=data['instance'])
        self.filters = [f.name for f in self.scheduler.filters]
        self.weighers = [w.name for w in self.scheduler.weighers]

    def select(self) -> dict:
        return self.scheduler.select(self.inventory, self.request, now=self.now)

    def run(self) -> tuple[float, dict]:
        """One timed select: (ms, counts). The result is dropped before the
        next run, as a service drops it once sent, so it does not weigh on
        the next run's garbage collections."""
        gc.collect()
        start = time.perf_counter()
        result = self.select()
        elapsed = (time.perf_counter() - start) * 1000.0
        counts = {'ranked': len(result['ranked']), 'rejected': len(result['rejected']),
                  'estimated': len(result['ranked']) + sum(
                      1 for r in result['rejected'] if r['filter'] == 'convergence')}
        return elapsed, counts

    def per_plugin_us(self, repeats: int = 5) -> dict:
        """Microseconds per host of each plugin inside a select: a filter's
        column form plus the reasons of the hosts it rejects, over the
        hosts it sees (the survivors of the filters before it); a weigher's
        column form over the ranked hosts. Median of ``repeats`` fresh
        requests. A derived quantity several plugins share (destination
        health, estimates) is charged to the first plugin that asks."""
        import numpy as np
        from itertools import compress
        sched = self.scheduler
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            spec = sched.build_spec(self.inventory, self.request, now=self.now)
            hosts = [h for h in self.inventory.hosts.values()]
            table = spec.table(hosts)
            index = None
            gc.collect()
            for flt in sched.filters:
                # as SchedulerManager.select_with_spec runs a filter
                start = time.perf_counter()
                passes = flt.filter_mask(table.view(index, hosts), spec)
                kept, failed = hosts, []
                if not passes.all():
                    failed = [hosts[i] for i in np.flatnonzero(~passes).tolist()]
                    kept = list(compress(hosts, passes.tolist()))
                    index = np.flatnonzero(passes) if index is None else index[passes]
                for host in failed:
                    flt.reason(host, spec)
                spent = time.perf_counter() - start
                times.setdefault('filter:' + flt.name, []).append(
                    spent * 1e6 / max(1, len(hosts)))
                hosts = kept
            cols = table.view(index, hosts)
            for weigher in sched.weighers:
                start = time.perf_counter()
                weigher.weigh_column(cols, spec)
                spent = time.perf_counter() - start
                times.setdefault('weigher:' + weigher.name, []).append(
                    spent * 1e6 / max(1, len(hosts)))
        out: dict[str, dict[str, float]] = {'filters': {}, 'weighers': {}}
        for key, values in times.items():
            kind, name = key.split(':', 1)
            out[kind + 's'][name] = round(statistics.median(values), 3)
        return out

    def topology_ms(self) -> float:
        """Building the topology graph alone: a part of every select."""
        from kvmplace import topology
        gc.collect()
        start = time.perf_counter()
        topology.Topology.from_inventory(self.inventory)
        return (time.perf_counter() - start) * 1000.0


def _commit() -> Optional[str]:
    """The checkout's commit, with "+dirty" when it has uncommitted changes."""
    try:
        head = subprocess.run(['git', '-C', HERE, 'rev-parse', 'HEAD'], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', HERE, 'status', '--porcelain', '--',
                                '../kvmplace', '../benchmarks'], check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ('+dirty' if dirty else '')


def _machine() -> dict:
    """What the figures were measured on."""
    info: dict = {'platform': platform.platform(), 'cpus': os.cpu_count(),
                  'python': platform.python_version()}
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    info['cpu_model'] = line.split(':', 1)[1].strip()
                    break
        with open('/proc/meminfo', encoding='utf-8') as f:
            info['memory_gib'] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
        info['load_average_1m'] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (the largest value when n < 20)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _keep(data: dict, path: str) -> None:
    """Write the inventory for ``kvmplace select --inventory``, whose clock
    is the real one: silent hosts stay silent (their age kept), the others
    lose their timestamp (never stale). 60 s is [scheduler] host_down_seconds
    by default."""
    inv = json.loads(json.dumps(data['inventory']))
    now = time.time()
    for host in inv['hosts']:
        age = data['now'] - host.pop('updated_at')
        if age > 60:
            host['updated_at'] = now - age
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(inv, f)


def _profile(side: KvmplaceSide) -> None:
    import cProfile
    import io
    import pstats
    prof = cProfile.Profile()
    prof.runcall(side.select)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats('tottime').print_stats(20)
    print(out.getvalue(), file=sys.stderr)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Time one kvmplace select against Nova\'s filter and weigher '
                    'handlers on the same synthetic cluster.')
    parser.add_argument('--hosts', type=int,
                        help='cluster size (default 1000; 200 with --quick)')
    parser.add_argument('--repeats', type=int,
                        help='timed runs per side (default 11; 3 with --quick)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per side first')
    parser.add_argument('--seed', type=int, default=42, help='cluster seed (default 42)')
    parser.add_argument('--quick', action='store_true',
                        help='sanity run: 200 hosts, 3 repeats (unless given)')
    parser.add_argument('--json', action='store_true', help='print only the JSON line')
    parser.add_argument('--no-nova', action='store_true', help='time kvmplace alone')
    parser.add_argument('--no-matched', action='store_true',
                        help='skip the matched run (each side with only the plugins that '
                             'make the checks both sides make)')
    parser.add_argument('--nova-venv', default=os.environ.get('KVMPLACE_BENCH_NOVA_VENV')
                        or _default_venv(),
                        help='Nova virtual environment, created when missing '
                             '(default: $KVMPLACE_BENCH_NOVA_VENV or %(default)s)')
    parser.add_argument('--nova-filters', default=','.join(NOVA_FILTERS),
                        help='Nova filter classes (default: Nova\'s default enabled_filters)')
    parser.add_argument('--nova-weighers', default=','.join(NOVA_WEIGHERS),
                        help='Nova weigher classes, "all" = Nova\'s default weight_classes')
    parser.add_argument('--keep-cluster', metavar='FILE',
                        help='also write the cluster\'s inventory here (for kvmplace select '
                             '--inventory FILE; the instance is "vm-bench")')
    parser.add_argument('--profile', action='store_true',
                        help='print a cProfile of one kvmplace select to stderr')
    args = parser.parse_args(argv)
    if args.hosts is None:
        args.hosts = 200 if args.quick else 1000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.hosts < 2 or args.repeats < 1 or args.warmup < 0:
        parser.error('need --hosts >= 2, --repeats >= 1, --warmup >= 0')
    return args


def main(argv=None) -> int:
    args = _parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='kvmplace-bench-')
    nova = matched_nova = None
    try:
        cluster_path = os.path.join(workdir, 'cluster.json')
        data = cluster.write_cluster(cluster_path, args.hosts, args.seed)
        if args.keep_cluster:
            _keep(data, args.keep_cluster)
        with open(cluster_path, encoding='utf-8') as f:
            data = json.load(f)  # what the Nova side reads, number for number
        kvm = KvmplaceSide(data)
        matched_kvm = None if args.no_matched else KvmplaceSide(
            data, MATCHED_KVMPLACE_FILTERS, MATCHED_KVMPLACE_WEIGHERS,
            inventory_obj=kvm.inventory)
        del data  # hold what a service holds (host objects), not the raw JSON
        matched_nova = None
        if not args.no_nova:
            python = ensure_nova_venv(args.nova_venv)
            nova = NovaSide(python, cluster_path, args.nova_filters.split(','),
                            args.nova_weighers.split(','),
                            os.path.join(workdir, 'nova_side.log'))
            if not args.no_matched:
                matched_nova = NovaSide(python, cluster_path, MATCHED_NOVA_FILTERS,
                                        MATCHED_NOVA_WEIGHERS,
                                        os.path.join(workdir, 'nova_side_matched.log'))
        if args.profile:
            _profile(kvm)

        sides: dict[str, object] = {'kvm': kvm, 'nova': nova, 'mkvm': matched_kvm,
                                    'mnova': matched_nova}
        sides = {k: v for k, v in sides.items() if v is not None}
        times: dict[str, list[float]] = {k: [] for k in sides}
        last: dict[str, dict] = {}
        for _ in range(args.warmup):
            for side in sides.values():
                side.run()
        names = list(sides)
        for rep in range(args.repeats):
            # Take turns, each side first in turn, so none always runs warm.
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                side = sides[name]
                if isinstance(side, KvmplaceSide):
                    ms, last[name] = side.run()
                else:
                    last[name] = side.run()
                    ms = last[name]['ms']
                times[name].append(ms)
        kvm_ms, nova_ms = times['kvm'], times.get('nova', [])
        result, nova_run = last['kvm'], last.get('nova')

        def ratio(slow: list[float], fast: list[float]) -> Optional[float]:
            if not slow or not fast:
                return None
            return round(statistics.median(slow) / statistics.median(fast), 2)

        topo_ms = [kvm.topology_ms() for _ in range(args.repeats)]
        matched = None
        if matched_kvm is not None:
            matched = {
                'kvmplace_filters': MATCHED_KVMPLACE_FILTERS,
                'kvmplace_weighers': MATCHED_KVMPLACE_WEIGHERS,
                'nova_filters': MATCHED_NOVA_FILTERS if matched_nova else None,
                'nova_weighers': MATCHED_NOVA_WEIGHERS if matched_nova else None,
                'kvmplace_p50_ms': round(statistics.median(times['mkvm']), 2),
                'kvmplace_p95_ms': round(p95(times['mkvm']), 2),
                'nova_p50_ms': (round(statistics.median(times['mnova']), 2)
                                if matched_nova else None),
                'nova_p95_ms': round(p95(times['mnova']), 2) if matched_nova else None,
                'speedup': ratio(times.get('mnova', []), times['mkvm']),
                'kvmplace_ranked': last['mkvm']['ranked'],
                'nova_passed': last['mnova']['passed'] if matched_nova else None,
            }
        us_per_host = {'kvmplace': kvm.per_plugin_us(),
                       'nova': nova.per_plugin_us() if nova else None}
        if matched_kvm is not None:
            us_per_host['kvmplace_matched'] = matched_kvm.per_plugin_us()
        out = {
            'hosts': args.hosts,
            'kvmplace_p50_ms': round(statistics.median(kvm_ms), 2),
            'kvmplace_p95_ms': round(p95(kvm_ms), 2),
            'nova_p50_ms': round(statistics.median(nova_ms), 2) if nova_ms else None,
            'nova_p95_ms': round(p95(nova_ms), 2) if nova_ms else None,
            'speedup': ratio(nova_ms, kvm_ms),
            'matched': matched,
            'us_per_host': us_per_host,
            'repeats': args.repeats,
            'seed': args.seed,
            # included in kvmplace_p50_ms, measured on its own afterwards
            'kvmplace_topology_build_p50_ms': round(statistics.median(topo_ms), 2),
            'kvmplace_filters': kvm.filters,
            'kvmplace_weighers': kvm.weighers,
            'kvmplace_ranked': result['ranked'],
            'kvmplace_rejected': result['rejected'],
            'kvmplace_estimated_hosts': result['estimated'],
            'nova_version': nova.info['nova_version'] if nova else None,
            'nova_filters': nova.info['filters'] if nova else None,
            'nova_weighers': nova.info['weighers'] if nova else None,
            'nova_passed': nova_run['passed'] if nova_run else None,
            'python': platform.python_version(),
            'cpus': os.cpu_count(),
            'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'commit': _commit(),
            'machine': _machine(),
        }
        if not args.json:
            if matched:
                print(f'  matched: kvmplace {matched["kvmplace_p50_ms"]} ms, nova '
                      f'{matched["nova_p50_ms"]} ms, speedup {matched["speedup"]}x')
            print(f'{args.hosts} hosts, {args.repeats} runs each (p50 / p95 ms):')
            print(f'  kvmplace select      {out["kvmplace_p50_ms"]:9.2f} / '
                  f'{out["kvmplace_p95_ms"]:.2f}  ({out["kvmplace_ranked"]} ranked, '
                  f'{out["kvmplace_rejected"]} rejected, '
                  f'{out["kvmplace_estimated_hosts"]} estimated)')
            if nova_ms:
                print(f'  nova {out["nova_version"]} handlers {out["nova_p50_ms"]:9.2f} / '
                      f'{out["nova_p95_ms"]:.2f}  ({out["nova_passed"]} passed)')
                print(f'  speedup (nova p50 / kvmplace p50): {out["speedup"]}x')
        print(json.dumps(out), flush=True)
        return 0
    finally:
        for side in (nova, matched_nova):
            if side:
                side.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
