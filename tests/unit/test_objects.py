"""objects: CPU lists, unit conversion, NUMA health, node choice, dict round trips."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmplace import objects


def test_unit_conversion():
    assert objects.MIB_PER_MBIT == pytest.approx(1e6 / 8 / 2 ** 20)
    assert objects.mbps_to_mibps(1000) == pytest.approx(119.209, abs=1e-3)
    assert objects.mibps_to_mbps(objects.mbps_to_mibps(2500)) == pytest.approx(2500)


@pytest.mark.parametrize('text,cpus', [
    ('0', (0,)), ('0-3', (0, 1, 2, 3)), ('0-1,8,10-11', (0, 1, 8, 10, 11)),
    (' 3 , 1 ', (1, 3)), ('2,2,1-2', (1, 2)),
])
def test_parse_cpu_list(text, cpus):
    assert objects.parse_cpu_list(text) == cpus


@pytest.mark.parametrize('text,problem', [
    ('', 'is empty'), ('1,,2', 'empty item'), ('3-1', 'descending range'),
    ('a', 'bad CPU id'), ('1-x', 'bad range'), ('-1', 'bad range'),
    ('0-70000', 'above 8191'),
])
def test_parse_cpu_list_errors(text, problem):
    with pytest.raises(ValueError, match=problem):
        objects.parse_cpu_list(text)


def test_parse_cpu_list_rejects_non_strings():
    with pytest.raises(ValueError):
        objects.parse_cpu_list(3)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=300), min_size=1))
def test_format_then_parse_round_trips(cpus):
    text = objects.format_cpu_list(cpus)
    assert objects.parse_cpu_list(text) == tuple(sorted(cpus))
    assert ' ' not in text


def test_format_cpu_list_compresses_runs():
    assert objects.format_cpu_list([5, 0, 1, 2, 7, 8]) == '0-2,5,7-8'


def test_health_is_measured_over_baseline_capped_at_one():
    assert objects.NumaNode(0, '0', bandwidth_mibps=9000, baseline_mibps=27000).health == \
        pytest.approx(1 / 3)
    assert objects.NumaNode(0, '0', bandwidth_mibps=30000, baseline_mibps=27000).health == 1.0
    assert objects.NumaNode(0, '0').health == 1.0
    assert objects.NumaNode(0, '0', bandwidth_mibps=9000).health == 1.0


def _host(*nodes):
    return objects.Host(name='h', numa=list(nodes))


def test_best_node_prefers_health_then_room_then_lower_id():
    slow = objects.NumaNode(0, '0', free_memory_mib=9000, bandwidth_mibps=1, baseline_mibps=3)
    fast_small = objects.NumaNode(1, '1', free_memory_mib=100)
    fast_big = objects.NumaNode(2, '2', free_memory_mib=5000)
    fast_big_too = objects.NumaNode(3, '3', free_memory_mib=5000)
    host = _host(slow, fast_small, fast_big, fast_big_too)
    assert host.best_node().id == 2                 # healthy, most free, lowest id
    assert host.best_node(need_memory_mib=6000).id == 0   # only node 0 has room
    assert host.best_node(need_memory_mib=99999).id == 2  # none has room: healthiest
    assert _host().best_node() is None
    assert host.best_health == 1.0
    assert _host(slow).best_health == pytest.approx(1 / 3)


def test_free_figures():
    host = objects.Host(name='h', vcpus=8, vcpus_used=3, memory_mib=1000, memory_used_mib=400)
    assert (host.free_vcpus(1.0), host.free_ram_mib()) == (5, 600)
    # The allocation ratio applies, as the vcpu filter applies it.
    assert host.free_vcpus(4.0) == 29
    assert host.free_ram_mib(1.5, 100) == 1000
    assert objects.Instance('i', 'h', 1024, disk_gib=2, shared_storage=False).disk_mib == 2048
    assert objects.Instance('i', 'h', 1024, disk_gib=2).disk_mib == 0


def test_host_round_trips_through_plain_dicts():
    host = objects.Host(name='h', vcpus=8, cpu_model='Haswell',
                        numa=[objects.NumaNode(0, '0-3', 100, 50, 10.0, 20.0)])
    data = host.to_dict()
    assert isinstance(data['numa'][0], dict)
    assert objects.Host.from_dict(data) == host
    assert objects.Host.from_dict(dict(data, future_field=1)) == host


def test_request_round_trips_with_its_policy():
    req = objects.MigrationRequest('vm', force_hosts=['a'],
                                   policy=objects.Policy(max_downtime_ms=100))
    back = objects.MigrationRequest.from_dict(req.to_dict())
    assert back == req
    assert isinstance(back.policy, objects.Policy)
    assert objects.MigrationRequest.from_dict({'instance': 'vm'}).policy == objects.Policy()


def test_estimate_to_dict_has_the_contract_fields():
    est = objects.Estimate(1.0, 'link', 1, 2.0, 3.0, 4.0, True,
                           pre_pin={'node': 1, 'cpus': '0-3'},
                           without_pre_pin={'bandwidth_mibps': 0.5, 'total_seconds': 6.0})
    data = est.to_dict()
    assert data['pre_pin'] == {'node': 1, 'cpus': '0-3'}
    assert data['pre_pin'] is not est.pre_pin
    assert {'bandwidth_mibps', 'bottleneck', 'rounds', 'data_mib', 'total_seconds',
            'downtime_ms', 'converges', 'pre_pin', 'without_pre_pin'} <= set(data)
    assert objects.Estimate.from_dict(data) == est


_health = st.sampled_from([None, 1.0, 0.5, 0.3333333, 0.3333335, 0.33333349, 0.9999996,
                           0.9999984, 2.0]) | st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_health, st.sampled_from([0, 1024, 4096, 8192])), max_size=5),
       st.sampled_from([0, 2048, 4096, 16384]))
def test_best_node_is_max_by_rounded_health_then_free_memory_then_lower_id(nodes, need):
    """Host.best_node's shortcut (no round() when one node is clearly
    healthiest) picks what max() over the documented key picks."""
    from tests.unit.scheduler.reference import best_node
    host = objects.Host(name='h', numa=[
        objects.NumaNode(id=i, cpus=str(i), free_memory_mib=free,
                         bandwidth_mibps=None if h is None else h * 20000.0,
                         baseline_mibps=None if h is None else 20000.0)
        for i, (h, free) in enumerate(nodes)])
    best = best_node(host, need)
    assert host.best_node(need) is best
    assert host.best_node_health(need) == (best.health if best is not None else 1.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(_health, st.sampled_from([0, 1024, 4096, 8192])),
                         max_size=4), min_size=32, max_size=90),
       st.sampled_from([0, 2048, 4096, 16384]))
def test_best_node_health_column_is_the_per_host_form(hosts, need):
    """The scheduler's column of destination healths (one numpy pass over
    every node, near-ties left to Host.best_node_health) is the per-host
    answer, host by host, on columns long enough to take the numpy path."""
    from kvmplace.scheduler.hosts import best_node_healths
    built = [objects.Host(name=f'h{j}', numa=[
        objects.NumaNode(id=i, cpus=str(i), free_memory_mib=free,
                         bandwidth_mibps=None if h is None else h * 20000.0,
                         baseline_mibps=None if h is None else 20000.0)
        for i, (h, free) in enumerate(nodes)]) for j, nodes in enumerate(hosts)]
    column = best_node_healths(built, need)
    assert column.tolist() == [host.best_node_health(need) for host in built]


def test_estimate_dicts_are_to_dict_and_each_a_fresh_dict():
    pinned = objects.Estimate(1.0, 'link', 1, 2.0, 3.0, 4.0, True,
                              pre_pin={'node': 1, 'cpus': '0-3'},
                              without_pre_pin={'bandwidth_mibps': 0.5, 'total_seconds': 6.0})
    plain = objects.Estimate(2.0, 'stream', 2, 3.0, 4.0, 5.0, False)
    estimates = [pinned, plain, pinned, plain, pinned]
    dicts = objects.estimate_dicts(estimates)
    assert dicts == [e.to_dict() for e in estimates]
    assert len({id(d) for d in dicts}) == len(dicts)
    assert len({id(d['pre_pin']) for d in dicts if d['pre_pin']}) == 3
    assert len({id(d['without_pre_pin']) for d in dicts if d['without_pre_pin']}) == 3
    dicts[0]['pre_pin']['node'] = 7
    assert dicts[2]['pre_pin']['node'] == 1 and pinned.pre_pin == {'node': 1, 'cpus': '0-3'}
