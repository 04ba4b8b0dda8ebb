"""SchedulerManager: plugin loading, central normalization, ranking, result shape."""
import json
import math
import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvmplace import estimator
from kvmplace import objects
from kvmplace.conf import scheduler as scheduler_opts
from kvmplace.exception import ConfigError, InvalidInput, NotFound
from kvmplace.scheduler import filters as filters_pkg
from kvmplace.scheduler import manager
from kvmplace.scheduler import weighers as weighers_pkg
from tests.unit.builders import InventoryBuilder
from tests.unit.conftest import NOW

ESTIMATE_KEYS = {'bandwidth_mibps', 'bottleneck', 'rounds', 'data_mib', 'total_seconds',
                 'downtime_ms', 'converges', 'pre_pin', 'without_pre_pin'}


def _select(conf, inv, instance='vm', **request):
    sched = manager.SchedulerManager(conf)
    return sched.select(inv, objects.MigrationRequest(instance=instance, **request), now=NOW)


# --- normalize ---------------------------------------------------------------

def test_normalize_min_max():
    assert manager.normalize([1.0, 2.0, 3.0]) == [0.0, 0.5, 1.0]
    assert manager.normalize([30.0, 10.0]) == [1.0, 0.0]
    assert manager.normalize([-4.0, 0.0, 4.0]) == [0.0, 0.5, 1.0]


def test_normalize_all_equal_is_zero_like_nova():
    assert manager.normalize([7.0, 7.0, 7.0]) == [0.0, 0.0, 0.0]
    assert manager.normalize([5.0]) == [0.0]
    assert manager.normalize([]) == []


def test_normalize_non_finite_values_never_give_nan():
    inf, nan = math.inf, math.nan
    assert manager.normalize([1.0, nan, 3.0]) == [0.0, 0.0, 1.0]
    assert manager.normalize([nan, 1.0, 3.0]) == [0.0, 0.0, 1.0]
    # A never-ending migration (inf seconds) is the top of the range ...
    assert manager.normalize([10.0, inf, 20.0]) == [0.0, 1.0, 1.0]
    assert manager.normalize([10.0, 10.0, inf]) == [0.0, 0.0, 1.0]
    assert manager.normalize([-inf, 5.0, 7.0]) == [0.0, 0.0, 1.0]
    # ... and all-equal is still all-equal.
    assert manager.normalize([inf, inf]) == [0.0, 0.0]


# Raw values are physical quantities (seconds, Mbit/s, MiB, health); bounded
# so that max - min cannot overflow to inf, plus the non-finite specials.
_raw = st.floats(min_value=-1e15, max_value=1e15) | st.sampled_from(
    [math.inf, -math.inf, math.nan])


def _bits(values):
    return [struct.pack('<d', v) for v in values]


@settings(max_examples=300, deadline=None)
@given(st.lists(_raw | st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324]), max_size=60))
@example([0.0, -0.0, 1.0])
@example([-0.0, 0.0, 1.0])
@example([-1.0, 0.0, -0.0])
@example([2.0, -0.0, 0.0, 2.0])
def test_normalize_column_is_normalize_bit_for_bit(values):
    """The ranking's column form gives the same doubles, signed zeros too."""
    out = manager.normalize_column(np.array(values, dtype=np.float64))
    assert out.dtype == np.float64
    assert _bits(out.tolist()) == _bits(manager.normalize(values))


def test_as_column_refuses_a_wrong_count_like_as_floats():
    assert manager.as_column([1, 2.5], 2).tolist() == [1.0, 2.5]
    with pytest.raises(ValueError, match='answered 1 times for 2 hosts'):
        manager.as_column([1.0], 2)
    with pytest.raises(ValueError, match='for 2 hosts'):
        manager.as_column([[1.0], [2.0]], 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(_raw, min_size=1, max_size=20))
def test_normalize_properties(values):
    out = manager.normalize(values)
    assert len(out) == len(values)
    assert all(0.0 <= x <= 1.0 for x in out)
    finite = [(v, x) for v, x in zip(values, out) if math.isfinite(v)]
    # Order-preserving on the finite values, min -> 0 and max -> 1 unless all equal.
    for (v1, x1) in finite:
        for (v2, x2) in finite:
            if v1 <= v2:
                assert x1 <= x2
    if finite and min(v for v, _ in finite) < max(v for v, _ in finite):
        assert min(x for _, x in finite) == 0.0
        assert max(x for _, x in finite) == 1.0


