"""Streamed JSON gives what the one-piece conversion gave, for any answer."""
from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from kvmplace import objects
from kvmplace.cli import base
from kvmplace.scheduler import output

leaves = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12), st.text(max_size=5),
                   st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=4), inner, max_size=4)), max_leaves=25)


def one_piece(data) -> object:
    """What ``-f json`` printed before, parsed."""
    return json.loads(json.dumps(objects.plain(json.loads(json.dumps(
        data, default=base._jsonable))), indent=2, allow_nan=False))


def streamed(data) -> str:
    buf = io.StringIO()
    output.write_json(data, buf, default=base._jsonable)
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(values, st.dictionaries(st.text(max_size=6), values, max_size=5)))
def test_same_content_as_the_one_piece_conversion(data):
    assert json.loads(streamed(data)) == one_piece(data)


def test_objects_with_to_dict_and_infinite_times():
    est = objects.Estimate(bandwidth_mibps=0.0, bottleneck='link', rounds=0, data_mib=0.0,
                           total_seconds=math.inf, downtime_ms=math.inf, converges=False)
    data = {'instance': 'vm', 'ranked': [{'host': 'a', 'estimate': est}], 'rejected': []}
    text = streamed(data)
    assert json.loads(text) == one_piece(data)
    assert json.loads(text)['ranked'][0]['estimate']['total_seconds'] is None
    # One ranked host per line: a 100,000-host answer streams line by line.
    assert text.splitlines()[3].startswith('    {"host": "a"')


def test_what_json_cannot_hold_still_fails():
    with pytest.raises(TypeError):
        streamed({'x': [object()]})


def old_text(data: dict) -> str:
    """The text write_json made before elements went to the C encoder
    first: every element through _plain and json.dumps."""
    def enc(value):
        return json.dumps(output._plain(value, base._jsonable), allow_nan=False)
    lines = ['{']
    for i, (key, value) in enumerate(data.items()):
        end = ',' if i < len(data) - 1 else ''
        if isinstance(value, (list, tuple)) and value:
            lines.append(f'  {json.dumps(key)}: [')
            lines += [f'    {enc(item)}{"," if j < len(value) - 1 else ""}'
                      for j, item in enumerate(value)]
            lines.append(f'  ]{end}')
        else:
            lines.append(f'  {json.dumps(key)}: {"[]" if value in ([], ()) else enc(value)}{end}')
    return '\n'.join(lines) + '\n}\n'


@settings(max_examples=300, deadline=None)
@given(shared=st.lists(st.dictionaries(st.text(max_size=4), values, max_size=4), min_size=1,
                       max_size=3),
       rows=st.lists(st.tuples(st.dictionaries(st.text(max_size=4), values, max_size=3),
                               st.integers(0, 5)), max_size=8))
def test_same_text_as_before(shared, rows):
    """Rows with and without infinite floats, some sharing an object: the
    text is byte for byte what each row's _plain copy gave."""
    ranked = []
    for row, pick in rows:
        row = dict(row)
        if pick < len(shared):
            row['estimate'] = shared[pick]
        ranked.append(row)
    data = {'instance': 'vm', 'ranked': ranked, 'rejected': [{'host': 'x'}]}
    assert streamed(data) == old_text(data)

