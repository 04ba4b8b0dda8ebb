"""numa_health: a host needs one NUMA node at the threshold health or better."""
import pytest

from tests.unit.builders import InventoryBuilder, numa


@pytest.fixture
def flt(load_filter):
    return load_filter('numa_health')


def _check(flt, make_spec, nodes):
    inv = (InventoryBuilder().host('src').host('dst', numa=nodes)
           .instance('vm', 'src').build())
    spec = make_spec(inv, 'vm')
    host = inv.hosts['dst']
    passes = flt.host_passes(host, spec)
    return passes, (None if passes else flt.reason(host, spec))


def test_all_nodes_slow_fails_with_health_and_threshold(flt, make_spec):
    passes, reason = _check(flt, make_spec, numa(1 / 3, 0.5))
    assert not passes
    # The best node (0.5) is what counts, against the default threshold 0.6.
    assert 'runs at 50% of its baseline' in reason
    assert 'numa_health_threshold 60%' in reason


def test_one_healthy_node_is_enough(flt, make_spec):
    assert _check(flt, make_spec, numa(1 / 3, 1.0))[0]


def test_threshold_is_inclusive(flt, make_spec):
    nodes = [{'id': 0, 'cpus': '0-7', 'bandwidth_mibps': 6000, 'baseline_mibps': 10000}]
    assert _check(flt, make_spec, nodes)[0]
    nodes[0]['bandwidth_mibps'] = 5999
    assert not _check(flt, make_spec, nodes)[0]


def test_hosts_without_figures_count_as_healthy(flt, make_spec):
    assert _check(flt, make_spec, [])[0]
    assert _check(flt, make_spec, numa(None, None))[0]


def test_threshold_from_config(conf, flt, make_spec):
    conf.set_override('numa_health_threshold', 0.3, group='scheduler')
    assert _check(flt, make_spec, numa(1 / 3, 1 / 3))[0]
    conf.set_override('numa_health_threshold', 0.9, group='scheduler')
    passes, reason = _check(flt, make_spec, numa(0.85))
    assert not passes
    assert '85%' in reason and '90%' in reason
