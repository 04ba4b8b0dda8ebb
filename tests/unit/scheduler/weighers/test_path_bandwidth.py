"""path_bandwidth: raw is the widest-path Mbit/s from the source."""
from tests.unit.builders import InventoryBuilder


def test_raw_is_the_star_path_rate(load_weigher, make_spec):
    w = load_weigher('path_bandwidth')
    inv = (InventoryBuilder().host('src', link_mbps=25000).host('wide', link_mbps=10000)
           .host('narrow', link_mbps=1000).instance('vm', 'src').build())
    spec = make_spec(inv, 'vm')
    assert w.weigh(inv.hosts['wide'], spec) == 10000
    assert w.weigh(inv.hosts['narrow'], spec) == 1000


def test_raw_takes_the_wider_route_and_zero_when_unreachable(load_weigher, make_spec):
    w = load_weigher('path_bandwidth')
    # src -> dst via spine-a is 1 GbE at its narrowest, via spine-b 10 GbE.
    inv = (InventoryBuilder().host('src', link_mbps=40000).host('dst', link_mbps=40000)
           .host('alone')
           .link('src', 'spine-a', 40000).link('spine-a', 'dst', 1000)
           .link('src', 'spine-b', 10000).link('spine-b', 'dst', 40000)
           .link('alone', 'spine-c', 10000)
           .instance('vm', 'src').build())
    spec = make_spec(inv, 'vm')
    assert w.weigh(inv.hosts['dst'], spec) == 10000
    assert w.weigh(inv.hosts['alone'], spec) == 0


def test_multiplier_default_and_override(conf, load_weigher):
    w = load_weigher('path_bandwidth')
    assert w.multiplier == 0.5
    conf.set_override('path_bandwidth_weight_multiplier', 4.0, group='scheduler')
    assert w.multiplier == 4.0
