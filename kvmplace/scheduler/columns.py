"""Whole-column arithmetic for the ranking: rounding and ordering.

The ranked result rounds every host's weight (6 places) and each weigher's
raw and normalized value (4 places): at ten thousand hosts some 60,000
calls to ``round()``, each a correctly rounded decimal conversion costing
0.3-1 microsecond, which was more than all the filters together. Here a
column is rounded at once with numpy, giving *exactly* what ``round(x, n)``
gives (the same doubles, signed zeros included):

``round(x, n)`` returns the double nearest to the decimal D that is x
rounded to n places. Let y = fl(x * 10**n) (10**n is exact for n <= 22)
and k = rint(y). When |y| < 2**45, y is within 2**-8 of the exact
x * 10**n; so when also |y - k| <= 0.49, the exact product is within 0.5 of
the integer k and not at a tie, hence D = k / 10**n, and the division
k / 10.0**n (both exact doubles) is correctly rounded: the double nearest
D. Every other value (ties and near-ties, huge values, inf, nan) goes
through ``round()`` itself, as do short columns, where numpy's set-up costs
more than it saves.
"""
from __future__ import annotations

import math

import numpy as np

_LIMIT = 2.0 ** 45
_MARGIN = 0.49
_SHORT = 32


def round_all(values: list[float] | np.ndarray, ndigits: int) -> list[float]:
    """``[round(v, ndigits) for v in values]`` for floats (a list, or a
    float64 column: then its values as Python floats), vectorized."""
    if isinstance(values, np.ndarray):
        values = values.astype(np.float64, copy=False)
        if len(values) < _SHORT or not 0 <= ndigits <= 22:
            values = values.tolist()
    if len(values) < _SHORT or not 0 <= ndigits <= 22:
        return [round(v, ndigits) for v in values]
    scale = 10.0 ** ndigits
    column = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid='ignore', over='ignore'):
        scaled = column * scale
        nearest = np.rint(scaled)
        exact = (np.abs(scaled) < _LIMIT) & (np.abs(scaled - nearest) <= _MARGIN)
    out = (nearest / scale).tolist()
    if not exact.all():
        for i in np.flatnonzero(~exact).tolist():
            out[i] = round(float(values[i]), ndigits)
    return out


def rank(totals: list[float], names: list[str]) -> list[int]:
    """Indices by total weight, highest first, then by name.

    The same order as ``sorted(range(n), key=lambda i: (-totals[i],
    names[i]))``, made as two stable sorts on plain list lookups (no tuple
    and no lambda call per host). NaN has no order, so a column holding one
    takes the tuple sort, whose order with NaN is what it always was.
    """
    if any(math.isnan(t) for t in totals):
        return sorted(range(len(totals)), key=lambda i: (-totals[i], names[i]))
    order = sorted(range(len(totals)), key=names.__getitem__)
    negated = [-t for t in totals]
    order.sort(key=negated.__getitem__)
    return order
