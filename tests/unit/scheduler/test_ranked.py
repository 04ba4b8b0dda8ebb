"""RankedHosts: the JSON text written from a ranking's columns is, line for
line, json.dumps of the rows it stands for (what output.write_json wrote
from the rows), whatever the values."""
from __future__ import annotations

import io
import json
import math

from hypothesis import given, settings, strategies as st

from kvmplace import objects
from kvmplace.cli import base
from kvmplace.scheduler import output
from kvmplace.scheduler.ranked import RankedHosts

floats = st.floats(allow_nan=True, allow_infinity=True)
names = st.text(max_size=6)


def _estimate(seconds: float, pre_pin: bool) -> objects.Estimate:
    return objects.Estimate(
        bandwidth_mibps=272.9, bottleneck='source-numa', rounds=3, data_mib=1024.5,
        total_seconds=seconds, downtime_ms=45.7, converges=math.isfinite(seconds),
        pre_pin={'node': 1, 'cpus': '16-31'} if pre_pin else None,
        without_pre_pin={'bandwidth_mibps': 100.0, 'total_seconds': math.inf,
                         'converges': False} if pre_pin else None)


def _written(ranked) -> str:
    buf = io.StringIO()
    output.write_json({'instance': 'vm', 'ranked': ranked, 'rejected': []}, buf,
                      default=base._jsonable)
    return buf.getvalue()


@st.composite
def rankings(draw):
    count = draw(st.integers(0, 40))
    host_names = draw(st.lists(names, min_size=count, max_size=count))
    weighers = {}
    for name in draw(st.lists(names, max_size=4)):
        mult = draw(st.one_of(floats, st.integers(-3, 3)))
        weighers[name] = (draw(st.lists(floats, min_size=count, max_size=count)),
                          draw(st.lists(floats, min_size=count, max_size=count)), mult)
    shared = [_estimate(draw(floats), draw(st.booleans())) for _ in range(3)]
    estimates = [draw(st.sampled_from(shared)) for _ in range(count)]
    order = draw(st.permutations(range(count)))
    return RankedHosts(host_names, draw(st.lists(floats, min_size=count, max_size=count)),
                       weighers, estimates, list(order))


@settings(max_examples=200, deadline=None)
@given(rankings())
def test_text_from_columns_is_the_text_from_rows(ranked):
    rows = ranked.rows()
    assert _written(ranked) == _written(rows)
    assert len(ranked) == len(rows) and bool(ranked) == bool(rows)


def test_rows_are_fresh_dicts_even_for_a_shared_estimate():
    est = _estimate(12.5, True)
    ranked = RankedHosts(['a', 'b'], [1.0, 0.5], {'w': ([1.0, 2.0], [0.0, 1.0], 1.0)},
                         [est, est], [1, 0])
    first, second = ranked.rows()
    assert [first['host'], second['host']] == ['b', 'a']
    assert first['estimate'] == second['estimate'] == est.to_dict()
    assert first['estimate'] is not second['estimate']
    assert first['estimate']['pre_pin'] is not second['estimate']['pre_pin']
    assert first['weighers'] == {'w': {'raw': 2.0, 'normalized': 1.0, 'multiplier': 1.0}}


def test_a_non_finite_value_is_null_and_non_ascii_is_escaped():
    ranked = RankedHosts(['hôte'], [math.nan], {'w': ([math.inf], [-math.inf], 2)},
                         [_estimate(math.inf, False)], [0])
    line = _written(ranked).splitlines()[3]
    assert line == ('    {"host": "h\\u00f4te", "weight": null, "weighers": {"w": '
                    '{"raw": null, "normalized": null, "multiplier": 2}}, "estimate": '
                    + json.dumps(objects.plain(_estimate(math.inf, False).to_dict())) + '}')


def test_lines_written_a_chunk_at_a_time_join_as_one(monkeypatch):
    """More hosts than a chunk: the chunks' seams are the lines' commas."""
    monkeypatch.setattr('kvmplace.scheduler.ranked._CHUNK', 3)
    count = 10
    ranked = RankedHosts([f'h{i}' for i in range(count)], [float(i) for i in range(count)],
                         {'w': ([0.5] * count, [1.0] * count, -1.0)},
                         [_estimate(1.0, False)] * count, list(range(count))[::-1])
    assert _written(ranked) == _written(ranked.rows())


def test_numbers_repr_writes_with_an_exponent_are_written_as_json_dumps_does():
    """orjson writes these its own way (``0.00001``, ``1e16``); the text
    must still be json.dumps's (``1e-05``, ``1e+16``)."""
    values = [1e-05, 1e16, -1.2345678901234568e+17, 5e-324, 1.7976931348623157e308, 0.0001,
              10.00001, -0.0, 0.30000000000000004, 1e15, math.inf, math.nan]
    count = len(values)
    ranked = RankedHosts([f'h{i}' for i in range(count)], values,
                         {'w%': (values[::-1], values, 1e-07)},
                         [_estimate(1.0, False)] * count, list(range(count)))
    text = _written(ranked)
    assert text == _written(ranked.rows())
    assert '"weight": 1e-05,' in text and '"weight": 1e+16,' in text


def test_a_column_not_all_floats_is_written_as_json_dumps_writes_it():
    ranked = RankedHosts(['a', 'b', 'c'], [1, 0.5, True],
                         {'w': ([2, None, 1.5], [0.0, 1.0, 0.5], 1)},
                         [_estimate(1.0, True)] * 3, [2, 0, 1])
    assert _written(ranked) == _written(ranked.rows())
    assert '"weight": true' in _written(ranked)
