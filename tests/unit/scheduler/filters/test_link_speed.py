"""link_speed: unreachable hosts and hosts behind slow paths are rejected."""
import pytest

from tests.unit.builders import InventoryBuilder


@pytest.fixture
def flt(load_filter):
    return load_filter('link_speed')


def _star(src_mbps, dst_mbps):
    return (InventoryBuilder().host('src', link_mbps=src_mbps)
            .host('dst', link_mbps=dst_mbps).instance('vm', 'src').build())


def test_slow_destination_link_fails_with_the_path_rate(flt, make_spec):
    inv = _star(10000, 100)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    assert flt.reason(inv.hosts['dst'], spec) == (
        'widest path from the source is 100 Mbit/s, below min_link_mbps 1000')


def test_path_at_the_minimum_passes(flt, make_spec):
    inv = _star(10000, 1000)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))


def test_the_source_link_limits_every_path(flt, make_spec):
    inv = _star(500, 10000)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    assert 'is 500 Mbit/s' in flt.reason(inv.hosts['dst'], spec)


def test_min_link_mbps_from_config(conf, flt, make_spec):
    conf.set_override('min_link_mbps', 0, group='scheduler')
    inv = _star(10000, 100)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))
    conf.set_override('min_link_mbps', 25000, group='scheduler')
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    assert 'min_link_mbps 25000' in flt.reason(inv.hosts['dst'], spec)


def test_unreachable_host_in_an_explicit_topology_fails(conf, flt, make_spec):
    inv = (InventoryBuilder().host('src').host('near').host('island')
           .link('src', 'tor-1', 10000).link('near', 'tor-1', 10000)
           .link('island', 'tor-2', 10000)
           .instance('vm', 'src').build())
    spec = make_spec(inv, 'vm')
    assert flt.host_passes(inv.hosts['near'], spec)
    assert not flt.host_passes(inv.hosts['island'], spec)
    assert flt.reason(inv.hosts['island'], spec) == 'no network path from the source'
    # Not even with the speed check off: no path is no path.
    conf.set_override('min_link_mbps', 0, group='scheduler')
    assert not flt.host_passes(inv.hosts['island'], make_spec(inv, 'vm'))
