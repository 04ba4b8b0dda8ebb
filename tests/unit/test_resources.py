"""The one definition of each resource quantity (kvmplace.resources).

Properties rather than examples: the column forms give the scalar forms'
doubles, the quantities move the way their meaning says (more ratio, more
room; more used, less room), and every consumer that used to restate a
formula now agrees with the module on generated hosts.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmplace.conf
from kvmplace import objects
from kvmplace import resources
from kvmplace.conductor import hoststate
from kvmplace.planner import capacity

SETTINGS = settings(max_examples=200, deadline=None)
mib = st.integers(min_value=0, max_value=4 * 1024 * 1024)
cpus = st.integers(min_value=0, max_value=1024)
ratios = st.floats(min_value=0.1, max_value=16.0)
reserved = st.integers(min_value=0, max_value=65536)
rates = st.floats(min_value=0.0, max_value=400000.0)
optional_rate = st.none() | st.just(0.0) | st.floats(min_value=1e-3, max_value=1e6)


@SETTINGS
@given(st.lists(st.tuples(mib, mib), min_size=1, max_size=50), ratios, reserved)
def test_free_ram_column_is_the_scalar_form(hosts, ratio, held):
    memory = np.array([m for m, _ in hosts], dtype=np.float64)
    used = np.array([u for _, u in hosts], dtype=np.float64)
    column = resources.free_ram_mib(memory, used, ratio, held).tolist()
    assert column == [resources.free_ram_mib(m, u, ratio, held) for m, u in hosts]


@SETTINGS
@given(mib, mib, ratios, ratios, reserved)
def test_free_ram_grows_with_the_ratio_and_shrinks_with_use(memory, used, r1, r2, held):
    lo, hi = sorted((r1, r2))
    assert resources.free_ram_mib(memory, used, lo, held) <= \
        resources.free_ram_mib(memory, used, hi, held)
    assert resources.free_ram_mib(memory, used + 1, lo, held) < \
        resources.free_ram_mib(memory, used, lo, held)
    assert resources.free_ram_mib(memory, used, lo, held) == \
        resources.usable_ram_mib(memory, lo, held) - used


@SETTINGS
@given(cpus, cpus, ratios)
def test_free_vcpus_applies_the_ratio(total, used, ratio):
    free = resources.free_vcpus(total, used, ratio)
    assert free == total * ratio - used
    assert resources.free_vcpus(total, used, 1.0) == total - used
    host = objects.Host(name='h', vcpus=total, vcpus_used=used)
    assert host.free_vcpus(ratio) == free     # Host no longer ignores the ratio


@SETTINGS
@given(rates, st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_link_mibps_is_nominal_times_efficiency_times_share(mbps, efficiency, share):
    full = resources.link_mibps(mbps, efficiency)
    assert full == pytest.approx(mbps * 1e6 / 8 / 2 ** 20 * efficiency)
    assert resources.link_mibps(mbps, efficiency, share) <= full * (1 + 1e-12)
    column = resources.link_mibps(np.array([mbps, mbps]), efficiency, share).tolist()
    assert column == [resources.link_mibps(mbps, efficiency, share)] * 2


def test_link_mibps_matches_the_seed_table():
    # 10 GbE at the default efficiency 0.6 carries about 715 MiB/s; 1 GbE about 72.
    assert resources.link_mibps(10000, 0.6) == pytest.approx(715.26, abs=0.01)
    assert resources.link_mibps(1000, 0.6) == pytest.approx(71.53, abs=0.01)


@SETTINGS
@given(st.none() | st.floats(min_value=0, max_value=1e9), st.floats(min_value=0, max_value=1e9),
       st.floats(min_value=1, max_value=3600), st.booleans())
def test_host_is_up_column_is_the_scalar_form(reported, now, limit, missing_is_up):
    up = resources.host_is_up(reported, now, limit, missing_is_up)
    column = resources.hosts_up(np.array([math.nan if reported is None else reported]),
                                now, limit, missing_is_up)
    assert bool(column[0]) is up
    if reported is None:
        assert up is missing_is_up
    else:
        assert up is (now - reported <= limit)
        assert resources.report_age_seconds(reported, now) == now - reported


@SETTINGS
@given(optional_rate, optional_rate)
def test_node_health_is_capped_and_defaults_to_healthy(bandwidth, baseline):
    health = resources.node_health(bandwidth, baseline)
    assert 0.0 <= health <= 1.0
    if not bandwidth or not baseline:
        assert health == 1.0
    else:
        assert health == min(1.0, bandwidth / baseline)
    node = objects.NumaNode(id=0, cpus='0', bandwidth_mibps=bandwidth, baseline_mibps=baseline)
    assert node.health == health


@SETTINGS
@given(st.lists(st.tuples(optional_rate | st.just(math.nan) | st.just(math.inf),
                          optional_rate | st.just(math.inf)), min_size=1, max_size=40))
def test_node_health_column_is_the_scalar_form(nodes):
    """The scheduler's column of node healths gives node_health's doubles,
    a missing figure being NaN in a column."""
    def column(values):
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    healths = resources.nodes_health(column([b for b, _ in nodes]),
                                     column([base for _, base in nodes]))
    assert healths.tolist() == [resources.node_health(b, base) for b, base in nodes]


@SETTINGS
@given(st.lists(st.tuples(mib, mib, cpus, cpus), min_size=1, max_size=10), ratios, ratios,
       reserved, st.integers(min_value=1, max_value=65536), st.integers(1, 64))
def test_planner_capacity_uses_the_same_room(hosts, ram_ratio, cpu_ratio, held, need_mib,
                                             need_vcpus):
    conf = kvmplace.conf.new_conf()
    conf.set_override('ram_allocation_ratio', ram_ratio, group='scheduler')
    conf.set_override('cpu_allocation_ratio', cpu_ratio, group='scheduler')
    conf.set_override('reserved_host_memory_mib', held, group='scheduler')
    inv = objects.Inventory(hosts={f'h{i}': objects.Host(name=f'h{i}', memory_mib=m,
                                                         memory_used_mib=u, vcpus=c,
                                                         vcpus_used=cu)
                                   for i, (m, u, c, cu) in enumerate(hosts)},
                            instances={})
    book = capacity.Capacity(conf, inv)
    inst = objects.Instance(name='vm', host='elsewhere', memory_mib=need_mib, vcpus=need_vcpus)
    for host in inv.hosts.values():
        free_mib = resources.free_ram_mib(host.memory_mib, host.memory_used_mib, ram_ratio,
                                          held)
        free_cpu = resources.free_vcpus(host.vcpus, host.vcpus_used, cpu_ratio)
        assert book.free_mib(host) == free_mib
        assert book.free_vcpus(host) == free_cpu
        assert book.fits(inst, host.name) is (free_mib >= need_mib and free_cpu >= need_vcpus)


@SETTINGS
@given(st.none() | st.floats(min_value=0, max_value=1e6), st.floats(min_value=1, max_value=600))
def test_conductor_host_state_uses_host_is_up(reported, limit):
    now = 1e6
    inv = hoststate.build_inventory([{'name': 'h', 'state': {}, 'reported_at': reported}], [],
                                    limit, now=now)
    assert inv.hosts['h'].up is resources.host_is_up(reported, now, limit)
