"""free_ram: raw is the MiB left free after the guest lands."""
from tests.unit.builders import InventoryBuilder


def _inv():
    return (InventoryBuilder().host('src')
            .host('dst', memory_mib=16384, memory_used_mib=4096)
            .instance('vm', 'src', memory_mib=4096).build())


def test_raw_is_free_memory_after_placing(load_weigher, make_spec):
    inv = _inv()
    # 16384 - 4096 used - 4096 for the guest.
    assert load_weigher('free_ram').weigh(inv.hosts['dst'], make_spec(inv, 'vm')) == 8192


def test_raw_applies_ratio_and_reserved_memory(conf, load_weigher, make_spec):
    conf.set_override('ram_allocation_ratio', 1.5, group='scheduler')
    conf.set_override('reserved_host_memory_mib', 1024, group='scheduler')
    inv = _inv()
    # 16384 x 1.5 - 1024 reserved - 4096 used - 4096 guest.
    assert load_weigher('free_ram').weigh(inv.hosts['dst'], make_spec(inv, 'vm')) == 15360


def test_multiplier_default_and_override(conf, load_weigher):
    w = load_weigher('free_ram')
    assert w.multiplier == 1.0
    conf.set_override('free_ram_weight_multiplier', -1.0, group='scheduler')
    assert w.multiplier == -1.0
