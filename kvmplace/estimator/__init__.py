"""The migration model, scalar and batched, side by side.

:mod:`kvmplace.estimator.scalar` is the pre-copy model one migration at a
time (the definition); :mod:`kvmplace.estimator.batch` runs it over many
bandwidths at once with numpy, giving the scalar model's numbers to the
bit (checked by tests/unit/scheduler/test_batch.py and the scheduler's
reference test). The scalar model's names are importable from here, as
they were when it was a single module.
"""
from kvmplace.estimator.scalar import (  # noqa: F401
    BOTTLENECKS,
    ModelParams,
    Precopy,
    Rates,
    bandwidth,
    dest_health,
    dest_term,
    downtime_cap_ms,
    downtime_ladder_ms,
    downtime_limit_ms,
    downtime_tolerance_seconds,
    estimate,
    estimate_at,
    eta_seconds,
    ewma,
    fit_bandwidth,
    link_term,
    precopy,
    precopy_at_limit,
    rates,
    source_nodes,
)
