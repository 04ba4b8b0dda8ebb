"""numa_health weigher: raw is the health of the node QEMU's main thread would get."""
import pytest

from tests.unit.builders import BASELINE_MIBPS, InventoryBuilder


def _node(node_id, health, free_mib):
    return {'id': node_id, 'cpus': f'{node_id * 8}-{node_id * 8 + 7}', 'memory_mib': 32768,
            'free_memory_mib': free_mib, 'bandwidth_mibps': health * BASELINE_MIBPS,
            'baseline_mibps': BASELINE_MIBPS}


def test_raw_is_the_healthiest_node_with_room(load_weigher, make_spec):
    w = load_weigher('numa_health')
    inv = (InventoryBuilder().host('src')
           # Node 1 is healthier but has no room for 4096 MiB: node 0 carries QEMU.
           .host('split', numa=[_node(0, 0.5, 30000), _node(1, 1.0, 1000)])
           .host('roomy', numa=[_node(0, 0.25, 30000), _node(1, 0.75, 30000)])
           .host('plain')
           .instance('vm', 'src', memory_mib=4096).build())
    spec = make_spec(inv, 'vm')
    assert w.weigh(inv.hosts['split'], spec) == pytest.approx(0.5)
    assert w.weigh(inv.hosts['roomy'], spec) == pytest.approx(0.75)
    # No NUMA figures: counts as healthy.
    assert w.weigh(inv.hosts['plain'], spec) == 1.0


def test_without_room_anywhere_the_healthiest_node_counts(load_weigher, make_spec):
    w = load_weigher('numa_health')
    inv = (InventoryBuilder().host('src')
           .host('full', numa=[_node(0, 0.5, 100), _node(1, 0.9, 100)])
           .instance('vm', 'src', memory_mib=4096).build())
    assert w.weigh(inv.hosts['full'], make_spec(inv, 'vm')) == pytest.approx(0.9)


def test_multiplier_default_and_override(conf, load_weigher):
    w = load_weigher('numa_health')
    assert w.multiplier == 1.0
    conf.set_override('numa_health_weight_multiplier', 0.0, group='scheduler')
    assert w.multiplier == 0.0
