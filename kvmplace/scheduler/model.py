"""The migration model for one scheduling request, with what repeats shared.

A request asks the pre-copy model (:mod:`kvmplace.estimator`) about every
candidate host, but the guest, its source and the policy are fixed, and of
what varies the path rate takes a handful of values in a cluster (a few NIC
and uplink speeds). So the path, stream and source terms of
:func:`estimator.bandwidth` are computed once per distinct path rate here,
and only the destination node's term once per host; pre-copy runs are
memoized on their bandwidth, which hosts share whenever pre-pinning is
advised (the run without it is source-bound, the same for most hosts), and
the distinct ones a request still needs are run together
(:mod:`kvmplace.estimator.batch`).

The arithmetic is :mod:`kvmplace.estimator`'s own functions, in the same
order, so every number is identical to :func:`estimator.rates` and
:func:`estimator.estimate_at` (pinned by tests/unit/scheduler/test_fast_path.py).
"""
from __future__ import annotations

from typing import Optional, cast

import numpy as np

from kvmplace import estimator
from kvmplace import objects
from kvmplace.estimator import batch

_Term = tuple[float, str, float]


class RequestModel:
    """:func:`estimator.rates` and :func:`estimator.estimate_at` for one
    (instance, source, params), memoized for the life of one request."""

    def __init__(self, instance: objects.Instance,
                 source: tuple[float, Optional[objects.NumaNode]],
                 params: estimator.ModelParams, link_share: float = 1.0):
        self.instance = instance
        self.source = source
        self.params = params
        self.link_share = link_share
        current_health, better = source
        self._fast_health = better.health if better else current_health
        self._slow_health = current_health if better is not None else None
        self._terms: dict[tuple[float, Optional[float]],
                          tuple[_Term, Optional[_Term]]] = {}
        self._estimates: dict[estimator.Rates, objects.Estimate] = {}
        self._runs: dict[float, estimator.Precopy] = {}

    def _link_terms(self, path_mbps: float, learned_mibps: Optional[float]
                    ) -> tuple[_Term, Optional[_Term]]:
        key = (path_mbps, learned_mibps)
        terms = self._terms.get(key)
        if terms is None:
            fast = estimator.link_term(path_mbps, self._fast_health, self.params,
                                       self.link_share, learned_mibps)
            slow = None
            if self._slow_health is not None:
                slow = estimator.link_term(path_mbps, self._slow_health, self.params,
                                           self.link_share, learned_mibps)
            terms = (fast, slow)
            self._terms[key] = terms
        return terms

    def rates(self, dest_health: float, path_mbps: float,
              learned_mibps: Optional[float] = None) -> estimator.Rates:
        """What :func:`estimator.rates` returns for this request's source."""
        fast, slow = self._link_terms(path_mbps, learned_mibps)
        params = self.params
        mibps, label = estimator.dest_term(fast[0], fast[1], fast[2], dest_health, params)
        slow_mibps = None
        if slow is not None:
            slow_mibps, _ = estimator.dest_term(slow[0], slow[1], slow[2], dest_health,
                                                params)
        return mibps, label, slow_mibps, bool(learned_mibps)

    def rates_all(self, healths: list[float], paths: list[float],
                  learned: list[Optional[float]]) -> list[estimator.Rates]:
        """:meth:`rates` of each (dest_health, path_mbps, learned_mibps).

        Long columns take :func:`estimator.link_term` once per distinct
        (path rate, learned rate) and :func:`estimator.dest_term` as numpy
        operations (the same comparisons and products, so the same doubles).
        """
        n = len(healths)
        if n < batch.MIN_BATCH:
            return [self.rates(h, p, m) for h, p, m in zip(healths, paths, learned)]
        path = np.array(paths, dtype=np.float64)
        nothing_learned = all(m is None for m in learned)
        if nothing_learned and path.min() > 0:
            # The usual case (no learned rates, every path positive, no
            # NaN): distinct paths by numpy, without a key per host.
            distinct, inverse = np.unique(path, return_inverse=True)
            keys: list[tuple[float, Optional[float]]] = [(p, None) for p in distinct.tolist()]
        else:
            number: dict[tuple[float, Optional[float]], int] = {}
            inverse = np.array([number.setdefault(key, len(number))
                                for key in zip(paths, learned)], dtype=np.intp)
            keys = list(number)
        terms = [self._link_terms(p, m) for p, m in keys]
        health = np.array(healths, dtype=np.float64)
        mibps, labels = self._dest_terms(health, [fast for fast, _ in terms], inverse)
        slow: list[Optional[float]]
        if self._slow_health is not None:    # then every term has its slow half
            slow_mibps, _ = self._dest_terms(health, [cast(_Term, s) for _, s in terms],
                                             inverse)
            slow = list(slow_mibps)
        else:
            slow = [None] * n
        flags = [False] * n if nothing_learned else [bool(m) for m in learned]
        return list(zip(mibps, labels, slow, flags))

    def _dest_terms(self, health: np.ndarray, terms: list[_Term], inverse: np.ndarray
                    ) -> tuple[list[float], list[str]]:
        """estimator.dest_term over a column of hosts, host i taking the
        link term ``terms[inverse[i]]``."""
        best = np.array([t[0] for t in terms], dtype=np.float64)[inverse]
        stream = np.array([t[2] for t in terms], dtype=np.float64)[inverse]
        labels = np.array([t[1] for t in terms], dtype=object)[inverse]
        with np.errstate(all='ignore'):
            dest = health * stream
            by_dest = dest < best
            best = np.where(by_dest, dest, best)
            labels[by_dest] = 'dest-numa'
            cap = self.params.bandwidth_cap_mibps
            if cap:
                by_cap = cap < best
                best = np.where(by_cap, cap, best)
                labels[by_cap] = 'cap'
            best = np.where(0.0 > best, 0.0, best)
        return best.tolist(), labels.tolist()

    def estimate(self, rates: estimator.Rates) -> objects.Estimate:
        """What :func:`estimator.estimate_at` returns, one per distinct rates."""
        est = self._estimates.get(rates)
        if est is None:
            est = estimator.estimate_at(self.instance, self.source, rates, self.params,
                                        runs=self._runs)
            self._estimates[rates] = est
        return est

    def estimates(self, rates: list[estimator.Rates]) -> list[objects.Estimate]:
        """:meth:`estimate` of each, the missing ones computed as one batch."""
        # Each rates tuple is hashed once (hashing a tuple of floats is not
        # cached, and this runs for every host): numbered by first sight,
        # then only the distinct ones meet the memo.
        number: dict[estimator.Rates, int] = {}
        index = [number.setdefault(r, len(number)) for r in rates]
        memo = self._estimates
        distinct = [memo.get(r) for r in number]
        missing = [r for r, est in zip(number, distinct) if est is None]
        if missing:
            made = iter(batch.estimates_at(self.instance, self.source, missing, self.params,
                                           self._runs))
            for i, r in enumerate(number):
                if distinct[i] is None:
                    distinct[i] = memo[r] = next(made)
        return [cast(objects.Estimate, distinct[i]) for i in index]   # all filled
