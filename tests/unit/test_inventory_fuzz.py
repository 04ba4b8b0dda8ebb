"""Fuzzing the inventory loader: whatever the input, InvalidInput or an Inventory.

An operator's hand-edited file must never crash the CLI with a traceback,
so anything that is not a valid inventory has to come back as InvalidInput
with a field path. Inputs: arbitrary JSON-like values, mutations of a valid
inventory (replace, delete, add a field, at any depth), arbitrary text and
YAML-ish token soup through the parser, and raw bytes through load().
"""
import copy
import datetime
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvmplace import inventory
from kvmplace import names
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
        # One line, and nothing in it that a terminal would act on.
        assert names.control_character(str(exc)) is None, repr(str(exc))
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


# --- the rules an offline inventory used to accept silently ---------------------

def _field(path) -> str:
    """('hosts', 0, 'numa', 1, 'cpus') -> 'hosts[0].numa[1].cpus'."""
    out = ''
    for key in path:
        out += f'[{key}]' if isinstance(key, int) else (f'.{key}' if out else key)
    return out


def _dumps_with_duplicate(data, target, key, value) -> str:
    """JSON for ``data`` in which the object at ``target`` holds ``key`` twice."""
    def dump(node, path):
        if isinstance(node, dict):
            pairs = [f'{json.dumps(k)}: {dump(v, path + (k,))}' for k, v in node.items()]
            if path == target:
                pairs.append(f'{json.dumps(key)}: {json.dumps(value)}')
            return '{' + ', '.join(pairs) + '}'
        if isinstance(node, list):
            return '[' + ', '.join(dump(v, path + (i,)) for i, v in enumerate(node)) + ']'
        return json.dumps(node)
    return dump(data, ())


OBJECT_PATHS = [p for p, c in _containers(VALID) if isinstance(c, dict)]


@st.composite
def duplicated_keys(draw):
    target = draw(st.sampled_from(OBJECT_PATHS))
    key = draw(st.sampled_from(sorted(_at(VALID, target))))
    value = draw(st.just(_at(VALID, target)[key]) | json_values)
    return target, key, value


@SETTINGS
@given(duplicated_keys(), st.booleans())
def test_a_key_given_twice_is_refused_naming_it(case, as_yaml):
    """JSON and YAML parsers keep the last of two equal keys; the loader
    refuses them, naming the key with its full path, whatever the values."""
    target, key, value = case
    text = _dumps_with_duplicate(VALID, target, key, value)
    if as_yaml:
        text = '# YAML (flow style)\n' + text      # not JSON: the YAML parser reads it
    try:
        data = inventory.parse_text(text, 'inv')
    except InvalidInput:
        assert as_yaml       # a value YAML 1.1 reads differently (e.g. "1e3")
        return
    with pytest.raises(InvalidInput) as info:
        inventory.from_dict(data)
    assert info.value.field == _field(target + (key,))
    assert info.value.problem == 'is given twice in the same object'


@SETTINGS
@given(st.integers(min_value=1, max_value=10 ** 9), st.integers(min_value=0, max_value=10 ** 9))
def test_memory_used_above_memory_is_refused(memory_mib, used_mib):
    data = copy.deepcopy(VALID)
    host = data['hosts'][1]
    host.pop('numa')                      # node sizes are checked on their own
    host.update(memory_mib=memory_mib, memory_used_mib=used_mib)
    data['instances'] = [i for i in data['instances'] if i['host'] != 'cn-b']
    if used_mib <= memory_mib:
        assert inventory.from_dict(data).hosts['cn-b'].memory_used_mib == used_mib
        return
    try:
        inventory.from_dict(data)
    except InvalidInput as exc:
        assert exc.field == 'hosts[1].memory_used_mib'
        assert f'more than the host\'s memory_mib {memory_mib}' in exc.problem
    else:
        raise AssertionError('memory_used_mib above memory_mib was accepted')


