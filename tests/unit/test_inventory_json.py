"""Reading a JSON inventory with orjson gives what json.loads gave: the
same Inventory, or the same one-line error (kvmplace/inventory.py,
_quick_json).

orjson keeps the last of two equal keys and reads an integer beyond 64
bits as a float, where the reference parser refuses the first and keeps
the second exact; it refuses NaN, Infinity and lone surrogates, which
json.loads reads. The texts here are a valid inventory with such things
written into any object: keys given twice (same value or another), big
integers, non-finite literals, colons and escapes in strings.
"""
from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvmplace import inventory
from kvmplace.exception import InvalidInput
from tests.unit.builders import InventoryBuilder, numa

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

#: JSON literals, written as they are.
LITERALS = ['18446744073709551615', '18446744073709551616', '123456789012345678901234567890',
            '-9223372036854775809', 'NaN', 'Infinity', '-Infinity', '1e400', '-0', '-0.0',
            '1E3', '1e2', '65536.0', '16', '0', 'true', 'null', '"a:b"', '"cn-a"', '"\\u003a"',
            '"caf\\u00e9"', '"\\ud800"', '"0-7"', '"Haswell"', '[]', '{}', '{"a": 1}',
            '{"a": 1, "a": 1}']


class Pairs(list):
    """A JSON object as its (key, text) pairs: equal keys may repeat."""


