"""A deterministic synthetic cluster for the scheduler benchmark.

Standard library only: the Nova side (``nova_side.py``) runs in another
virtual environment and reads the same JSON file this module writes.

The cluster is an offline inventory as ARCHITECTURE "Offline inventory"
defines it (so ``kvmplace select vm-bench --inventory FILE`` works on it),
wrapped with the request and a few figures only Nova needs::

    {"seed", "now", "instance", "disk_gb": {host: GiB}, "inventory": {...}}

What varies from host to host, so that every filter rejects some hosts and
every weigher sees a spread:

- NIC speed 1, 10 or 25 Gbit/s; racks of 40 hosts behind a top-of-rack
  switch whose spine uplink is 100, 40 or (old racks) 10 Gbit/s;
- 2 or 4 NUMA nodes; about 12 % of hosts have one slow node (write
  bandwidth at 20-55 % of its baseline), 3 % have every node slow;
- RAM and vCPU use from nearly empty to full, so the RAM and vCPU filters
  reject a few percent;
- CPU models from Haswell to SapphireRapids (the guest needs Cascadelake);
- 2 % disabled, 2 % in maintenance, 1 % down or not reporting for 5 min.
"""
from __future__ import annotations

import json
import random

INSTANCE = 'vm-bench'
SOURCE_INDEX = 0
RACK_SIZE = 40
NOW = 1_700_000_000.0

CPU_MODELS = [('Haswell', 2), ('Broadwell', 4), ('Skylake-Server', 10),
              ('Cascadelake-Server', 34), ('Icelake-Server', 35),
              ('SapphireRapids', 15)]
NIC_MBPS = [(1000, 10), (10000, 50), (25000, 40)]
UPLINK_MBPS = [(100000, 60), (40000, 30), (10000, 10)]
# (vcpus, memory MiB, NUMA nodes)
SHAPES = [(32, 131072, 2), (48, 196608, 2), (64, 262144, 2), (96, 393216, 2),
          (128, 524288, 4)]
BASELINE_MIBPS = 27000.0


def _pick(rng: random.Random, table):
    values, weights = zip(*table)
    return rng.choices(values, weights)[0]


def host_name(i: int) -> str:
    return f'cn-{i:05d}'


def _numa(rng: random.Random, vcpus: int, memory_mib: int, used_mib: int,
          nodes: int, slow: str) -> list[dict]:
    per_cpu = vcpus // nodes
    per_mem = memory_mib // nodes
    free_total = memory_mib - used_mib
    # spread the free memory unevenly over the nodes
    shares = [rng.uniform(0.5, 1.5) for _ in range(nodes)]
    scale = sum(shares)
    slow_nodes = set(range(nodes)) if slow == 'all' else (
        {rng.randrange(nodes)} if slow == 'one' else set())
    out = []
    for n in range(nodes):
        free = min(per_mem, int(free_total * shares[n] / scale))
        bandwidth = (BASELINE_MIBPS * rng.uniform(0.2, 0.55) if n in slow_nodes
                     else BASELINE_MIBPS * rng.uniform(0.9, 1.0))
        out.append({'id': n, 'cpus': f'{n * per_cpu}-{(n + 1) * per_cpu - 1}',
                    'memory_mib': per_mem, 'free_memory_mib': max(0, free),
                    'bandwidth_mibps': round(bandwidth, 1),
                    'baseline_mibps': BASELINE_MIBPS})
    return out


def make_cluster(n_hosts: int, seed: int = 42) -> dict:
    """The cluster, a plain dict; the same (n_hosts, seed) gives the same dict."""
    if n_hosts < 2:
        raise ValueError('need at least 2 hosts (the source and a target)')
    rng = random.Random(seed)
    hosts, links, disk_gb = [], [], {}
    n_racks = (n_hosts + RACK_SIZE - 1) // RACK_SIZE
    for r in range(n_racks):
        links.append({'a': f'tor-{r:04d}', 'b': 'spine',
                      'mbps': 100000 if r == 0 else _pick(rng, UPLINK_MBPS)})
    for i in range(n_hosts):
        name = host_name(i)
        vcpus, memory, nodes = rng.choice(SHAPES)
        used = int(memory * rng.betavariate(2.0, 2.5))
        roll = rng.random()
        slow = 'all' if roll < 0.03 else ('one' if roll < 0.15 else 'none')
        host = {
            'name': name,
            'enabled': rng.random() >= 0.02,
            'maintenance': rng.random() < 0.02,
            'link_mbps': _pick(rng, NIC_MBPS),
            'vcpus': vcpus,
            'vcpus_used': int(vcpus * 4.0 * rng.betavariate(2.0, 3.0)),
            'memory_mib': memory,
            'memory_used_mib': used,
            'cpu_model': _pick(rng, CPU_MODELS),
            'numa': _numa(rng, vcpus, memory, used, nodes, slow),
            'up': True,
            'updated_at': NOW - rng.uniform(0, 30),
        }
        stale = rng.random()
        if stale < 0.005:
            host['up'] = False
        elif stale < 0.01:
            host['updated_at'] = NOW - 300.0
        if i == SOURCE_INDEX:
            # The slowed-memory case: the guest's emulator thread sits on a
            # slow node of a 25G host, so every estimate has a pre-pin.
            host.update(enabled=True, maintenance=False, up=True, link_mbps=25000,
                        cpu_model='Cascadelake-Server')
            host['numa'] = _numa(rng, vcpus, memory, used, nodes, 'none')
            host['numa'][0]['bandwidth_mibps'] = BASELINE_MIBPS / 3
        hosts.append(host)
        links.append({'a': name, 'b': f'tor-{i // RACK_SIZE:04d}',
                      'mbps': host['link_mbps']})
        disk_gb[name] = rng.choice([960, 1920, 3840]) - rng.randrange(0, 900)
    instance = {'name': INSTANCE, 'host': host_name(SOURCE_INDEX),
                'memory_mib': 16384, 'vcpus': 8, 'dirty_rate_mibps': 150.0,
                'emulator_node': 0, 'disk_gib': 40, 'shared_storage': True,
                'cpu_model': 'Cascadelake-Server'}
    return {'seed': seed, 'now': NOW, 'instance': INSTANCE, 'disk_gb': disk_gb,
            'inventory': {'hosts': hosts, 'instances': [instance], 'links': links}}


def write_cluster(path: str, n_hosts: int, seed: int = 42) -> dict:
    cluster = make_cluster(n_hosts, seed)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(cluster, f)
    return cluster