valid_names = st.text(min_size=1, max_size=20).filter(
    lambda t: t.strip() and names.control_character(t) is None)


@SETTINGS
@given(valid_names, st.sampled_from(['cn-a', 'cn-b']), st.booleans())
def test_a_dead_end_from_a_host_with_other_links_is_refused(name, host, host_first):
    """A host's extra link to a name nothing else knows is a typo."""
    if name in ('cn-a', 'cn-b', 'tor'):
        return
    data = copy.deepcopy(VALID)
    ends = (host, name) if host_first else (name, host)
    data['links'].append({'a': ends[0], 'b': ends[1], 'mbps': 1000})
    try:
        inventory.from_dict(data)
    except InvalidInput as exc:
        assert exc.field == f'links[2].{"b" if host_first else "a"}'
        assert exc.problem.startswith(f'"{names.printable(name)}" is no host and on no other')
    else:
        raise AssertionError(f'a link to the unknown name {name!r} was accepted')
    # The same name on a second link is a switch, and the inventory is fine.
    data['links'].append({'a': name, 'b': 'tor', 'mbps': 1000})
    assert _check(data) is not None


@SETTINGS
@given(st.sampled_from(['cn-a', 'cn-b']), st.integers(min_value=0, max_value=4),
       st.sampled_from('xyz-1'))
def test_a_dead_end_named_like_a_host_is_refused(host, at, char):
    """One character added to a host's name, hanging off a switch."""
    typo = host[:at] + char + host[at:]
    data = copy.deepcopy(VALID)
    data['links'].append({'a': 'tor', 'b': typo, 'mbps': 1000})
    try:
        inventory.from_dict(data)
    except InvalidInput as exc:
        assert exc.field == 'links[2].b'
        assert exc.problem.endswith('did you mean host "cn-a"?') or \
            exc.problem.endswith('did you mean host "cn-b"?')
    else:
        raise AssertionError(f'the dead end {typo!r} was accepted')


control_characters = st.characters(categories=['Cc', 'Cf', 'Zl', 'Zp'])
NAME_FIELDS = [('hosts', 0, 'name'), ('hosts', 1, 'name'), ('instances', 0, 'name'),
               ('instances', 1, 'host'), ('links', 0, 'a'), ('links', 1, 'b'),
               ('hosts', 0, 'cpu_model')]


@SETTINGS
@given(st.sampled_from(NAME_FIELDS), control_characters, st.integers(min_value=0))
def test_control_characters_in_names_are_refused(path, char, where):
    data = copy.deepcopy(VALID)
    parent = _at(data, path[:-1])
    name = parent[path[-1]]
    at = where % (len(name) + 1)
    parent[path[-1]] = name[:at] + char + name[at:]
    try:
        inventory.from_dict(data)
    except InvalidInput as exc:
        assert exc.field == _field(path)
        assert exc.problem == f'contains a control character (U+{ord(char):04X})' or \
            exc.problem.startswith('must be a non-empty string')
        assert names.control_character(str(exc)) is None
    else:
        raise AssertionError(f'{_field(path)} = {parent[path[-1]]!r} was accepted')


@SETTINGS
@given(st.sampled_from([0, 1]), st.booleans())
def test_the_implicit_switch_name_is_reserved_for_hosts(index, with_links):
    data = copy.deepcopy(VALID)
    old = data['hosts'][index]['name']
    data['hosts'][index]['name'] = 'switch'
    for inst in data['instances']:
        inst['host'] = 'switch' if inst['host'] == old else inst['host']
    if with_links:
        for link in data['links']:
            link['a'] = 'switch' if link['a'] == old else link['a']
    else:
        del data['links']
    try:
        inventory.from_dict(data)
    except InvalidInput as exc:
        assert exc.field == f'hosts[{index}].name'
        assert exc.problem.startswith('"switch" is reserved')
    else:
        raise AssertionError('a host named "switch" was accepted')