def _pairs(value):
    if isinstance(value, dict):
        return Pairs((k, _pairs(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_pairs(v) for v in value]
    return json.dumps(value)


def dump(value) -> str:
    if isinstance(value, Pairs):
        return '{' + ', '.join(f'{json.dumps(k)}: {dump(v)}' for k, v in value) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(dump(v) for v in value) + ']'
    return value


def _valid() -> Pairs:
    b = InventoryBuilder()
    for name in ('cn-a', 'cn-b', 'cn-c'):
        b.host(name, vcpus=16, memory_mib=65536, numa=numa(1.0, 0.5), cpu_model='Haswell')
    b.instance('vm1', 'cn-a', emulator_node=1)
    b.link('cn-a', 'tor', 10000).link('cn-b', 'tor', 25000).link('cn-c', 'tor', 1000)
    return _pairs(b.as_dict())


def _objects(value) -> list[Pairs]:
    if isinstance(value, Pairs):
        return [value] + [o for _, v in value for o in _objects(v)]
    if isinstance(value, list):
        return [o for v in value for o in _objects(v)]
    return []


@st.composite
def texts(draw) -> str:
    data = _valid()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(_objects(data)))
        i = draw(st.integers(min_value=0, max_value=len(target) - 1))
        key, value = target[i]
        how = draw(st.sampled_from(['twice', 'twice-other', 'set', 'set']))
        literal = draw(st.sampled_from(LITERALS))
        if how == 'twice':
            target.insert(draw(st.integers(i + 1, len(target))), (key, value))
        elif how == 'twice-other':
            target.append((key, literal))
        else:
            target[i] = (key, literal)
    return dump(data)


def _outcome(text: str, path: str, use_load: bool) -> str:
    try:
        if use_load:
            return repr(inventory.load(path))
        return repr(inventory.from_dict(inventory.parse_text(text, os.path.basename(path))))
    except InvalidInput as exc:
        return f'error: {exc}'


@SETTINGS
@given(text=texts())
@example(text=dump(_valid()))
def test_load_gives_what_the_reference_parser_gives(tmp_path, text):
    path = tmp_path / 'inv.json'
    path.write_text(text, encoding='utf-8')
    assert _outcome(text, str(path), True) == _outcome(text, str(path), False)


def test_a_valid_file_is_read_by_orjson():
    assert inventory._quick_json(dump(_valid())) is not None


def test_a_key_given_twice_with_the_same_value_is_the_reference_error(tmp_path):
    """orjson alone would keep one of them: the colon count finds it."""
    data = _valid()
    host = data[0][1][1]            # hosts[1]
    host.append(('memory_mib', dict(host)['memory_mib']))
    text = dump(data)
    assert inventory._quick_json(text) is None
    path = tmp_path / 'inv.json'
    path.write_text(text)
    assert _outcome(text, str(path), True) == \
        'error: hosts[1].memory_mib: is given twice in the same object'


def test_a_name_with_a_colon_takes_the_long_way_and_loads(tmp_path):
    data = _valid()
    data[1][1][0][0] = ('name', '"vm:1"')                    # instances[0].name
    text = dump(data)
    assert inventory._quick_json(text) is None
    path = tmp_path / 'inv.json'
    path.write_text(text)
    assert 'vm:1' in inventory.load(str(path)).instances


def test_a_key_given_twice_is_found_beside_a_colon_in_a_string(tmp_path):
    """Both add colons to the text beyond the keys orjson kept, so they
    cannot cancel out in the count (a review worried they might)."""
    data = _valid()
    host = data[0][1][1]            # hosts[1]
    host[[k for k, _ in host].index('cpu_model')] = ('cpu_model', '"Has:well"')
    host.append(('memory_mib', dict(host)['memory_mib']))
    text = dump(data)
    assert inventory._quick_json(text) is None
    path = tmp_path / 'inv.json'
    path.write_text(text)
    assert _outcome(text, str(path), True) == \
        'error: hosts[1].memory_mib: is given twice in the same object'


def test_an_escaped_colon_cannot_hide_a_key_given_twice(tmp_path):
    data = _valid()
    host = data[0][1][1]
    host[[k for k, _ in host].index('cpu_model')] = ('cpu_model', '"Has\\u003awell"')
    host.append(('memory_mib', dict(host)['memory_mib']))
    text = dump(data)
    assert inventory._quick_json(text) is None
    path = tmp_path / 'inv.json'
    path.write_text(text)
    assert _outcome(text, str(path), True) == \
        'error: hosts[1].memory_mib: is given twice in the same object'


# --- the mapped file -------------------------------------------------------------

def _spy_quick_json(monkeypatch) -> list:
    """The kinds of text _quick_json is given, in order."""
    kinds = []
    real = inventory._quick_json

    def spy(text, *args):
        kinds.append(type(text).__name__)
        return real(text, *args)
    monkeypatch.setattr(inventory, '_quick_json', spy)
    return kinds


def test_a_json_file_is_read_from_its_mapped_bytes(tmp_path, monkeypatch):
    """Not a str: no read() copy and no decoded copy of the file."""
    path = tmp_path / 'inv.json'
    path.write_text(dump(_valid()))
    kinds = _spy_quick_json(monkeypatch)
    assert repr(inventory.load(str(path))) == _outcome(dump(_valid()), str(path), False)
    assert kinds == ['memoryview']


def test_a_file_the_mapped_read_refuses_is_read_once_more_as_text(tmp_path, monkeypatch):
    """orjson is not asked twice; the long way names the error."""
    path = tmp_path / 'inv.json'
    data = _valid()
    data[0][1][1][0] = ('name', '"cn\\u0007b"')             # hosts[1].name
    path.write_text(dump(data))
    kinds = _spy_quick_json(monkeypatch)
    assert _outcome('', str(path), True) == \
        'error: hosts[1].name: contains a control character (U+0007)'
    assert kinds == ['memoryview']


def test_colons_of_a_mapped_file_are_counted_across_chunks(tmp_path, monkeypatch):
    """A key given twice is found whatever chunk its colon falls in."""
    monkeypatch.setattr(inventory, '_COUNT_CHUNK', 7)
    path = tmp_path / 'inv.json'
    path.write_text(dump(_valid()))
    assert 'cn-b' in inventory.load(str(path)).hosts
    data = _valid()
    host = data[0][1][1]            # hosts[1]
    host.append(('memory_mib', dict(host)['memory_mib']))
    path.write_text(dump(data))
    assert _outcome('', str(path), True) == \
        'error: hosts[1].memory_mib: is given twice in the same object'


def test_an_empty_or_special_file_is_read_as_text(tmp_path):
    path = tmp_path / 'empty.json'
    path.write_text('')
    assert inventory._mapped(str(path)) is None
    assert inventory._mapped('/dev/null') is None
    assert inventory._mapped(str(tmp_path / 'nope.json')) is None
    assert _outcome('', str(path), True) == _outcome('', str(path), False)


def test_a_file_over_the_limit_is_not_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(inventory, 'MAX_FILE_SIZE', 10)
    path = tmp_path / 'inv.json'
    path.write_text(dump(_valid()))
    assert inventory._mapped(str(path)) is None
    assert _outcome('', str(path), True) == f'error: --inventory: {path} is larger than 64 MiB'
