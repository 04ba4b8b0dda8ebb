"""Time Nova's own filter and weigher handlers on the benchmark's cluster.

Runs under the Nova virtual environment's python (scheduler_bench.py
starts it), never under kvmplace's: it imports only the standard library,
``cluster.py``'s JSON and ``nova``.

    python nova_side.py --cluster FILE [--filters A,B] [--weighers X,Y]

Setup (importing Nova, one ``FakeHostState`` per host with the cluster's
RAM/CPU/disk figures, the RequestSpec) happens once and is not timed, as in
a running nova-scheduler whose HostManager keeps its host states. Then it
prints one JSON line ``{"ready": true, ...}`` and answers each ``run`` line
on stdin with ``{"ms", "passed", "best"}``: one
``HostFilterHandler.get_filtered_objects`` plus one
``HostWeightHandler.get_weighed_objects`` over every host but the source
(Nova drops ``ignore_hosts`` before its filters run). ``plugins`` answers
``{"filters": {name: us_per_host}, "weighers": {...}}``: each filter's
``filter_all`` over the hosts it sees in a run (the survivors of the
filters before it) and each weigher's ``weigh_objects`` over the passed
hosts, timed alone (median of 5), divided by the hosts it saw. ``quit``
ends it.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import sys
import time
import warnings

DEFAULT_FILTERS = ('ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter',
                   'ServerGroupAntiAffinityFilter', 'ServerGroupAffinityFilter')
DEFAULT_WEIGHERS = ('all',)


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cluster', required=True)
    parser.add_argument('--filters', default=','.join(DEFAULT_FILTERS),
                        help='Nova filter class names (default: Nova\'s own default '
                             '[filter_scheduler] enabled_filters)')
    parser.add_argument('--weighers', default=','.join(DEFAULT_WEIGHERS),
                        help='Nova weigher class names, or "all" for Nova\'s default '
                             'weight_classes = nova.scheduler.weights.all_weighers')
    return parser.parse_args(argv)


def _load_nova():
    warnings.simplefilter('ignore')
    import nova
    from nova import conf as nova_conf
    from nova import objects as nova_objects
    nova_objects.register_all()
    conf = nova_conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    try:
        from importlib.metadata import version
        nova_version = version('nova')
    except Exception:  # pragma: no cover - old packaging
        nova_version = getattr(nova, '__version__', 'unknown')
    return conf, nova_objects, nova_version


def _host_states(cluster, fakes):
    """One FakeHostState per host, the source left out (Nova's ignore_hosts)."""
    inventory = cluster['inventory']
    source = inventory['instances'][0]['host']
    now = datetime.datetime.utcnow()
    cell = 'c0ffee00-0000-4000-8000-000000000001'
    states = []
    for i, host in enumerate(inventory['hosts']):
        if host['name'] == source:
            continue
        # The cluster's "now" is kvmplace's clock; Nova compares against the
        # wall clock, so keep each host's age, not its timestamp.
        age = cluster['now'] - host['updated_at']
        seen = now - datetime.timedelta(seconds=age)
        disk_gb = cluster['disk_gb'][host['name']]
        total_disk_gb = 3840 if disk_gb > 1920 else (1920 if disk_gb > 960 else 960)
        service = {'id': i + 1, 'host': host['name'], 'binary': 'nova-compute',
                   'topic': 'compute',
                   # Nova has no maintenance flag: operators disable the
                   # compute service for it.
                   'disabled': not host['enabled'] or host['maintenance'],
                   'disabled_reason': 'maintenance' if host['maintenance'] else None,
                   'forced_down': not host['up'],
                   'created_at': seen, 'updated_at': seen, 'last_seen_up': seen}
        cpu_info = json.dumps({'arch': 'x86_64', 'model': host['cpu_model'],
                               'vendor': 'Intel',
                               'topology': {'sockets': len(host['numa']), 'cores': 1,
                                            'threads': 1}})
        attrs = {
            'uuid': f'00000000-0000-4000-8000-{i:012d}',
            'service': service,
            'total_usable_ram_mb': host['memory_mib'],
            'free_ram_mb': host['memory_mib'] - host['memory_used_mib'],
            'ram_allocation_ratio': 1.0,
            'vcpus_total': host['vcpus'],
            'vcpus_used': host['vcpus_used'],
            'cpu_allocation_ratio': 4.0,
            'total_usable_disk_gb': total_disk_gb,
            'free_disk_mb': disk_gb * 1024,
            'disk_mb_used': (total_disk_gb - disk_gb) * 1024,
            'disk_allocation_ratio': 1.0,
            'num_instances': (host['vcpus_used'] + 3) // 4,
            'num_io_ops': i % 7,
            'failed_builds': 1 if i % 97 == 0 else 0,
            'hypervisor_type': 'QEMU',
            'hypervisor_version': 8002000 if i % 3 else 6002000,
            'hypervisor_hostname': host['name'],
            'cpu_info': cpu_info,
            'supported_instances': [('x86_64', 'kvm', 'hvm'), ('i686', 'kvm', 'hvm')],
            'aggregates': [],
            'metrics': None,
            'pci_stats': None,
            'numa_topology': None,
            'updated': now,
        }
        states.append(fakes.FakeHostState(host['name'], host['name'], attrs))
        states[-1].cell_uuid = cell
        states[-1].heartbeat_age_s = age
    return states


def _heartbeats(states) -> None:
    """Each compute service's last heartbeat moved to the same age before
    now as in the cluster, as nova-compute's periodic reports keep it (the
    host states outlive a run of several minutes; without this, hosts age
    past ``service_down_time`` during the benchmark and ``ComputeFilter``
    passes fewer and fewer hosts, so Nova's later runs weigh fewer)."""
    now = datetime.datetime.utcnow()
    for state in states:
        seen = now - datetime.timedelta(seconds=state.heartbeat_age_s)
        state.service.update(updated_at=seen, last_seen_up=seen)


def _request_spec(cluster, nova_objects):
    inventory = cluster['inventory']
    inst = inventory['instances'][0]
    flavor = nova_objects.Flavor(
        id=1, flavorid='bench', name='bench', memory_mb=inst['memory_mib'],
        vcpus=inst['vcpus'], root_gb=inst['disk_gib'], ephemeral_gb=0, swap=0,
        extra_specs={})
    image = nova_objects.ImageMeta.from_dict({
        'id': '11111111-2222-4333-8444-555555555555', 'name': 'bench',
        'properties': {'hw_architecture': 'x86_64', 'img_hv_type': 'kvm',
                       'hw_vm_mode': 'hvm'}})
    return nova_objects.RequestSpec(
        instance_uuid='99999999-0000-4000-8000-000000000000', num_instances=1,
        flavor=flavor, image=image, project_id='bench', user_id='bench',
        instance_group=None, scheduler_hints={}, ignore_hosts=[inst['host']],
        force_hosts=[], force_nodes=[], availability_zone=None,
        requested_destination=None, is_bfv=False)


def main(argv=None) -> int:
    args = _parse_args(argv)
    conf, nova_objects, nova_version = _load_nova()
    from nova.scheduler import filters as nova_filters
    from nova.scheduler import weights as nova_weights
    from nova.tests.unit.scheduler import fakes

    with open(args.cluster, encoding='utf-8') as f:
        cluster = json.load(f)

    filter_handler = nova_filters.HostFilterHandler()
    filter_classes = {c.__name__: c for c in filter_handler.get_matching_classes(
        ['nova.scheduler.filters.all_filters'])}
    filter_names = [n for n in args.filters.split(',') if n]
    unknown = [n for n in filter_names if n not in filter_classes]
    if unknown:
        print(f'nova_side: unknown Nova filter(s) {unknown}; nova {nova_version} has '
              f'{sorted(filter_classes)}', file=sys.stderr)
        return 2
    filter_objs = [filter_classes[n]() for n in filter_names]

    weight_handler = nova_weights.HostWeightHandler()
    weigher_classes = {c.__name__: c for c in nova_weights.all_weighers()}
    weigher_names = [n for n in args.weighers.split(',') if n]
    if weigher_names == ['all']:
        weigher_names = sorted(weigher_classes)
    unknown = [n for n in weigher_names if n not in weigher_classes]
    if unknown:
        print(f'nova_side: unknown Nova weigher(s) {unknown}; nova {nova_version} has '
              f'{sorted(weigher_classes)}', file=sys.stderr)
        return 2
    weigher_objs = [weigher_classes[n]() for n in weigher_names]

    states = _host_states(cluster, fakes)
    spec = _request_spec(cluster, nova_objects)
    del cluster  # hold what nova-scheduler holds (host states), not the raw JSON

    def run():
        passed = filter_handler.get_filtered_objects(filter_objs, states, spec)
        weighed = weight_handler.get_weighed_objects(weigher_objs, passed, spec)
        return passed, weighed

    print(json.dumps({'ready': True, 'nova_version': nova_version,
                      'python': sys.version.split()[0], 'hosts': len(states) + 1,
                      'filters': filter_names, 'weighers': weigher_names}), flush=True)
    def per_plugin():
        _heartbeats(states)
        out = {'filters': {}, 'weighers': {}}
        hosts = list(states)
        for flt in filter_objs:
            times = []
            for _ in range(5):
                gc.collect()
                start = time.perf_counter()
                passed = list(flt.filter_all(hosts, spec))
                times.append(time.perf_counter() - start)
            out['filters'][type(flt).__name__] = (
                round(sorted(times)[2] * 1e6 / max(1, len(hosts)), 3))
            hosts = passed
        for weigher in weigher_objs:
            times = []
            for _ in range(5):
                weighed = [nova_weights.WeighedHost(h, 0.0) for h in hosts]
                gc.collect()
                start = time.perf_counter()
                weigher.weigh_objects(weighed, spec)
                times.append(time.perf_counter() - start)
            out['weighers'][type(weigher).__name__] = (
                round(sorted(times)[2] * 1e6 / max(1, len(hosts)), 3))
        return out

    for line in sys.stdin:
        command = line.strip()
        if command == 'quit':
            break
        if command == 'plugins':
            print(json.dumps(per_plugin()), flush=True)
            continue
        if command != 'run':
            print(json.dumps({'error': f'unknown command {command!r}'}), flush=True)
            continue
        _heartbeats(states)
        gc.collect()
        start = time.perf_counter()
        passed, weighed = run()
        elapsed = time.perf_counter() - start
        answer = {'ms': elapsed * 1000.0, 'passed': len(passed),
                  'best': weighed[0].obj.host if weighed else None}
        del passed, weighed  # dropped before the next run, as on the kvmplace side
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
