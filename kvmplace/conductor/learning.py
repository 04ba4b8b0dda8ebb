"""How much to trust what a path's finished migrations measured.

The conductor keeps, per (source, destination) path, an exponentially
weighted mean of the bandwidth each completed migration showed
(ConductorManager.learn, table ``path_throughput``). One migration is a
noisy witness: on the lab the same 768 MiB guest crossing the same
10 Gbit/s path took 2.4 s of libvirt job time once and 4.9 s the next, and
a run that short is mostly fixed cost, so the bandwidth fitted to it swings
with every hiccup of the hosts. Replacing the nominal figure by the first
such measurement made predictions worse where the constants were right.

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

from kvmplace import estimator
from kvmplace import objects
from kvmplace import topology as topo


def nominal_mibps(path_mbps: float, params: estimator.ModelParams) -> float:
    """What the model gives a path with nothing learned: its rate x link
    efficiency, at most what the migration streams carry."""
    return min(objects.mbps_to_mibps(path_mbps) * params.link_efficiency,
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
