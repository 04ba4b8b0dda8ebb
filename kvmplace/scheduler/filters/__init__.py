"""Filter plugins (namespace ``kvmplace.scheduler.filters``), one a module.

A filter answers one question about one host: may this guest go there?
It writes that answer once, per host (``host_passes``) or per column
(``passes_column``), and :class:`BaseFilter` derives the other form
(:mod:`kvmplace.scheduler.plugin`). ``reason`` is asked only for the hosts
that fail, so explaining a rejection costs nothing when hosts pass.
Filters are pure: no I/O, no libvirt, no clock other than ``spec.now``;
the numbers they compare come from the spec (free RAM, free vCPUs, host
up, path rate, destination health, estimate), never from their own
arithmetic.
"""
from __future__ import annotations

from itertools import compress
from operator import not_
from typing import Sequence

import numpy as np

from kvmplace import objects
from kvmplace.scheduler import plugin
from kvmplace.scheduler.hosts import HostColumns
from kvmplace.scheduler.spec import RequestSpec


def split(hosts: list[objects.Host], passes: Sequence[bool]
          ) -> tuple[list[objects.Host], list[objects.Host]]:
    """(hosts whose flag is true, the others), both keeping order."""
    return list(compress(hosts, passes)), list(compress(hosts, map(not_, passes)))


def as_flags(passes: Sequence[bool] | np.ndarray, count: int) -> list[bool]:
    """A column form's answer as a list of plain bools, its length checked."""
    flags = (passes.astype(bool).tolist() if isinstance(passes, np.ndarray)
             else [bool(p) for p in passes])
    if len(flags) != count:
        raise ValueError(f'a filter answered {len(flags)} times for {count} hosts')
    return flags


def as_mask(passes: Sequence[bool] | np.ndarray, count: int) -> np.ndarray:
    """A column form's answer as a bool array, its length checked: what
    :func:`as_flags` gives, without a Python bool per host when the
    answer already is an array."""
    if isinstance(passes, np.ndarray) and passes.ndim == 1:
        mask = passes.astype(bool, copy=False)
    else:
        mask = np.array(as_flags(passes, count), dtype=bool)
    if len(mask) != count:
        raise ValueError(f'a filter answered {len(mask)} times for {count} hosts')
    return mask


class BaseFilter:
    """Base of every filter: write ``host_passes`` *or* ``passes_column``,
    and ``reason``."""

    #: entry-point name, set by the loader
    name = 'base'

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        plugin.one_form(cls, BaseFilter, 'host_passes', 'passes_column')
        plugin.describe(cls)

    def __init__(self, conf):
        self.conf = conf
        #: 'host_passes' or 'passes_column': the form this filter wrote.
        self.form = plugin.written_form(self, BaseFilter, 'host_passes', 'passes_column')

    def host_passes(self, host: objects.Host, spec: RequestSpec) -> bool:
        """May the guest go to ``host``? (Derived from ``passes_column``
        when the filter wrote that.)"""
        return as_flags(self.passes_column(spec.columns([host]), spec), 1)[0]

    def passes_column(self, cols: HostColumns, spec: RequestSpec) -> Sequence[bool]:
        """May the guest go to each host of ``cols``, in order? (Derived
        from ``host_passes`` when the filter wrote that.)"""
        check = self.host_passes
        return [check(host, spec) for host in cols.hosts]

    def reason(self, host: objects.Host, spec: RequestSpec) -> str:
        """Why ``host`` failed, in words an operator understands."""
        raise NotImplementedError

    def filter_column(self, cols: HostColumns, spec: RequestSpec) -> list[bool]:
        """The column form's answer as plain bools."""
        return as_flags(self.passes_column(cols, spec), len(cols))

    def filter_mask(self, cols: HostColumns, spec: RequestSpec) -> np.ndarray:
        """The column form's answer as a bool array (what the manager uses)."""
        return as_mask(self.passes_column(cols, spec), len(cols))

    def filter_all(self, hosts: list[objects.Host], spec: RequestSpec
                   ) -> tuple[list[objects.Host], list[objects.Host]]:
        """Split hosts into (passed, failed), keeping order."""
        return split(hosts, self.filter_column(spec.columns(hosts), spec))
