"""migration_time: raw is the estimate's total seconds; faster wins by default."""
import pytest

from kvmplace import objects
from tests.unit.builders import InventoryBuilder


def test_raw_is_predicted_seconds(load_weigher, make_spec):
    w = load_weigher('migration_time')
    # A guest that dirties nothing takes one pass: memory / bandwidth.
    inv = (InventoryBuilder().host('src').host('fast', link_mbps=10000)
           .host('slow', link_mbps=1000)
           .instance('vm', 'src', memory_mib=3000, dirty_rate_mibps=0).build())
    spec = make_spec(inv, 'vm')
    # 10 GbE: min(10000 x 0.1192 x 0.6 = 715, stream 300) = 300 MiB/s.
    assert w.weigh(inv.hosts['fast'], spec) == pytest.approx(3000 / 300, abs=1e-3)
    # 1 GbE: 1000 Mbit/s x 1e6 / 8 / 2^20 x 0.6 = 71.53 MiB/s.
    link_mibps = 1000 * 1e6 / 8 / 2 ** 20 * 0.6
    assert w.weigh(inv.hosts['slow'], spec) == pytest.approx(3000 / link_mibps, abs=1e-2)
    assert w.weigh(inv.hosts['slow'], spec) == spec.estimate(inv.hosts['slow']).total_seconds


def test_raw_follows_the_request_policy(load_weigher, make_spec):
    w = load_weigher('migration_time')
    inv = (InventoryBuilder().host('src').host('dst')
           .instance('vm', 'src', memory_mib=3000).build())
    spec = make_spec(inv, 'vm', policy=objects.Policy(bandwidth_cap_mibps=50))
    assert w.weigh(inv.hosts['dst'], spec) == pytest.approx(3000 / 50, abs=1e-3)


def test_multiplier_defaults_to_minus_one_and_follows_config(conf, load_weigher):
    w = load_weigher('migration_time')
    assert w.multiplier == -1.0
    conf.set_override('migration_time_weight_multiplier', -2.5, group='scheduler')
    assert w.multiplier == -2.5
