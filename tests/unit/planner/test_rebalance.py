"""Rebalance plans: fewer moves, halved spread, off slow hosts, never over capacity."""
from __future__ import annotations

import pytest

from kvmplace import conf as kconf
from kvmplace import objects
from kvmplace.planner import rebalance
from kvmplace.scheduler import manager
from tests.unit.planner import synth


@pytest.fixture(scope='module')
def sched():
    return manager.SchedulerManager(kconf.new_conf())


def uneven() -> objects.Inventory:
    hosts = {f'h{i}': synth.host(f'h{i}', 10000, mem_gib=128) for i in range(4)}
    insts = {}
    # h0 is full, h3 is empty.
    for host, n in (('h0', 10), ('h1', 6), ('h2', 3)):
        for j in range(n):
            name = f'{host}-vm{j}'
            insts[name] = objects.Instance(name, host, 8192, 2, 5.0)
    for name, h in hosts.items():
        h.memory_used_mib = sum(i.memory_mib for i in insts.values() if i.host == name)
        h.vcpus_used = sum(i.vcpus for i in insts.values() if i.host == name)
    return objects.Inventory(hosts, insts, [])


def test_halves_the_spread_in_a_handful_of_moves(sched):
    inv = uneven()
    plan = rebalance.plan(sched, inv, threshold=0.1)
    before, after = plan['before']['memory_spread'], plan['after']['memory_spread']
    assert before == pytest.approx((10 - 0) * 8192 / (128 * 1024), abs=1e-3)
    assert after <= before / 2
    assert after <= 0.1 + 1e-9
    assert 1 <= len(plan['migrations']) <= 6
    # Moves only leave fuller-than-average hosts and land on emptier ones.
    assert {m['source'] for m in plan['migrations']} <= {'h0', 'h1'}
    assert {m['dest'] for m in plan['migrations']} <= {'h2', 'h3'}


def test_moves_guests_off_a_host_whose_nodes_are_all_slow(sched):
    inv = uneven()
    slow = inv.hosts['h2']
    for node in slow.numa:
        node.bandwidth_mibps = 8000
    plan = rebalance.plan(sched, inv, threshold=0.5)
    assert plan['before']['unhealthy_hosts'] == ['h2']
    moved = {m['instance'] for m in plan['migrations'] if m['source'] == 'h2'}
    assert moved == {f'h2-vm{j}' for j in range(3)}
    assert plan['after']['guests_on_unhealthy_hosts'] == []
    assert all(m['dest'] != 'h2' for m in plan['migrations'])


def test_never_over_capacity(sched):
    inv = uneven()
    plan = rebalance.plan(sched, inv, threshold=0.01)
    used = {n: h.memory_used_mib for n, h in inv.hosts.items()}
    for m in plan['migrations']:
        mem = inv.instances[m['instance']].memory_mib
        used[m['source']] -= mem
        used[m['dest']] += mem
    assert all(used[n] <= inv.hosts[n].memory_mib for n in used)


def test_balanced_cluster_needs_no_moves(sched):
    hosts = {f'h{i}': synth.host(f'h{i}', 10000, mem_gib=64, used_mib=16384) for i in range(3)}
    plan = rebalance.plan(sched, objects.Inventory(hosts, {}, []), threshold=0.1)
    assert plan['migrations'] == []
    assert plan['after'] == plan['before']
