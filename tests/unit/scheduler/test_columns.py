"""Column rounding is round() to the bit; column ranking is the tuple sort."""
import math
import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvmplace.scheduler import columns


def _bits(values):
    return [struct.pack('<d', v) for v in values]


# Values that sit on or next to a rounding tie at 4 and 6 places, signed
# zeros and tiny negatives, integers, huge values and the non-finite ones.
EDGES = [0.0, -0.0, 0.5, 2.675, 1.00005, 0.00005, -0.00005, 0.12345, 0.1234549999,
         0.0000005, 0.0000015, -0.0000004, 1e-300, -1e-300, 5e-324, 123456789.00005,
         2.0 ** 45 / 1e4, 2.0 ** 45 / 1e6, 2.0 ** 52, 1e300, -1e300,
         math.inf, -math.inf, math.nan, 131072.0, -16384.0, 0.9999999999]
floats = (st.floats(allow_nan=True, allow_infinity=True)
          | st.floats(min_value=-1e6, max_value=1e6)
          | st.floats(min_value=-2.0, max_value=2.0)
          | st.sampled_from(EDGES)
          | st.integers(min_value=-10 ** 9, max_value=10 ** 9).map(lambda i: i / 20000.0)
          | st.integers(min_value=-10 ** 9, max_value=10 ** 9).map(lambda i: i / 2e6))


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=0, max_size=200), st.sampled_from([0, 1, 2, 3, 4, 6]))
@example(EDGES * 3, 4)
@example(EDGES * 3, 6)
def test_round_all_is_round_bit_for_bit(values, ndigits):
    assert _bits(columns.round_all(values, ndigits)) == _bits(
        [round(v, ndigits) for v in values])


def test_round_all_long_column_of_ties_and_near_ties():
    # i / 20000 lands exactly on or a hair off x.xxxx5 in binary.
    values = [i / 20000.0 for i in range(-5000, 5000)] + [i / 2e6 for i in range(5000)]
    assert _bits(columns.round_all(values, 4)) == _bits([round(v, 4) for v in values])
    assert _bits(columns.round_all(values, 6)) == _bits([round(v, 6) for v in values])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, -2.0, math.nan])
                          | st.floats(allow_nan=False),
                          st.sampled_from(['a', 'b', 'c', 'aa', 'é', 'B'])),
                max_size=60))
def test_rank_is_the_tuple_sort(rows):
    totals = [t for t, _ in rows]
    names = [n for _, n in rows]
    assert columns.rank(totals, names) == sorted(range(len(rows)),
                                                 key=lambda i: (-totals[i], names[i]))


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=0, max_size=100), st.sampled_from([0, 4, 6, 23]))
@example(EDGES * 3, 4)
def test_round_all_of_a_column_is_round_of_its_floats(values, ndigits):
    """The ranking hands round_all numpy columns: Python floats come back,
    the same bits as round() of each value."""
    import numpy as np
    out = columns.round_all(np.array(values, dtype=np.float64), ndigits)
    assert all(type(v) is float for v in out)
    assert _bits(out) == _bits([round(v, ndigits) for v in values])