def test_unreachable_host_without_link_filter_ranks_last_with_a_finite_weight(conf):
    # Without link_speed, a host with no path gets an infinite migration time.
    conf.set_override('enabled_filters', ['not_source'], group='scheduler')
    inv = (InventoryBuilder().host('src').host('dst').host('island')
           .link('src', 'tor', 10000).link('dst', 'tor', 10000)
           .link('island', 'tor-2', 10000).instance('vm', 'src').build())
    ranked = _select(conf, inv)['ranked']
    assert [r['host'] for r in ranked] == ['dst', 'island']
    assert ranked[1]['weighers']['migration_time']['normalized'] == 1.0
    assert all(math.isfinite(r['weight']) for r in ranked)


# --- plugin loading ----------------------------------------------------------

def test_default_config_loads_every_plugin_in_order(conf):
    sched = manager.SchedulerManager(conf)
    assert [f.name for f in sched.filters] == scheduler_opts.DEFAULT_FILTERS
    assert [w.name for w in sched.weighers] == scheduler_opts.DEFAULT_WEIGHERS
    assert all(isinstance(f, filters_pkg.BaseFilter) for f in sched.filters)
    assert all(isinstance(w, weighers_pkg.BaseWeigher) for w in sched.weighers)


def test_plugins_load_in_the_configured_order(conf):
    conf.set_override('enabled_filters', ['vcpu', 'ram', 'enabled'], group='scheduler')
    conf.set_override('enabled_weighers', ['free_ram', 'migration_time'], group='scheduler')
    sched = manager.SchedulerManager(conf)
    assert [f.name for f in sched.filters] == ['vcpu', 'ram', 'enabled']
    assert [type(f).__name__ for f in sched.filters] == ['VcpuFilter', 'RamFilter',
                                                         'EnabledFilter']
    assert [w.name for w in sched.weighers] == ['free_ram', 'migration_time']


@pytest.mark.parametrize('option,names,missing', [
    ('enabled_filters', ['ram', 'no_such_filter'], 'no_such_filter'),
    ('enabled_weighers', ['free_ram', 'no_such_weigher'], 'no_such_weigher'),
])
def test_missing_plugin_is_a_config_error_naming_it(conf, option, names, missing):
    conf.set_override(option, names, group='scheduler')
    with pytest.raises(ConfigError, match=f'"{missing}" is not installed'):
        manager.SchedulerManager(conf)


def test_duplicate_plugin_names_are_rejected(conf):
    conf.set_override('enabled_filters', ['ram', 'vcpu', 'ram'], group='scheduler')
    with pytest.raises(ConfigError, match='ram enabled twice'):
        manager.SchedulerManager(conf)
    with pytest.raises(ConfigError, match='free_ram enabled twice'):
        manager.load_plugins(manager.WEIGHER_NAMESPACE, ['free_ram', 'free_ram'], conf)


# --- result shape ------------------------------------------------------------

def test_select_result_has_exactly_the_contract_shape(conf):
    inv = (InventoryBuilder().host('src').host('dst1').host('dst2', link_mbps=1000)
           .host('down', enabled=False).instance('vm', 'src', dirty_rate_mibps=10).build())
    result = _select(conf, inv)
    json.dumps(result)  # plain data only
    assert set(result) == {'instance', 'source', 'ranked', 'rejected'}
    assert result['instance'] == 'vm'
    assert result['source'] == 'src'
    assert [r['host'] for r in result['ranked']] == ['dst1', 'dst2']
    for row in result['ranked']:
        assert set(row) == {'host', 'weight', 'weighers', 'estimate'}
        assert list(row['weighers']) == scheduler_opts.DEFAULT_WEIGHERS
        for part in row['weighers'].values():
            assert set(part) == {'raw', 'normalized', 'multiplier'}
        assert ESTIMATE_KEYS <= set(row['estimate'])
        assert row['estimate']['bottleneck'] in estimator.BOTTLENECKS
    # In filter order: enabled runs before not_source.
    assert result['rejected'] == [
        {'host': 'down', 'filter': 'enabled', 'reason': 'host is disabled'},
        {'host': 'src', 'filter': 'not_source', 'reason': 'host is the source'},
    ]


