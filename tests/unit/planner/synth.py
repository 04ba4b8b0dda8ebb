"""Synthetic clusters for planner tests (deterministic from a seed)."""
from __future__ import annotations

import random

from kvmplace import objects


def host(name, link, mem_gib=512, used_mib=0, slow=(False, False), r=None):
    half = mem_gib * 1024 // 2
    return objects.Host(
        name=name, link_mbps=link, vcpus=64, memory_mib=mem_gib * 1024,
        memory_used_mib=used_mib,
        numa=[objects.NumaNode(0, '0-31', half, half, 9000 if slow[0] else 27000, 27000),
              objects.NumaNode(1, '32-63', half, half, 9000 if slow[1] else 27000, 27000)])


def drain_cluster(seed: int, guests: int = 12, dests: int = 5, src_link: int = 10000,
                  dirty_max: float = 30.0) -> objects.Inventory:
    r = random.Random(seed)
    hosts = {'src': host('src', src_link)}
    for i in range(dests):
        hosts[f'd{i}'] = host(f'd{i}', r.choice([10000, 25000]), used_mib=r.randint(0, 200000),
                              slow=(False, r.random() < 0.3))
    insts = {}
    for i in range(guests):
        insts[f'g{i:02d}'] = objects.Instance(
            f'g{i:02d}', 'src', r.choice([2048, 4096, 8192, 16384]), r.choice([1, 2, 4]),
            round(r.uniform(0, dirty_max), 1), r.choice([0, 1]))
    hosts['src'].memory_used_mib = sum(i.memory_mib for i in insts.values())
    hosts['src'].vcpus_used = sum(i.vcpus for i in insts.values())
    return objects.Inventory(hosts, insts, [])
