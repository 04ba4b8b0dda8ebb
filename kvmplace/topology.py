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
from typing import TYPE_CHECKING, Iterable, Optional

from kvmplace import objects

if TYPE_CHECKING:
    import networkx as nx

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
    """Hosts, switches and links; widest paths between hosts.

    Built from an inventory, a topology keeps plain adjacency dicts
    (``{node: {neighbour: Mbit/s}}``) and makes the networkx graph only when
    something asks for ``graph``: the scheduler builds a topology for every
    request and needs nothing but widest-path rates, and building ten
    thousand networkx nodes and edges cost as much as the filters.
    """

    def __init__(self, graph: Optional[nx.Graph] = None):
        self._graph = graph
        #: (hosts as (name, nic Mbit/s), links as (a, b, Mbit/s)): what the
        #: graph is built from when first asked for; a snapshot, so a host
        #: changed after the build does not change the topology.
        self._parts: Optional[tuple[list[tuple[str, float]],
                                    list[tuple[str, str, float]]]] = None
        self._adj: dict[str, dict[str, float]] = {}
        self._nics: dict[str, float] = {}
        self._widest_cache: dict[str, tuple[dict, dict]] = {}
        self._widths_cache: dict[str, dict[str, float]] = {}
        self._levels: Optional[set[float]] = None
        if graph is not None:
            self._adj = {node: {nbr: attrs['mbps'] for nbr, attrs in nbrs.items()}
                         for node, nbrs in graph.adjacency()}
            self._nics = {node: mbps for node, mbps in graph.nodes(data='nic_mbps')
                          if mbps is not None}

    @classmethod
    def from_inventory(cls, inventory: objects.Inventory) -> Topology:
        return cls.build(inventory.hosts.values(), inventory.links)

    @classmethod
    def build(cls, hosts: Iterable[objects.Host],
              links: Iterable[objects.Link] = ()) -> Topology:
        """The topology of ``hosts``; a star around one switch without ``links``.

        Node and neighbour order are those networkx would give (hosts
        first, then switches as links name them; neighbours in link order),
        so widest-path ties break the same way with or without the graph.
        """
        nodes = [(host.name, float(host.link_mbps)) for host in hosts]
        links = list(links)
        if links:
            edges = [(link.a, link.b, float(link.mbps)) for link in links]
        else:
            edges = [(name, DEFAULT_SWITCH, mbps) for name, mbps in nodes]
        adj: dict[str, dict[str, float]] = {name: {} for name, _ in nodes}
        nics: dict[str, float] = dict(nodes)
        for a, b, mbps in edges:
            # Most ends are known (hosts, then switches after their first
            # link); a new one is added where it appears, a before b.
            try:
                adj[a][b] = mbps
            except KeyError:
                adj[a] = {b: mbps}
            try:
                adj[b][a] = mbps
            except KeyError:
                adj[b] = {a: mbps}
        topo = cls()
        topo._parts = (nodes, edges if links else [])
        topo._adj, topo._nics = adj, nics
        return topo

    @property
    def graph(self) -> nx.Graph:
        """The networkx graph (nodes with ``kind`` and hosts' ``nic_mbps``,
        edges with ``mbps``), built on first use."""
        if self._graph is None:
            # networkx costs 0.2 s to import; the scheduler's questions
            # (capacities, paths) are answered from the adjacency dicts.
            import networkx as nx
            assert self._parts is not None   # built by build(), or given a graph
            nodes, edges = self._parts
            graph = nx.Graph()
            for name, mbps in nodes:
                graph.add_node(name, kind='host', nic_mbps=mbps)
            if edges:
                for a, b, mbps in edges:
                    for end in (a, b):
                        if end not in graph:
                            graph.add_node(end, kind='switch')
                    graph.add_edge(a, b, mbps=mbps)
            else:
                graph.add_node(DEFAULT_SWITCH, kind='switch')
                for name, mbps in nodes:
                    graph.add_edge(name, DEFAULT_SWITCH, mbps=mbps)
            self._graph = graph
        return self._graph

    def capacity_mbps(self, link: LinkId) -> float:
        a, b = link
        try:
            return self._adj[a][b]
        except KeyError:
            raise KeyError(f'The edge {link} is not in the graph.') from None

    def links(self) -> list[LinkId]:
        return [link_id(a, b) for a, b in self.graph.edges]

    def _nic(self, node: str) -> float:
        if node not in self._adj:
            raise KeyError(node)
        return self._nics.get(node, float('inf'))

    def widest_from(self, source: str) -> tuple[dict[str, float], dict[str, str]]:
        """Widest-path rates from ``source`` to every node, plus predecessors.

        A max-min Dijkstra: O(E log V) once per source, after which each
        destination's rate is a dict lookup (the scheduler asks for
        thousands of destinations per request). Host NICs cap the ends.
        Ties between equally wide routes go to the route found first, nodes
        being visited widest first and by name among equals.
        """
        cached = self._widest_cache.get(source)
        if cached is not None:
            return cached
        adj = self._adj
        if source not in adj:
            raise KeyError(source)
        nic = self._nics
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
            for nbr, mbps in adj[node].items():
                if nbr in done:
                    continue
                cand = min(here, mbps)
                if cand > width.get(nbr, -1.0):
                    width[nbr] = cand
                    pred[nbr] = node
                    heapq.heappush(heap, (-cand, nbr))
        _cap_by_nic(width, nic)
        result = (width, pred)
        self._widest_cache[source] = result
        return result

    def widths_from(self, source: str) -> dict[str, float]:
        """Only the rates of :meth:`widest_from` (the same numbers), faster.

        What the scheduler needs for every host of every request. A widest
        path's rate is always one of the link rates (or the source NIC), so
        instead of a heap the nodes are visited from a bucket per distinct
        rate, widest bucket first: no heap entries, no tie-breaking, and no
        predecessors, which are the only thing ties could change.
        """
        cached = self._widest_cache.get(source)
        if cached is not None:
            return cached[0]
        width = self._widths_cache.get(source)
        if width is not None:
            return width
        adj = self._adj
        if source not in adj:
            raise KeyError(source)
        nic = self._nics
        start = nic.get(source, float('inf'))
        if self._levels is None:
            self._levels = {mbps for nbrs in adj.values() for mbps in nbrs.values()}
        levels = self._levels | {start}
        if any(level != level for level in levels):
            return self.widest_from(source)[0]  # NaN: no order to bucket by
        width = {source: start}
        buckets: dict[float, list[str]] = {start: [source]}
        done: set[str] = set()
        for level in sorted(levels, reverse=True):
            stack = buckets.get(level)
            while stack:
                node = stack.pop()
                if node in done:
                    continue
                done.add(node)
                for nbr, mbps in adj[node].items():
                    if nbr in done:
                        continue
                    cand = mbps if mbps < level else level
                    if cand > width.get(nbr, -1.0):
                        if len(adj[nbr]) == 1:
                            # A leaf (a host on its switch): its one route
                            # is this one, so its rate is final; no visit,
                            # and its NIC's cap is applied now.
                            cap = nic.get(nbr, cand)
                            width[nbr] = cap if cap < cand else cand
                            continue
                        width[nbr] = cand
                        bucket = buckets.get(cand)
                        if bucket is None:
                            buckets[cand] = [nbr]
                        else:
                            bucket.append(nbr)
        # Every other node reached was visited: capped as widest_from does.
        for node in done:
            w = width[node]
            cap = nic.get(node, w)
            if cap < w:
                width[node] = cap
        self._widths_cache[source] = width
        return width

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
        return self.widths_from(source).get(dest, 0.0)


def _cap_by_nic(width: dict[str, float], nic: dict[str, float]) -> None:
    """The destination's own NIC caps what it can receive."""
    for node, w in width.items():
        cap = nic.get(node, w)
        if cap < w:
            width[node] = cap