def test_ranked_estimate_is_the_model_estimate(conf):
    inv = (InventoryBuilder().host('src').host('dst', link_mbps=1000)
           .instance('vm', 'src', memory_mib=8192, dirty_rate_mibps=30).build())
    row, = _select(conf, inv)['ranked']
    expected = estimator.estimate(inv.instances['vm'], inv.hosts['src'], inv.hosts['dst'],
                                  1000, estimator.ModelParams())
    assert row['estimate'] == expected.to_dict()


# --- weighing ----------------------------------------------------------------

def _three_hosts():
    # free RAM after the 4096 MiB guest: a 95904, b 45904, c 70904
    # path: a 1000, b 10000, c 10000 Mbit/s
    return (InventoryBuilder().host('src')
            .host('a', link_mbps=1000, memory_used_mib=31072)
            .host('b', memory_used_mib=81072)
            .host('c', memory_used_mib=56072)
            .instance('vm', 'src', memory_mib=4096).build())


def _weights(result):
    return [(r['host'], r['weight']) for r in result['ranked']]


def test_weights_are_normalized_then_multiplied_and_summed(conf):
    conf.set_override('enabled_filters', ['not_source'], group='scheduler')
    conf.set_override('enabled_weighers', ['free_ram', 'path_bandwidth'], group='scheduler')
    result = _select(conf, _three_hosts())
    rows = {r['host']: r['weighers'] for r in result['ranked']}
    assert rows['a']['free_ram'] == {'raw': 95904.0, 'normalized': 1.0, 'multiplier': 1.0}
    assert rows['b']['free_ram'] == {'raw': 45904.0, 'normalized': 0.0, 'multiplier': 1.0}
    assert rows['c']['free_ram'] == {'raw': 70904.0, 'normalized': 0.5, 'multiplier': 1.0}
    assert rows['a']['path_bandwidth'] == {'raw': 1000.0, 'normalized': 0.0,
                                           'multiplier': 0.5}
    assert rows['c']['path_bandwidth']['normalized'] == 1.0
    # a = 1 x 1 + 0.5 x 0 = 1.0; c = 1 x 0.5 + 0.5 x 1 = 1.0; b = 0 + 0.5 = 0.5.
    # a and c tie: the tie goes to the host name.
    assert _weights(result) == [('a', 1.0), ('c', 1.0), ('b', 0.5)]


def test_multipliers_come_from_config(conf):
    conf.set_override('enabled_filters', ['not_source'], group='scheduler')
    conf.set_override('enabled_weighers', ['free_ram', 'path_bandwidth'], group='scheduler')
    conf.set_override('path_bandwidth_weight_multiplier', 3.0, group='scheduler')
    result = _select(conf, _three_hosts())
    # a = 1 + 0 = 1; b = 0 + 3 = 3; c = 0.5 + 3 = 3.5.
    assert _weights(result) == [('c', 3.5), ('b', 3.0), ('a', 1.0)]
    assert result['ranked'][0]['weighers']['path_bandwidth']['multiplier'] == 3.0
    conf.set_override('free_ram_weight_multiplier', -2.0, group='scheduler')
    # a = -2 + 0 = -2; b = 0 + 3 = 3; c = -1 + 3 = 2.
    assert _weights(_select(conf, _three_hosts())) == [('b', 3.0), ('c', 2.0), ('a', -2.0)]


def test_all_equal_hosts_weigh_zero_and_rank_by_name(conf):
    inv = (InventoryBuilder().host('src').host('zeta').host('alpha').host('mid')
           .instance('vm', 'src').build())
    result = _select(conf, inv)
    assert _weights(result) == [('alpha', 0.0), ('mid', 0.0), ('zeta', 0.0)]
    for row in result['ranked']:
        assert all(w['normalized'] == 0.0 for w in row['weighers'].values())


