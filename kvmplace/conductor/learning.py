"""How much to trust what a path's finished migrations measured.

The conductor keeps, per (source, destination) path, an exponentially
weighted mean of the bandwidth each completed migration showed
(:meth:`Learner.learn`, table ``path_throughput``). One migration is a
noisy witness: on the lab the same 768 MiB guest crossing the same
10 Gbit/s path took 2.4 s of libvirt job time once and 4.9 s the next, and
a run that short is mostly fixed cost, so the bandwidth fitted to it swings
with every hiccup of the hosts. Replacing the nominal figure by the first
such measurement made predictions worse where the constants were right.

The learning itself (:class:`Learner`) lives here too, apart from the RPC
endpoint: only the workflow, after a verified migration, may teach a path
(a bus client could otherwise forge results and poison the rates).

So a path's learned figure earns its weight: after ``n`` migrations the
rate used is ``(n x learned + k x nominal) / (n + k)``, where ``nominal`` is
what the model says the path alone carries (widest-path rate x
link_efficiency, at most the stream cap) and ``k`` is ``[estimator]
learning_prior_migrations``. Replayed on the accuracy benchmark's real
runs (doc/source/benchmarks/accuracy.rst), k = 3 took the MAPE of learning
from 8.97 to 8.21 % and 10.61 to 9.61 % with calibrated constants, and from
18.2 to 15.4 % and 21.9 to 18.3 % with constants that were off.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from kvmplace import estimator
from kvmplace import objects
from kvmplace import resources
from kvmplace import topology as topo
from kvmplace.exception import DatabaseError
from kvmplace.planner import concurrency as conc
from kvmplace.status import DrainStatus, JobOutcome

LOG = logging.getLogger(__name__)


def nominal_mibps(path_mbps: float, params: estimator.ModelParams) -> float:
    """What the model gives a path with nothing learned: its rate x link
    efficiency, at most what the migration streams carry."""
    return min(resources.link_mibps(path_mbps, params.link_efficiency),
               params.stream_cap_mibps * params.multifd_connections)


def trusted_mibps(learned_mibps: float, samples: int, nominal: float,
                  prior_migrations: float) -> float:
    """The learned figure shrunk towards the nominal one by the evidence
    behind it (``samples`` migrations against ``prior_migrations``)."""
    n = max(0, int(samples or 0))
    if prior_migrations <= 0 or nominal <= 0:
        return learned_mibps
    if n == 0:
        return nominal
    return (n * learned_mibps + prior_migrations * nominal) / (n + prior_migrations)


def trusted_rates(rows: dict[tuple[str, str], tuple[float, int]], topology: topo.Topology,
                  params: estimator.ModelParams, prior_migrations: float
                  ) -> dict[tuple[str, str], float]:
    """(source, dest) -> MiB/s for the scheduler, from the learned
    ``(mibps, samples)`` rows; paths the topology cannot route keep their
    learned figure (there is no nominal one to weigh it against)."""
    out = {}
    for (source, dest), (mibps, samples) in rows.items():
        graph = topology.graph
        nominal = (nominal_mibps(topology.path_mbps(source, dest), params)
                   if source in graph and dest in graph else 0.0)
        out[(source, dest)] = trusted_mibps(mibps, samples, nominal, prior_migrations)
    return out


class Learner:
    """Folds verified migrations into their paths' learned bandwidth."""

    def __init__(self, conf, db, scheduler, topology: Callable[[], topo.Topology]):
        self.conf = conf
        self.db = db
        self.scheduler = scheduler
        self.topology = topology

    def learn(self, rec: dict) -> Optional[dict]:
        """Fold a completed migration into its path's learned bandwidth.

        Called once the destination has verified the guest. The observed
        bandwidth is the one at which the model reproduces the measured
        time (estimator.fit_bandwidth), from the inputs the estimate was
        made with. Returns the path's updated row (with ``observed_mibps``
        and ``used_mibps``), or None when the migration teaches nothing
        about the path: learning is off, it did not complete in pre-copy,
        it was too small to measure or moved less than half its memory
        (mostly zero pages), a bandwidth cap (a drain's planned share) set
        its pace rather than the path, or it ran while other migrations
        used its source or destination.
        """
        est = self.conf.estimator
        if not est.learn_path_throughput:
            return None
        result = rec.get('result') or {}
        if result.get('status') != JobOutcome.COMPLETED or result.get('postcopy') \
                or not rec.get('dest'):
            return None
        inputs = (rec.get('estimate') or {}).get('inputs') or {}
        memory = inputs.get('memory_mib') or result.get('memory_mib')
        if not memory:
            return None
        moved = float(result.get('data_mib') or 0.0)
        if moved < 0.5 * (float(memory) + float(inputs.get('disk_mib') or 0)):
            # Most of the guest's memory went as zero-page markers (a guest
            # that never used its RAM), or the agent did not say what moved:
            # the time says little about the path.
            return None
        policy = objects.Policy.from_dict(rec.get('policy') or {})
        params = self.scheduler.params.with_policy(policy)
        mibps = estimator.fit_bandwidth(float(memory), float(inputs.get('dirty_rate_mibps') or 0),
                                        result.get('elapsed_seconds'), params,
                                        float(inputs.get('disk_mib') or 0))
        if mibps is None:
            return None
        cap = policy.bandwidth_cap_mibps
        if cap and mibps >= 0.85 * float(cap):
            return None
        if self.db.overlapping_migrations(rec['id']):
            # It shared its source or destination (CPUs, memory bandwidth,
            # NIC) with other migrations: its pace is the crowd's, not the
            # path's. Seen on the lab: three parallel drain migrations
            # taught their paths half their real rate.
            return None
        try:
            row = self.db.record_path_rate(rec['source'], rec['dest'], mibps,
                                           est.learning_weight, rec['id'],
                                           est.learned_max_age_seconds)
        except DatabaseError as exc:
            LOG.warning('migration %s: path throughput not recorded: %s', rec['id'][:8], exc)
            return None
        row['observed_mibps'] = round(mibps, 2)
        # What the next estimate on this path will use.
        path = (rec['source'], rec['dest'])
        row['used_mibps'] = round(trusted_rates(
            {path: (float(row['mibps']), int(row['samples'] or 0))}, self.topology(),
            self.scheduler.params, est.learning_prior_migrations)[path], 2)
        return row


