"""Reject hosts the guest could not converge to within the max downtime.

If the guest dirties memory faster than the path carries it, pre-copy never
finishes; the migration would end in a timeout and an abort. The estimate
already applies the request's policy (auto-converge or post-copy allowed).
"""
from kvmplace.scheduler.filters import BaseFilter


class ConvergenceFilter(BaseFilter):

    def passes_column(self, cols, spec):
        return [est.converges for est in cols.estimates]

    def reason(self, host, spec) -> str:
        est = spec.estimate(host)
        return (f'would not converge: dirty rate {spec.instance.dirty_rate_mibps:g} MiB/s '
                f'vs {est.bandwidth_mibps:g} MiB/s ({est.bottleneck}-bound), downtime '
                f'{est.downtime_ms:.0f} ms > max {spec.params.max_downtime_ms} ms')
