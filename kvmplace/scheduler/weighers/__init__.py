"""Weigher plugins (namespace ``kvmplace.scheduler.weighers``), one a module.

A weigher returns a *raw* number per host in its natural unit (seconds,
Mbit/s, MiB, health), written once, per host (``weigh``) or per column
(``weigh_column``); :class:`BaseWeigher` derives the other form
(:mod:`kvmplace.scheduler.plugin`). The manager min-max normalizes each
weigher's values to 0..1 across the candidates and multiplies by the
weigher's configured multiplier, in one place (Nova's semantics), so a
weigher never has to know about the others' scales. Higher final weight
wins.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from oslo_config import cfg

from kvmplace import objects
from kvmplace.exception import ConfigError
from kvmplace.scheduler import plugin
from kvmplace.scheduler.hosts import HostColumns
from kvmplace.scheduler.spec import RequestSpec


def as_floats(values: Sequence[float] | np.ndarray, count: int) -> list[float]:
    """A column form's answer as a list of Python floats, its length checked."""
    out = np.asarray(values, dtype=np.float64).tolist()
    if len(out) != count:
        raise ValueError(f'a weigher answered {len(out)} times for {count} hosts')
    return out


class BaseWeigher:
    """Base of every weigher: write ``weigh`` *or* ``weigh_column``, and
    name the option that holds the multiplier."""

    #: entry-point name, set by the loader
    name = 'base'
    #: option group and option holding this weigher's multiplier: any
    #: registered group, so a third-party weigher keeps its options in its
    #: own group (register it before the scheduler loads the weigher).
    multiplier_group = 'scheduler'
    multiplier_name = ''

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        plugin.one_form(cls, BaseWeigher, 'weigh', 'weigh_column')
        plugin.describe(cls)

    def __init__(self, conf):
        self.conf = conf
        self.form = plugin.written_form(self, BaseWeigher, 'weigh', 'weigh_column')
        self.multiplier  # noqa: B018 - a missing option stops start-up, not a request

    @property
    def multiplier(self) -> float:
        """The configured multiplier, read from ``[multiplier_group]
        multiplier_name``."""
        group, option = self.multiplier_group, self.multiplier_name
        if not option:
            raise ConfigError(f'weigher {type(self).__name__} names no multiplier_name')
        try:
            return float(getattr(getattr(self.conf, group), option))
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError, AttributeError):
            raise ConfigError(f'weigher {type(self).__name__}: no option [{group}] '
                              f'{option} is registered for its multiplier') from None

    def weigh(self, host: objects.Host, spec: RequestSpec) -> float:
        """The raw weight of ``host``. (Derived from ``weigh_column`` when
        the weigher wrote that.)"""
        return as_floats(self.weigh_column(spec.columns([host]), spec), 1)[0]

    def weigh_column(self, cols: HostColumns, spec: RequestSpec
                     ) -> Sequence[float] | np.ndarray:
        """The raw weight of each host of ``cols``, in order. (Derived
        from ``weigh`` when the weigher wrote that.)"""
        weigh = self.weigh
        return [weigh(host, spec) for host in cols.hosts]

    def weigh_all(self, hosts: list[objects.Host], spec: RequestSpec) -> list[float]:
        """The raw weight of each host, in order, as floats."""
        return as_floats(self.weigh_column(spec.columns(hosts), spec), len(hosts))