#: Finished drains the concurrency model learns from (the latest ones).
CONCURRENCY_DRAINS = 20


class ConcurrencyLearner:
    """The drain planner's concurrency costs (kvmplace.planner.concurrency),
    learned from the conductor's finished drains.

    Nothing is stored beyond the drain and migration records: the figures
    are fitted again from the latest CONCURRENCY_DRAINS completed drains
    whenever another drain has completed since the last fit (a drain
    teaches only once it is over: its gaps and overlaps are then known).
    Only the conductor's own records teach, as with path learning.
    """

    def __init__(self, conf, db, params: Callable[[], estimator.ModelParams]):
        self.conf = conf
        self.db = db
        self.params = params
        self._lock = threading.Lock()
        self._key: Optional[tuple] = None
        self._value = conc.Concurrency.from_conf(conf)

    def current(self) -> conc.Concurrency:
        prior = conc.Concurrency.from_conf(self.conf)
        if not self.conf.estimator.learn_concurrency:
            return prior
        try:
            drains = [d for d in self.db.list_drains(DrainStatus.COMPLETED)
                      if d['kind'] == 'drain'][:CONCURRENCY_DRAINS]
        except DatabaseError as exc:
            LOG.warning('concurrency not learned: %s', exc)
            return self._value
        key = tuple(d['id'] for d in drains)
        with self._lock:
            if key == self._key:
                return self._value
        try:
            pairs = [(d, self.db.list_migrations(drain_id=d['id'], limit=10000))
                     for d in drains]
        except DatabaseError as exc:
            LOG.warning('concurrency not learned: %s', exc)
            return self._value
        value = conc.fit(pairs, self.params(), prior,
                         self.conf.estimator.learning_prior_migrations)
        with self._lock:
            self._key, self._value = key, value
        if drains:
            LOG.info('drain concurrency learned from %d drains: %s', len(drains),
                     value.to_dict())
        return value
