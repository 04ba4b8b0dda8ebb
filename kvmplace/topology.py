"""The network between hosts as a networkx graph.

Nodes are hosts and switches; edges are links with a capacity in Mbit/s.
A migration takes the *widest* path (the path whose narrowest link is the
widest), and every link on that path is shared with other migrations
crossing it at the same time, which is what the drain planner needs to know
so it never oversubscribes a link.

Without explicit links every host hangs off one switch by its own
``link_mbps`` (a star), as the inventory contract says.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterable

import networkx as nx

from kvmplace import objects

DEFAULT_SWITCH = 'switch'

LinkId = tuple[str, str]


def link_id(a: str, b: str) -> LinkId:
    """Undirected link key, independent of direction."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class Path:
    """A route: its bottleneck rate, the nodes it visits, the links it uses."""
    mbps: float
    nodes: tuple[str, ...]

    @property
    def links(self) -> tuple[LinkId, ...]:
        return tuple(link_id(a, b) for a, b in zip(self.nodes, self.nodes[1:]))


class Topology:
    """Hosts, switches and links; widest paths between hosts."""

    def __init__(self, graph: nx.Graph):
        self.graph = graph
        self._widest_cache: dict[str, tuple[dict, dict]] = {}

    @classmethod
    def from_inventory(cls, inventory: objects.Inventory) -> 'Topology':
        return cls.build(inventory.hosts.values(), inventory.links)

    @classmethod
    def build(cls, hosts: Iterable[objects.Host],
              links: Iterable[objects.Link] = ()) -> 'Topology':
        graph = nx.Graph()
        hosts = list(hosts)
        links = list(links)
        for host in hosts:
            graph.add_node(host.name, kind='host', nic_mbps=float(host.link_mbps))
        if links:
            for link in links:
                for end in (link.a, link.b):
                    if end not in graph:
                        graph.add_node(end, kind='switch')
                graph.add_edge(link.a, link.b, mbps=float(link.mbps))
        else:
            graph.add_node(DEFAULT_SWITCH, kind='switch')
            for host in hosts:
                graph.add_edge(host.name, DEFAULT_SWITCH, mbps=float(host.link_mbps))
        return cls(graph)

    def capacity_mbps(self, link: LinkId) -> float:
        return self.graph.edges[link]['mbps']

    def links(self) -> list[LinkId]:
        return [link_id(a, b) for a, b in self.graph.edges]

    def _nic(self, node: str) -> float:
        return self.graph.nodes[node].get('nic_mbps', float('inf'))

    def widest_from(self, source: str) -> tuple[dict[str, float], dict[str, str]]:
        """Widest-path rates from ``source`` to every node, plus predecessors.

        A max-min Dijkstra: O(E log V) once per source, after which each
        destination's rate is a dict lookup (the scheduler asks for
        thousands of destinations per request). Host NICs cap the ends.
        """
        cached = self._widest_cache.get(source)
        if cached is not None:
            return cached
        if source not in self.graph:
            raise KeyError(source)
        # Plain dicts, not networkx's read-only views: this loop touches
        # every node and link once, and a view lookup costs more than the
        # arithmetic.
        adj = dict(self.graph.adjacency())
        nic = {node: mbps for node, mbps in self.graph.nodes(data='nic_mbps')
               if mbps is not None}
        width: dict[str, float] = {source: nic.get(source, float('inf'))}
        pred: dict[str, str] = {}
        heap = [(-width[source], source)]
        done: set[str] = set()
        while heap:
            neg, node = heapq.heappop(heap)
            if node in done:
                continue
            done.add(node)
            here = -neg
            for nbr, attrs in adj[node].items():
                if nbr in done:
                    continue
                cand = min(here, attrs['mbps'])
                if cand > width.get(nbr, -1.0):
                    width[nbr] = cand
                    pred[nbr] = node
                    heapq.heappush(heap, (-cand, nbr))
        # The destination's own NIC caps what it can receive.
        for node, w in width.items():
            cap = nic.get(node, w)
            if cap < w:
                width[node] = cap
        result = (width, pred)
        self._widest_cache[source] = result
        return result

    def widest_path(self, source: str, dest: str) -> Path | None:
        """The widest path from source to dest, or None when unreachable."""
        if source == dest:
            return Path(self._nic(source), (source,))
        width, pred = self.widest_from(source)
        if dest not in width:
            return None
        nodes = [dest]
        while nodes[-1] != source:
            nodes.append(pred[nodes[-1]])
        return Path(width[dest], tuple(reversed(nodes)))

    def path_mbps(self, source: str, dest: str) -> float:
        """Bottleneck rate between two hosts (0 when unreachable)."""
        width, _ = self.widest_from(source)
        return width.get(dest, 0.0)
