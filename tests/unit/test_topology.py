"""Topology: star by default, explicit links with switches, widest paths."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmplace import names
from kvmplace import objects
from kvmplace import topology
from tests.unit.builders import InventoryBuilder


def _hosts(**link_mbps):
    return [objects.Host(name=name, link_mbps=mbps) for name, mbps in link_mbps.items()]


def test_star_by_default_from_each_hosts_link_mbps():
    topo = topology.Topology.build(_hosts(a=10000, b=1000, c=25000))
    assert topo.graph.nodes[topology.DEFAULT_SWITCH]['kind'] == 'switch'
    assert sorted(topo.links()) == [('a', 'switch'), ('b', 'switch'), ('c', 'switch')]
    assert topo.capacity_mbps(topology.link_id('b', 'switch')) == 1000
    # The path is as wide as its narrower end.
    assert topo.path_mbps('a', 'c') == 10000
    assert topo.path_mbps('c', 'b') == 1000
    path = topo.widest_path('a', 'c')
    assert path.nodes == ('a', 'switch', 'c')
    assert path.links == (('a', 'switch'), ('c', 'switch'))


def test_from_inventory_uses_explicit_links_and_switches():
    inv = (InventoryBuilder().host('a').host('b')
           .link('a', 'tor-1', 10000).link('tor-1', 'spine', 40000)
           .link('spine', 'tor-2', 40000).link('tor-2', 'b', 10000).build())
    topo = topology.Topology.from_inventory(inv)
    assert topology.DEFAULT_SWITCH not in topo.graph
    assert topo.graph.nodes['spine']['kind'] == 'switch'
    assert topo.graph.nodes['a']['kind'] == 'host'
    path = topo.widest_path('a', 'b')
    assert path.nodes == ('a', 'tor-1', 'spine', 'tor-2', 'b')
    assert path.links == (('a', 'tor-1'), ('spine', 'tor-1'), ('spine', 'tor-2'),
                          ('b', 'tor-2'))
    assert path.mbps == 10000


def test_widest_path_picks_the_wider_of_two_routes():
    # Via s1: 1 GbE at its narrowest but one hop shorter; via s2 and s3: 10 GbE.
    links = [objects.Link('a', 's1', 40000), objects.Link('s1', 'b', 1000),
             objects.Link('a', 's2', 10000), objects.Link('s2', 's3', 25000),
             objects.Link('s3', 'b', 40000)]
    topo = topology.Topology.build(_hosts(a=40000, b=40000), links)
    path = topo.widest_path('a', 'b')
    assert path.mbps == 10000
    assert path.nodes == ('a', 's2', 's3', 'b')
    assert topo.path_mbps('a', 'b') == 10000
    # Symmetric.
    assert topo.path_mbps('b', 'a') == 10000


def test_unreachable_host_has_no_path():
    links = [objects.Link('a', 'tor-1', 10000), objects.Link('b', 'tor-1', 10000),
             objects.Link('c', 'tor-2', 10000)]
    topo = topology.Topology.build(_hosts(a=10000, b=10000, c=10000), links)
    assert topo.path_mbps('a', 'c') == 0
    assert topo.widest_path('a', 'c') is None
    assert topo.path_mbps('a', 'b') == 10000


def test_destination_nic_caps_the_path():
    links = [objects.Link('a', 'tor', 100000), objects.Link('b', 'tor', 100000)]
    topo = topology.Topology.build(_hosts(a=100000, b=1000), links)
    assert topo.path_mbps('a', 'b') == 1000
    assert topo.widest_path('a', 'b').mbps == 1000


def test_source_nic_caps_the_path():
    links = [objects.Link('a', 'tor', 100000), objects.Link('b', 'tor', 100000)]
    topo = topology.Topology.build(_hosts(a=2500, b=100000), links)
    assert topo.path_mbps('a', 'b') == 2500


def test_unknown_source_raises_key_error():
    topo = topology.Topology.build(_hosts(a=1000))
    with pytest.raises(KeyError):
        topo.path_mbps('ghost', 'a')


def test_link_id_is_direction_free():
    assert topology.link_id('b', 'a') == topology.link_id('a', 'b') == ('a', 'b')


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2, max_value=12), st.data())
def test_widths_from_gives_the_rates_of_widest_from(n, data):
    """The bucketed walk and the heap Dijkstra agree on every node's rate,
    on meshes with equal-width alternatives, islands and NIC caps."""
    speeds = st.sampled_from([1000.0, 10000.0, 25000.0, 40000.0, 1e7])
    hosts = [objects.Host(name=f'h{i}', link_mbps=data.draw(speeds)) for i in range(n)]
    nodes = [h.name for h in hosts] + ['s0', 's1', 's2']
    links = [objects.Link(a=data.draw(st.sampled_from(nodes)),
                          b=data.draw(st.sampled_from(nodes)), mbps=data.draw(speeds))
             for _ in range(data.draw(st.integers(min_value=0, max_value=3 * n)))]
    topo = topology.Topology.build(hosts, links)
    source = data.draw(st.sampled_from([h.name for h in hosts]))
    width, _ = topology.Topology.build(hosts, links).widest_from(source)
    assert topo.widths_from(source) == width


def test_the_implicit_switch_is_the_name_hosts_may_not_take():
    # kvmplace.names reserves it so that no host can become this graph node.
    assert topology.DEFAULT_SWITCH == names.IMPLICIT_SWITCH
    assert topology.DEFAULT_SWITCH in names.RESERVED_HOST_NAMES
