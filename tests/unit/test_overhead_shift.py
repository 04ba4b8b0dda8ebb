"""benchmarks/overhead_bench.py's shift estimate: how much longer
kvmplace's migration calls run than bare ones, robust to the lab's
multi-modal migration times."""
from __future__ import annotations

import os
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
try:
    import overhead_bench
finally:
    sys.path.pop(0)

times = st.lists(st.floats(min_value=0.5, max_value=10.0, allow_nan=False), min_size=1,
                 max_size=12)


@settings(max_examples=60, deadline=None)
@given(times, st.floats(min_value=-2.0, max_value=2.0, allow_nan=False))
def test_shift_finds_a_constant_offset(bare, offset_s):
    """Every kvmplace call offset_s longer than its bare twin: the shift is
    exactly that offset, and its interval contains it."""
    kvm = [t + offset_s for t in bare]
    assert abs(overhead_bench.shift(kvm, bare) - offset_s) < 1e-9
    lo, hi = overhead_bench.shift_interval(kvm, bare, rounds=200)
    assert lo <= hi


def test_shift_ignores_which_mode_the_medians_fall_in():
    """Two modes 0.4 s apart, the same mix on both sides: medians of the
    sides differ by a whole mode, the shift says no difference."""
    bare = [2.6] * 6 + [3.0] * 5
    kvm = [2.6] * 5 + [3.0] * 6
    assert overhead_bench.statistics.median(kvm) - overhead_bench.statistics.median(bare) \
        > 0.39
    assert overhead_bench.shift(kvm, bare) == 0.0


def test_decomposition_names_each_part():
    kvm = [{'agent_seconds': 3.3, 'job_seconds': 1.9, 'outside_job_seconds': 1.4,
            'data_mib': 242.3, 'iterations': 3}]
    bare = [{'seconds': 3.0, 'job_seconds': 1.7, 'outside_job_seconds': 1.3,
             'data_mib': 242.3, 'iterations': 3}]
    out = overhead_bench.decomposition(kvm, bare)
    assert round(out['call_shift_seconds'], 3) == 0.3
    assert round(out['job_shift_seconds'], 3) == 0.2
    assert round(out['outside_job_shift_seconds'], 3) == 0.1
    assert out['kvmplace_iterations_median'] == out['bare_iterations_median'] == 3
