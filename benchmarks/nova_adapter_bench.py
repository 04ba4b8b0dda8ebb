"""What kvmplace's filter and weigher add to nova-scheduler's work per request.

    python benchmarks/nova_adapter_bench.py --hosts 1000 --json

Runs under .nova-venv's python (re-executes itself there; tools/nova-venv.sh
makes it). It starts a real ``kvmplace-conductor`` (kvmplace's .venv, private
RabbitMQ vhost, its own SQLite database), records ``--hosts`` hosts with
``kvmplace hosts import``, and builds the same hosts as Nova HostStates.
Then, alternating, for a live migration of one guest:

nova
    Nova's filter and weigher handlers (``HostFilterHandler`` /
    ``HostWeightHandler``, what ``select_destinations`` runs for each request
    over the HostManager's host states) with Nova's default enabled_filters
    and ``weight_classes = nova.scheduler.weights.all_weighers``.
nova+kvmplace
    The same, plus ``KvmplaceFilter`` and ``KvmplaceWeigher``: one RPC call
    to the conductor over RabbitMQ (which reads the facts from SQL, runs
    kvmplace's filters and weighers and records the decision) per request.

Each run uses a new RequestSpec (the adapter caches per request). Not
included, in either variant: Placement's allocation candidates query and the
HostManager's refresh of host states from Nova's database (the same for both),
and the adapter's two reads of the instance record (InstanceMapping,
Instance) that tell a live migration from a boot: here that lookup is
replaced by the known answer (live-migrate from the first host).

Prints one JSON line: hosts, nova_p50_ms, nova_with_kvmplace_p50_ms,
added_p50_ms (the median of the per-pair differences), p90s, runs, date,
commit, machine, and what is included.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOVA_PY = os.path.join(ROOT, '.nova-venv', 'bin', 'python')
KVMPLACE_PY = os.path.join(ROOT, '.venv', 'bin', 'python')
NOVA_FILTERS = ('ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter',
                'ServerGroupAntiAffinityFilter', 'ServerGroupAffinityFilter')
SOURCE = 'cn-0000'


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--hosts', type=int, default=1000)
    p.add_argument('--runs', type=int, default=30, help='runs of each variant (alternating)')
    p.add_argument('--json', action='store_true', help='print only the JSON line')
    p.add_argument('--seed', type=int, default=13)
    return p.parse_args(argv)


def cluster(n: int, seed: int) -> dict:
    """``n`` hosts in the inventory format: 10/25 GbE and 1 GbE racks, some
    NUMA nodes slowed down, a few hosts with every node degraded."""
    rng = random.Random(seed)
    hosts, links = [], []
    for i in range(n):
        name = f'cn-{i:04d}'
        link = 1000 if i % 10 == 3 else (25000 if i % 4 == 0 else 10000)
        degraded = i % 50 == 7
        numa = []
        for node in range(2):
            health = 0.25 if degraded else (0.35 if rng.random() < 0.1 else 1.0)
            numa.append({'id': node, 'cpus': f'{24 * node}-{24 * node + 23}',
                         'memory_mib': 98304, 'free_memory_mib': rng.randrange(8192, 90000),
                         'bandwidth_mibps': 27000 * health, 'baseline_mibps': 27000})
        used = 196608 - sum(x['free_memory_mib'] for x in numa)
        hosts.append({'name': name, 'link_mbps': link, 'vcpus': 48,
                      'vcpus_used': rng.randrange(0, 40), 'memory_mib': 196608,
                      'memory_used_mib': used, 'cpu_model': 'Cascadelake-Server', 'numa': numa})
        links.append({'a': name, 'b': f'tor-{i // 40}', 'mbps': link})
    for rack in range((n + 39) // 40):
        links.append({'a': f'tor-{rack}', 'b': 'spine', 'mbps': 100000})
    return {'hosts': hosts, 'links': links}


def host_states(inv: dict, fakes):
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    states = []
    for i, host in enumerate(inv['hosts']):
        if host['name'] == SOURCE:
            continue
        service = {'id': i + 1, 'host': host['name'], 'binary': 'nova-compute',
                   'topic': 'compute', 'disabled': False, 'disabled_reason': None,
                   'forced_down': False, 'created_at': now, 'updated_at': now,
                   'last_seen_up': now}
        attrs = {
            'uuid': f'00000000-0000-4000-8000-{i:012d}', 'service': service,
            'total_usable_ram_mb': host['memory_mib'],
            'free_ram_mb': host['memory_mib'] - host['memory_used_mib'],
            'ram_allocation_ratio': 1.0, 'vcpus_total': host['vcpus'],
            'vcpus_used': host['vcpus_used'], 'cpu_allocation_ratio': 4.0,
            'total_usable_disk_gb': 1920, 'free_disk_mb': 960 * 1024,
            'disk_mb_used': 960 * 1024, 'disk_allocation_ratio': 1.0,
            'num_instances': host['vcpus_used'] // 4, 'num_io_ops': i % 7,
            'failed_builds': 0, 'hypervisor_type': 'QEMU', 'hypervisor_version': 8002000,
            'hypervisor_hostname': host['name'],
            'cpu_info': json.dumps({'arch': 'x86_64', 'model': host['cpu_model'],
                                    'vendor': 'Intel', 'topology': {'sockets': 2,
                                                                    'cores': 24,
                                                                    'threads': 1}}),
            'supported_instances': [('x86_64', 'kvm', 'hvm')], 'aggregates': [],
            'metrics': None, 'pci_stats': None, 'numa_topology': None, 'updated': now,
        }
        state = fakes.FakeHostState(host['name'], host['name'], attrs)
        state.cell_uuid = 'c0ffee00-0000-4000-8000-000000000001'
        states.append(state)
    return states


def request_spec(nova_objects):
    flavor = nova_objects.Flavor(id=1, flavorid='bench', name='bench', memory_mb=8192,
                                 vcpus=4, root_gb=20, ephemeral_gb=0, swap=0,
                                 extra_specs={})
    image = nova_objects.ImageMeta.from_dict({
        'id': '11111111-2222-4333-8444-555555555555', 'name': 'bench',
        'properties': {'hw_architecture': 'x86_64', 'img_hv_type': 'kvm',
                       'hw_vm_mode': 'hvm'}})
    return nova_objects.RequestSpec(
        instance_uuid='99999999-0000-4000-8000-000000000000', num_instances=1,
        flavor=flavor, image=image, project_id='bench', user_id='bench',
        instance_group=None, scheduler_hints={}, ignore_hosts=[SOURCE], force_hosts=[],
        force_nodes=[], availability_zone=None, requested_destination=None, is_bfv=False)


def commit() -> str:
    try:
        return subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def machine() -> str:
    model = ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as fh:
            model = next((ln.split(':', 1)[1].strip() for ln in fh
                          if ln.startswith('model name')), '')
    except OSError:
        pass
    mem_gib = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return f'{os.cpu_count()} CPUs ({model}), {mem_gib:.0f} GiB, {platform.system()} ' \
           f'{platform.release()}, Python {platform.python_version()}'


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import nova  # noqa: F401
    except ImportError:
        if not os.access(NOVA_PY, os.X_OK):
            sys.stderr.write('nova_adapter_bench: error: Nova is not installed here; run '
                             'tools/nova-venv.sh first\n')
            return 1
        os.execv(NOVA_PY, [NOVA_PY, os.path.abspath(__file__), *sys.argv[1:]])
    warnings.simplefilter('ignore')
    sys.path.insert(0, ROOT)
    from tests.nova import fixtures as kfx   # private vhost, real conductor

    from nova import conf as nova_conf
    from nova import objects as nova_objects
    from nova.scheduler import filters as nova_filters
    from nova.scheduler import weights as nova_weights
    from nova.tests.unit.scheduler import fakes

    from kvmplace.nova import adapter as adapter_mod
    from kvmplace.nova import conf as kconf
    from kvmplace.nova import scheduler as kscheduler
    nova_objects.register_all()
    conf = nova_conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    kconf.register_opts(conf)
    problem = kfx.broker_problem()
    if problem:
        sys.stderr.write(f'nova_adapter_bench: error: {problem}\n')
        return 1

    inv = cluster(args.hosts, args.seed)
    workdir = tempfile.mkdtemp(prefix='kvmplace-nova-bench-', dir='/var/tmp')
    try:
        return _measure(args, inv, workdir, kfx, conf, adapter_mod, nova_objects, nova_filters,
                        nova_weights, fakes, kscheduler)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args, inv, workdir, kfx, conf, adapter_mod, nova_objects, nova_filters,
             nova_weights, fakes, kscheduler) -> int:
    with kfx.PrivateVhost() as vhost, kfx.KvmplaceConductor(
            vhost.url, workdir, extra={'DEFAULT': {'debug': 'false'}}) as conductor:
        conductor.import_inventory(inv)
        conf.set_override('transport_url', vhost.url, group='kvmplace')
        conf.set_override('weight_multiplier', 10.0, group='kvmplace')
        # The host states are built once: keep their services "up" however
        # long the runs take (ComputeFilter compares last_seen_up with it).
        conf.set_override('service_down_time', 10 ** 6)
        adapter = adapter_mod.Adapter(conf)
        adapter_mod.reset_adapter(adapter)
        # The instance-record lookup (two Nova DB reads) is replaced by its answer.
        adapter_mod.request_kind = lambda spec: ('live-migrate', SOURCE)

        fh = nova_filters.HostFilterHandler()
        classes = {c.__name__: c for c in fh.get_matching_classes(
            ['nova.scheduler.filters.all_filters'])}
        nova_f = [classes[n]() for n in NOVA_FILTERS]
        wh = nova_weights.HostWeightHandler()
        nova_w = [c() for c in nova_weights.all_weighers()]
        variants = {'nova': (nova_f, nova_w),
                    'nova+kvmplace': (nova_f + [kscheduler.KvmplaceFilter()],
                                      nova_w + [kscheduler.KvmplaceWeigher()])}
        states = host_states(inv, fakes)

        def run(name):
            filters, weighers = variants[name]
            spec = request_spec(nova_objects)
            gc.collect()
            start = time.perf_counter()
            passed = fh.get_filtered_objects(filters, states, spec)
            weighed = wh.get_weighed_objects(weighers, passed, spec)
            ms = (time.perf_counter() - start) * 1000.0
            return ms, (weighed[0].obj.host if weighed else None), len(passed)

        for name in variants:          # warm-up: connections, plugin loading
            run(name)
        times: dict[str, list[float]] = {n: [] for n in variants}
        best: dict[str, str] = {}
        passed: dict[str, int] = {}
        calls_before = adapter.calls
        for i in range(args.runs):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                ms, best[name], passed[name] = run(name)
                times[name].append(ms)
        calls = adapter.calls - calls_before
        adapter.client().transport.cleanup()
        failed = [n for n in ('nova+kvmplace',) if calls != args.runs]
    diffs = [k - n for k, n in zip(times['nova+kvmplace'], times['nova'])]

    def p(values, q):
        return round(statistics.quantiles(values, n=10)[q - 1], 2) if len(values) > 1 \
            else round(values[0], 2)

    result = {
        'hosts': args.hosts,
        'nova_p50_ms': round(statistics.median(times['nova']), 2),
        'nova_with_kvmplace_p50_ms': round(statistics.median(times['nova+kvmplace']), 2),
        'added_p50_ms': round(statistics.median(diffs), 2),
        'nova_p90_ms': p(times['nova'], 9),
        'nova_with_kvmplace_p90_ms': p(times['nova+kvmplace'], 9),
        'added_p90_ms': p(diffs, 9),
        'runs': args.runs, 'rpc_calls': calls,
        'best': best, 'passed': passed,
        'placement_included': False,
        'included': 'Nova HostFilterHandler+HostWeightHandler over the host states '
                    '(default enabled_filters, all_weighers); with kvmplace also '
                    'KvmplaceFilter+KvmplaceWeigher: one RPC call over RabbitMQ to a real '
                    'kvmplace-conductor (SQLite), which reads facts, runs its filters and '
                    'weighers and records the decision',
        'excluded': 'Placement allocation candidates, HostManager host-state refresh, '
                    'the adapter\'s instance-record lookup (2 Nova DB reads)',
        'loadavg_1min': round(os.getloadavg()[0], 2),
        'date': datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'commit': commit(), 'machine': machine(),
        'command': f'python benchmarks/nova_adapter_bench.py --hosts {args.hosts} --json',
    }
    if failed:
        result['error'] = f'expected {args.runs} RPC calls, made {calls}'
    if not args.json:
        print(f"{args.hosts} hosts: nova p50 {result['nova_p50_ms']} ms, with kvmplace "
              f"{result['nova_with_kvmplace_p50_ms']} ms, added {result['added_p50_ms']} ms")
    print(json.dumps(result))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
