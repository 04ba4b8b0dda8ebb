"""Weigher plugins (namespace ``kvmplace.scheduler.weighers``), one a module.

A weigher returns a *raw* number per host in its natural unit (seconds,
Mbit/s, MiB, health). The manager min-max normalizes each weigher's values
to 0..1 across the candidates and multiplies by the weigher's configured
multiplier, in one place (Nova's semantics), so a weigher never has to know
about the others' scales. Higher final weight wins.
"""
from __future__ import annotations

from kvmplace import objects
from kvmplace.scheduler.spec import RequestSpec


class BaseWeigher:
    #: entry-point name, set by the loader
    name = 'base'
    #: option in [scheduler] that holds this weigher's multiplier
    multiplier_option = ''

    def __init__(self, conf):
        self.conf = conf

    @property
    def multiplier(self) -> float:
        return float(getattr(self.conf.scheduler, self.multiplier_option))

    def weigh(self, host: objects.Host, spec: RequestSpec) -> float:
        raise NotImplementedError

    def weigh_all(self, hosts: list[objects.Host], spec: RequestSpec) -> list[float]:
        """The raw weight of each host, in order, as floats.

        The manager calls this once per request with every candidate; a
        weigher may override it to read the request's values once, and must
        then return exactly ``[float(self.weigh(h, spec)) for h in hosts]``
        (tests/unit/scheduler/test_fast_path.py checks the built-in ones).
        """
        weigh = self.weigh
        return [float(weigh(host, spec)) for host in hosts]
