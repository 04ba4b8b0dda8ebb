"""The candidate hosts of one request as columns, for plugins' column forms.

A plugin may decide one host at a time (``host_passes``, ``weigh``) or a
whole column at once (``passes_column``, ``weigh_column``): at ten thousand
hosts a numpy comparison over a column costs what a few hosts cost one by
one. :class:`HostTable` holds every candidate of a request and builds each
column the first time a plugin asks for it, over all candidates; the view a
plugin gets (:class:`HostColumns`) is that column at the surviving hosts'
positions, so the RAM filter and the free-RAM weigher read one free-RAM
column, computed once per request.

Derived quantities come from :mod:`kvmplace.resources` (free RAM, free
vCPUs, host up, NUMA node health) and from the request spec (widest-path
rate, migration estimates), never from a plugin's own arithmetic: every
plugin sees the same numbers, per host and per column. The costly ones
(destination health, estimates) are computed only for the hosts a plugin
asks about, each host once per request, and kept as a column: the NUMA
health filter, the convergence filter and two weighers read them in turn
at ten thousand hosts, and each read after the first is one numpy index.
"""
from __future__ import annotations

import math
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from kvmplace import objects
from kvmplace import resources

if TYPE_CHECKING:  # the spec builds tables; a table only reads the spec
    from kvmplace.scheduler.spec import RequestSpec


def best_node_healths(hosts: Sequence[objects.Host], need_memory_mib: int) -> np.ndarray:
    """``[h.best_node_health(need_memory_mib) for h in hosts]`` as a column.

    The usual case, as :meth:`objects.Host.best_node_health` decides it
    first: among the nodes with room, one more than 2e-6 healthier than
    every other (or a lone one) gives its health. Here every host's nodes
    are one row of a grid (no room: -inf) sorted once, so the healthiest
    and the runner-up are its last two columns. Every other host (a
    near-tie, no node with room) asks ``best_node_health`` itself, as do
    short columns, where numpy's set-up costs more than it saves.
    """
    if len(hosts) < _SHORT:
        return np.array([h.best_node_health(need_memory_mib) for h in hosts], dtype=np.float64)
    counts = np.fromiter(map(len, map(_numa, hosts)), dtype=np.intp, count=len(hosts))
    out = np.ones(len(hosts), dtype=np.float64)      # no NUMA figures: 1.0
    width = int(counts.max())
    if width == 0:
        return out
    nodes = [n for h in hosts for n in h.numa]
    free = np.array([n.free_memory_mib for n in nodes], dtype=np.float64)
    health = resources.nodes_health(
        np.array([n.bandwidth_mibps for n in nodes], dtype=np.float64),
        np.array([n.baseline_mibps for n in nodes], dtype=np.float64))
    grid = np.full((len(hosts), max(2, width)), -math.inf)
    rows = np.repeat(np.arange(len(hosts)), counts)
    starts = np.cumsum(counts) - counts
    grid[rows, np.arange(len(nodes)) - starts[rows]] = np.where(
        free >= need_memory_mib, health, -math.inf)
    grid.sort(axis=1)
    top, second = grid[:, -1], grid[:, -2]
    with np.errstate(invalid='ignore'):
        clear = (top > -math.inf) & (top - second > 2e-6)
    out[clear] = top[clear]
    for i in np.flatnonzero(~clear & (counts > 0)).tolist():
        out[i] = hosts[i].best_node_health(need_memory_mib)
    return out


_numa = attrgetter('numa')
#: Below this many hosts a column is built host by host.
_SHORT = 32


