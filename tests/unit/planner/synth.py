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


def rack_cluster(seed: int, hosts: int = 60, guests: int = 10, rack: int = 8,
                 twins: float = 0.5) -> objects.Inventory:
    """A drain source ``src`` and ``hosts`` destinations in racks behind a
    spine, for comparing planners: NICs of 1, 10 and 25 Gbit/s, rack
    uplinks of 10, 40 or 100 Gbit/s, a source NIC of 10 to 100 Gbit/s, some
    slow NUMA nodes, hosts nearly full. A share ``twins`` of the hosts are
    copies of one shape, so many destinations tie exactly (same rate, same
    time) and the ranking must break the ties."""
    r = random.Random(seed)
    inv_hosts = {'src': host('src', r.choice([10000, 100000, 100000]), mem_gib=1024)}
    links = [objects.Link('src', 'tor-0', inv_hosts['src'].link_mbps)]
    racks = {0}
    for i in range(hosts):
        name = f'h{i:03d}'
        tor = (i + 1) // rack
        racks.add(tor)
        if r.random() < twins:
            h = host(name, 10000, mem_gib=256, used_mib=65536)
        else:
            h = host(name, r.choice([1000, 10000, 10000, 25000]), mem_gib=r.choice([64, 256, 512]),
                     slow=(r.random() < 0.2, r.random() < 0.2))
            h.memory_used_mib = int(h.memory_mib * r.uniform(0, 0.95))
            for node in h.numa:
                if node.bandwidth_mibps < 27000:
                    node.bandwidth_mibps = round(r.uniform(5000, 20000), 1)
        inv_hosts[name] = h
        links.append(objects.Link(name, f'tor-{tor}', h.link_mbps))
    for tor in sorted(racks):
        links.append(objects.Link(f'tor-{tor}', 'spine', r.choice([10000, 40000, 100000])))
    insts = {}
    for i in range(guests):
        insts[f'g{i:02d}'] = objects.Instance(
            f'g{i:02d}', 'src', r.choice([1024, 4096, 8192, 16384, 65536]), r.choice([1, 2, 4]),
            round(r.choice([0.0, r.uniform(0, 120)]), 1), r.choice([0, 1, None]))
    inv_hosts['src'].memory_used_mib = sum(i.memory_mib for i in insts.values())
    inv_hosts['src'].vcpus_used = sum(i.vcpus for i in insts.values())
    return objects.Inventory(inv_hosts, insts, links)