def test_negative_multiplier_prefers_the_faster_migration(conf):
    conf.set_override('enabled_weighers', ['migration_time'], group='scheduler')
    conf.set_override('min_link_mbps', 0, group='scheduler')
    inv = (InventoryBuilder().host('src').host('a-slow', link_mbps=1000)
           .host('b-fast').instance('vm', 'src', memory_mib=8192).build())
    result = _select(conf, inv)
    assert _weights(result) == [('b-fast', 0.0), ('a-slow', -1.0)]
    slow = result['ranked'][1]
    assert slow['weighers']['migration_time']['raw'] > \
        result['ranked'][0]['weighers']['migration_time']['raw']


# --- filtering in the manager ------------------------------------------------

def test_first_rejecting_filter_is_reported_once(conf):
    inv = (InventoryBuilder().host('src')
           .host('x', maintenance=True, memory_mib=2048)
           .instance('vm', 'src', memory_mib=4096).build())
    rejected = {r['host']: r for r in _select(conf, inv)['rejected']}
    assert rejected['x']['filter'] == 'maintenance'
    conf.set_override('enabled_filters', ['ram', 'maintenance'], group='scheduler')
    rejected = [r for r in _select(conf, inv)['rejected'] if r['host'] == 'x']
    assert len(rejected) == 1
    assert rejected[0]['filter'] == 'ram'
    assert 'needs 4096 MiB' in rejected[0]['reason']


def test_every_host_is_either_ranked_or_rejected(conf, sample_inventory):
    result = _select(conf, sample_inventory, instance='vm1')
    names = [r['host'] for r in result['ranked']] + [r['host'] for r in result['rejected']]
    assert sorted(names) == sorted(sample_inventory.hosts)


def test_force_and_ignore_hosts(conf):
    inv = (InventoryBuilder().host('src').host('a').host('b').host('c')
           .instance('vm', 'src').build())
    result = _select(conf, inv, force_hosts=['a', 'b'], ignore_hosts=['b'])
    assert [r['host'] for r in result['ranked']] == ['a']
    by_host = {r['host']: r for r in result['rejected']}
    assert by_host['c']['filter'] == 'force_hosts'
    assert by_host['src']['filter'] == 'force_hosts'
    assert by_host['b']['filter'] == 'ignore_hosts'


def test_no_valid_host_gives_empty_ranking(conf):
    inv = (InventoryBuilder().host('src').host('tiny', memory_mib=1024)
           .instance('vm', 'src', memory_mib=4096).build())
    result = _select(conf, inv)
    assert result['ranked'] == []
    assert {r['host'] for r in result['rejected']} == {'src', 'tiny'}


def test_unknown_names_are_not_found(conf):
    inv = InventoryBuilder().host('src').host('dst').instance('vm', 'src').build()
    with pytest.raises(NotFound, match='unknown instance "nope"'):
        _select(conf, inv, instance='nope')
    with pytest.raises(NotFound, match='unknown host "ghost"'):
        _select(conf, inv, force_hosts=['ghost'])


# --- estimate ----------------------------------------------------------------

def test_estimate_errors(conf):
    inv = (InventoryBuilder().host('src').host('dst').host('island')
           .link('src', 'tor', 10000).link('dst', 'tor', 10000)
           .link('island', 'tor-2', 10000)
           .instance('vm', 'src').build())
    sched = manager.SchedulerManager(conf)
    assert sched.estimate(inv, 'vm', 'dst').bottleneck == 'stream'
    with pytest.raises(NotFound, match='unknown host "ghost"'):
        sched.estimate(inv, 'vm', 'ghost')
    with pytest.raises(NotFound, match='unknown instance'):
        sched.estimate(inv, 'ghost', 'dst')
    with pytest.raises(InvalidInput, match='already the instance'):
        sched.estimate(inv, 'vm', 'src')
    with pytest.raises(InvalidInput, match='no network path'):
        sched.estimate(inv, 'vm', 'island')


def test_estimate_applies_the_policy(conf):
    inv = InventoryBuilder().host('src').host('dst').instance('vm', 'src').build()
    est = manager.SchedulerManager(conf).estimate(
        inv, 'vm', 'dst', policy=objects.Policy(bandwidth_cap_mibps=42))
    assert (est.bandwidth_mibps, est.bottleneck) == (42, 'cap')
