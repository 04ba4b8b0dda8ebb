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



def per_element_text(items) -> str:
    """_write_list's text with every element through json.dumps (the
    encoder before orjson's text was used)."""
    last = len(items) - 1
    return '[\n' + ''.join(f'    {output._encode(item, base._jsonable)}'
                           f'{"," if i < last else ""}\n'
                           for i, item in enumerate(items)) + '  ]'


def written_list(items) -> str:
    buf = io.StringIO()
    output._write_list(items, buf, base._jsonable, '  ')
    return buf.getvalue()


# What orjson and json.dumps could write differently: separators and quotes
# inside strings, escapes, non-ASCII, "e-"/"e+" next to digits, floats of
# every size (1e-05 against 0.00001), ints near 64 bits.
tricky_text = st.text(alphabet=st.sampled_from(list('ab0e9E-+.,:" \\\n\x7fé\u2028')), max_size=8)
tricky_leaves = st.one_of(
    st.none(), st.booleans(), tricky_text,
    st.integers(-2 ** 65, 2 ** 65), st.integers(-10, 10 ** 6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.sampled_from([1e-05, 1.5e-07, 1e16, 1e+22, 9999999999999998.0, 0.0001, -0.0, 0.0]),
    st.builds(lambda m, e: round(m, e), st.floats(-1e6, 1e6), st.integers(0, 6)))
tricky_values = st.recursive(tricky_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner),
    st.dictionaries(st.one_of(tricky_text, st.integers(0, 3)), inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(items=st.lists(tricky_values, min_size=1, max_size=6))
def test_list_text_is_json_dumps_text_whatever_the_values(items):
    assert written_list(items) == per_element_text(items)


def ranked_row(i: int) -> dict:
    return {'host': f'cn-{i:05d}', 'weight': 2.197869 - i * 1e-3,
            'weighers': {'free_ram': {'raw': 379682.0 + i, 'normalized': 0.7682,
                                      'multiplier': 1.0}},
            'estimate': {'bandwidth_mibps': 272.9, 'bottleneck': 'source-numa', 'rounds': 9,
                         'total_seconds': math.inf if i == 7 else 132.975,
                         'converges': True, 'pre_pin': {'node': 1, 'cpus': '0-3,16-31'},
                         'without_pre_pin': None, 'mode': 'pre-copy', 'learned': False}}


def test_ranked_hosts_take_orjson_text_and_match_json_dumps():
    """A chunk of select's rows (a CPU list with a comma, an unreachable
    host's infinite time) is written from orjson's text: the quick way is
    really taken, and gives json.dumps's bytes."""
    rows = [ranked_row(i) for i in range(3 * output._CHUNK + 5)]
    assert output._quick_lines(rows[:10], '    ') is not None
    assert written_list(rows) == per_element_text(rows)


@pytest.mark.parametrize('odd', [
    {'weight': 1e-05},                          # json.dumps: 1e-05, orjson: 0.00001
    {'weight': 1e+16},
    {'host': 'nöde'},                           # json.dumps escapes non-ASCII
    {'reason': 'a "quoted" name'},
    {'n': 2 ** 64},                             # beyond orjson
    {'x': base.render.Cell(1, '1')},            # to json.dumps's default
    {3: 'int key'},
])
def test_what_orjson_writes_otherwise_takes_json_dumps(odd):
    rows = [ranked_row(1), {**ranked_row(2), **odd}, ranked_row(3)]
    assert output._quick_lines(rows, '    ') is None
    assert written_list(rows) == per_element_text(rows)


def test_strings_with_separators_keep_them_unspaced():
    """A rejected host's reason holds ': ' and ', ': only the separators
    outside strings get their space."""
    rows = [{'host': 'a', 'filter': 'f', 'reason': 'would not converge: 150 MiB/s,x:y'}] * 3
    assert output._quick_lines(rows, '    ') is not None
    assert written_list(rows) == per_element_text(rows)
