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
vCPUs, host up) and from the request spec's memos (destination NUMA
health, widest-path rate, migration estimates), never from a plugin's own
arithmetic: every plugin sees the same numbers, per host and per column.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from kvmplace import objects
from kvmplace import resources

if TYPE_CHECKING:  # the spec builds tables; a table only reads the spec
    from kvmplace.scheduler.spec import RequestSpec


def _float(value: Optional[float]) -> float:
    return math.nan if value is None else value


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
        }

    def column(self, name: str) -> np.ndarray:
        """The named column over every host of the table."""
        col = self._columns.get(name)
        if col is None:
            hosts = self.hosts
            if name in self._derived:
                col = self._derived[name]()
            elif name in self.NUMERIC:
                if name == 'updated_at':
                    values = (_float(h.updated_at) for h in hosts)
                else:
                    values = (getattr(h, name) for h in hosts)
                col = np.fromiter(values, dtype=np.float64, count=len(hosts))
            elif name in self.FLAGS:
                col = np.fromiter((getattr(h, name) for h in hosts), dtype=bool,
                                  count=len(hosts))
            else:
                raise AttributeError(f'no host column "{name}"')
            self._columns[name] = col
        return col

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
        return np.array(self.table.spec.paths_mbps(self.hosts), dtype=np.float64)

    @property
    def dest_health(self) -> np.ndarray:
        return np.array(self.table.spec.dest_healths(self.hosts), dtype=np.float64)

    @property
    def estimates(self) -> list[objects.Estimate]:
        return self.table.spec.estimates(self.hosts)
