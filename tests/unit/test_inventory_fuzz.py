"""Fuzzing the inventory loader: whatever the input, InvalidInput or an Inventory.

An operator's hand-edited file must never crash the CLI with a traceback,
so anything that is not a valid inventory has to come back as InvalidInput
with a field path. Inputs: arbitrary JSON-like values, mutations of a valid
inventory (replace, delete, add a field, at any depth), arbitrary text and
YAML-ish token soup through the parser, and raw bytes through load().
"""
import copy
import datetime
import os
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvmplace import inventory
from kvmplace import objects
from kvmplace.exception import InvalidInput
from tests.unit.builders import InventoryBuilder, numa

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-5, max_value=70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(['0-3', '3-1', '0-7,8-15', 'cn-a', 'tor', '', ' ', '1e3']))
# What YAML can produce beyond JSON.
yaml_only = st.dates() | st.binary(max_size=8) | st.datetimes(
    min_value=datetime.datetime(1970, 1, 1))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4),
                           max_leaves=25)
any_values = st.recursive(scalars | yaml_only,
                          lambda children: st.lists(children, max_size=4)
                          | st.dictionaries(st.text(max_size=8) | st.integers(), children,
                                            max_size=4),
                          max_leaves=25)

FIELD_NAMES = sorted({'hosts', 'instances', 'links', 'name', 'enabled', 'maintenance',
                      'link_mbps', 'vcpus', 'vcpus_used', 'memory_mib', 'memory_used_mib',
                      'cpu_model', 'numa', 'up', 'updated_at', 'id', 'cpus',
                      'free_memory_mib', 'bandwidth_mibps', 'baseline_mibps', 'host',
                      'dirty_rate_mibps', 'emulator_node', 'disk_gib', 'shared_storage',
                      'uuid', 'a', 'b', 'mbps', 'memroy_mib'})


def _valid() -> dict:
    b = InventoryBuilder()
    b.host('cn-a', vcpus=16, memory_mib=65536, numa=numa(1.0, 0.5), cpu_model='Haswell')
    b.host('cn-b', vcpus=16, memory_mib=65536, numa=numa(1.0, 1.0), updated_at=1.0)
    b.instance('vm1', 'cn-a', emulator_node=1, dirty_rate_mibps=10)
    b.instance('vm2', 'cn-b', disk_gib=5, shared_storage=False)
    b.link('cn-a', 'tor', 10000).link('cn-b', 'tor', 25000)
    return b.as_dict()


VALID = _valid()


def _containers(data, path=()):
    """Every (path, container) in ``data``, the top level included."""
    yield path, data
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        if isinstance(value, (dict, list)):
            yield from _containers(value, path + (key,))


CONTAINER_PATHS = [p for p, _ in _containers(VALID)]


def _at(data, path):
    for key in path:
        data = data[key]
    return data


def _check(data):
    """The loader's contract: an Inventory, or InvalidInput naming a field."""
    try:
        inv = inventory.from_dict(data)
    except InvalidInput as exc:
        assert str(exc)
        assert str(exc).startswith(exc.field) if exc.field else True
        return None
    assert isinstance(inv, objects.Inventory)
    return inv


def test_the_base_inventory_is_valid():
    assert _check(copy.deepcopy(VALID)) is not None


@SETTINGS
@given(any_values)
def test_arbitrary_values(data):
    _check(data)


@SETTINGS
@given(st.dictionaries(st.sampled_from(['hosts', 'instances', 'links']),
                       st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values,
                                                max_size=8), max_size=3)))
def test_arbitrary_inventory_shaped_values(data):
    _check(data)


@st.composite
def mutations(draw):
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(CONTAINER_PATHS))
        try:
            target = _at(data, path)
        except (KeyError, IndexError, TypeError):
            continue            # an earlier mutation replaced this part
        if not isinstance(target, (dict, list)) or not target:
            continue
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(['replace', 'delete', 'add', 'duplicate']))
        if action == 'replace':
            target[key] = draw(any_values)
        elif action == 'delete':
            del target[key]
        elif action == 'add' and isinstance(target, dict):
            target[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=6))] = \
                draw(json_values)
        elif action == 'duplicate' and isinstance(target, list):
            target.append(copy.deepcopy(target[key]))
    return data


@SETTINGS
@given(mutations())
def test_mutations_of_a_valid_inventory(data):
    _check(data)


yaml_tokens = st.sampled_from([
    'hosts:', 'instances:', 'links:', '- ', '  ', '\n', ': ', 'name: a', '{', '}', '[', ']',
    ',', '"', "'", '&x ', '*x', '!!int ', '!!float ', '!!binary ', '!!timestamp ',
    '!!python/object ', '? ', '|', '>', '#', '%YAML 1.1\n', '---\n', '...\n', '2001-13-45',
    '2001-02-30', '1e999', '.nan', '.inf', '0x', '0o9', '~', 'null', 'true', '-1', '12:30:00',
    '\t', '\ufeff', 'x'])


@SETTINGS
@given(st.text(max_size=200) | st.lists(yaml_tokens, max_size=40).map(''.join))
@example('hosts: 2001-13-45\n')
@example('hosts: !!int x\n')
@example('[' * 5000)
def test_parser_never_crashes(text):
    try:
        data = inventory.parse_text(text, 'inv.yaml')
    except InvalidInput as exc:
        assert str(exc).startswith('inv.yaml: ')
        return
    _check(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode('utf-8')))
def test_load_never_crashes_on_file_contents(content):
    fd, path = tempfile.mkstemp(suffix='.json')
    try:
        with os.fdopen(fd, 'wb') as fh:
            fh.write(content)
        try:
            inventory.load(path)
        except InvalidInput:
            pass
    finally:
        os.unlink(path)