class HostTable:
    """Every candidate host of one request and its columns, each built once."""

    #: Host fields offered as float64 columns (None becomes NaN).
    NUMERIC = ('memory_mib', 'memory_used_mib', 'vcpus', 'vcpus_used', 'link_mbps',
               'updated_at')
    #: Host fields offered as bool columns.
    FLAGS = ('enabled', 'maintenance', 'up')

    def __init__(self, spec: RequestSpec, hosts: Sequence[objects.Host]):
        self.spec = spec
        self.hosts = list(hosts)
        self._columns: dict[str, np.ndarray] = {}
        self._position: Optional[dict[str, int]] = None
        self._derived: dict[str, Callable[[], np.ndarray]] = {
            'free_ram_mib': self._free_ram_mib,
            'free_vcpus': self._free_vcpus,
            'reported_up': self._reported_up,
            'path_mbps': self._path_mbps,
        }
        #: Columns filled only at the hosts asked about: name -> (values,
        #: which positions hold one).
        self._partial: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def column(self, name: str) -> np.ndarray:
        """The named column over every host of the table."""
        col = self._columns.get(name)
        if col is None:
            hosts = self.hosts
            if name in self._derived:
                col = self._derived[name]()
            elif name in self.NUMERIC:
                # np.array, not fromiter: None (no report time) becomes NaN
                col = np.array(list(map(attrgetter(name), hosts)), dtype=np.float64)
            elif name in self.FLAGS:
                col = np.fromiter(map(attrgetter(name), hosts), dtype=bool,
                                  count=len(hosts))
            else:
                raise AttributeError(f'no host column "{name}"')
            self._columns[name] = col
        return col

    def at(self, name: str, index: Optional[np.ndarray]) -> np.ndarray:
        """The costly column ``name`` (``dest_health``, ``estimates``) at
        ``index`` (all hosts when None), computed at the positions that
        have no value yet."""
        partial = self._partial.get(name)
        if partial is None:
            values = np.empty(len(self.hosts), dtype=object if name == 'estimates'
                              else np.float64)
            partial = self._partial[name] = (values, np.zeros(len(self.hosts), dtype=bool))
        values, known = partial
        if index is None:
            missing = np.flatnonzero(~known)
        else:
            missing = index[~known[index]]
        if len(missing):
            hosts = self.hosts
            wanted = [hosts[i] for i in missing.tolist()]
            if name == 'dest_health':
                values[missing] = self.spec.fill_dest_healths(wanted)
            elif name == 'estimates':
                values[missing] = self.spec.fill_estimates(
                    wanted, self.at('dest_health', missing).tolist(),
                    self.column('path_mbps')[missing].tolist())
            else:
                raise AttributeError(f'no host column "{name}"')
            known[missing] = True
        return values if index is None else values[index]

    def positions(self, hosts: Sequence[objects.Host]) -> Optional[np.ndarray]:
        """Where ``hosts`` sit in this table; None when one is not here."""
        if self._position is None:
            self._position = {h.name: i for i, h in enumerate(self.hosts)}
        where = self._position
        out = []
        for host in hosts:
            i = where.get(host.name)
            if i is None or self.hosts[i] is not host:
                return None
            out.append(i)
        return np.array(out, dtype=np.intp)

    def view(self, index: Optional[np.ndarray] = None,
             hosts: Optional[list[objects.Host]] = None) -> HostColumns:
        """The hosts at ``index`` (all when None), as columns."""
        if hosts is None:
            hosts = self.hosts if index is None else [self.hosts[i] for i in index.tolist()]
        return HostColumns(self, index, hosts)

    # -- derived columns: kvmplace.resources over whole columns --------------
    def _free_ram_mib(self) -> np.ndarray:
        s = self.spec.options
        return resources.free_ram_mib(self.column('memory_mib'), self.column('memory_used_mib'),
                                      s.ram_allocation_ratio, s.reserved_host_memory_mib)

    def _free_vcpus(self) -> np.ndarray:
        return resources.free_vcpus(self.column('vcpus'), self.column('vcpus_used'),
                                    self.spec.options.cpu_allocation_ratio)

    def _reported_up(self) -> np.ndarray:
        return resources.hosts_up(self.column('updated_at'), self.spec.now,
                                  self.spec.options.host_down_seconds, missing_is_up=True)

    def _path_mbps(self) -> np.ndarray:
        return np.array(self.spec.paths_mbps(self.hosts), dtype=np.float64)


class HostColumns:
    """Some hosts of a :class:`HostTable` (the survivors so far), as columns.

    Raw host fields (``memory_mib``, ``enabled``, ...) and derived ones
    (``free_ram_mib``, ``free_vcpus``, ``up``) are numpy arrays;
    ``path_mbps``, ``dest_health`` and ``estimates`` come from the spec's
    per-request memos. ``hosts`` and ``names`` are plain lists.
    """

    def __init__(self, table: HostTable, index: Optional[np.ndarray],
                 hosts: list[objects.Host]):
        self.table = table
        self.index = index
        self.hosts = hosts

    def __len__(self) -> int:
        return len(self.hosts)

    def column(self, name: str) -> np.ndarray:
        """The table's column ``name`` at these hosts."""
        full = self.table.column(name)
        return full if self.index is None else full[self.index]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes: the host columns.
        if name in HostTable.NUMERIC or name in HostTable.FLAGS or name in (
                'free_ram_mib', 'free_vcpus', 'reported_up'):
            return self.column(name)
        raise AttributeError(name)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def values(self, field: str) -> list[Any]:
        """Any host field as a plain list (strings, None, nested data)."""
        return [getattr(h, field) for h in self.hosts]

    @property
    def up(self) -> np.ndarray:
        """The host says it is up and its last report is fresh enough."""
        return self.column('up') & self.column('reported_up')

    @property
    def path_mbps(self) -> np.ndarray:
        return self.column('path_mbps')

    @property
    def dest_health(self) -> np.ndarray:
        return self.table.at('dest_health', self.index)

    @property
    def estimates(self) -> list[objects.Estimate]:
        return self.table.at('estimates', self.index).tolist()
