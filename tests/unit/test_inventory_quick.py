"""The loader's quick path builds what the accessors build, and refuses
nothing itself: every input gives the same Inventory, or the same one-line
error, with ``quick`` on and off (kvmplace/inventory.py, "the quick path").

The inventories are a valid one with several hosts of one NUMA layout
(the quick path takes a host only once the accessors have judged its CPU
lists), mutated at any field of any host, node or link: replaced by an
edge value (bounds, their neighbours, bools, floats, NaN, control
characters, the reserved name), deleted, duplicated or misspelt.
"""
import copy
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvmplace import inventory
from kvmplace.exception import InvalidInput
from tests.unit.builders import InventoryBuilder, numa

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

EDGES = [None, True, False, 0, 1, -1, 0.0, 0.5, 1.0, -0.0, 7, 8, 16, 17, 4095, 4096,
         10 ** 7, 10 ** 7 + 1, 10 ** 7 + 0.5, 1 << 20, (1 << 20) + 1, 1 << 24, (1 << 24) + 1,
         10 ** 12, 10 ** 12 + 1, 1e12, 1e13, 32768, 32769, 65536, 65537, math.nan,
         math.inf, -math.inf, '', ' ', 'x', 'cn-a', 'cn-b', 'cn-c', 'switch', 'tor',
         'a\nb', 'a\u200bb', 'caf\u00e9', 'x' * 255, 'x' * 256, '0-7', '8-15', '0-15',
         '0-3', '7-8', '3-1', '0-8191', ' 0-7 ', [], {}, [1], {'a': 1}]
KEYS = ['name', 'enabled', 'maintenance', 'link_mbps', 'vcpus', 'vcpus_used',
        'memory_mib', 'memory_used_mib', 'cpu_model', 'numa', 'up', 'updated_at', 'id',
        'cpus', 'free_memory_mib', 'bandwidth_mibps', 'baseline_mibps', 'a', 'b', 'mbps',
        'memroy_mib']


def _valid() -> dict:
    b = InventoryBuilder()
    for name in ('cn-a', 'cn-b', 'cn-c'):
        b.host(name, vcpus=16, memory_mib=65536, numa=numa(1.0, 0.5), cpu_model='Haswell')
    b.instance('vm1', 'cn-a', emulator_node=1)
    b.link('cn-a', 'tor', 10000).link('cn-b', 'tor', 25000).link('cn-c', 'tor', 1000)
    return b.as_dict()


def _outcome(data, quick: bool):
    try:
        return repr(inventory.from_dict(copy.deepcopy(data), quick=quick))
    except InvalidInput as exc:
        return f'error: {exc}'


def _objects(data) -> list[dict]:
    """Every host, node and link object of ``data``."""
    out = []
    for host in data['hosts']:
        out.append(host)
        out.extend(_dicts(host.get('numa')))
    out.extend(_dicts(data.get('links')))
    return out


def _dicts(value) -> list[dict]:
    """The objects of a list (a mutation may have made it anything)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


@st.composite
def mutated(draw):
    data = _valid()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(_objects(data)))
        key = draw(st.sampled_from(KEYS))
        how = draw(st.sampled_from(['set', 'set', 'set', 'delete', 'twice']))
        if how == 'delete':
            target.pop(key, None)
        elif how == 'twice':    # as the parser marks a key given twice
            _replace(data, target, inventory.ParsedObject.from_pairs(
                list(target.items()) + [(key, draw(st.sampled_from(EDGES)))]))
        else:
            target[key] = draw(st.sampled_from(EDGES))
    return data


def _replace(data, old, new) -> None:
    for host in data['hosts']:
        if host is old:
            data['hosts'][data['hosts'].index(host)] = new
            return
        nodes = host.get('numa')
        for i, node in enumerate(nodes if isinstance(nodes, list) else []):
            if node is old:
                nodes[i] = new
                return
    for i, link in enumerate(data['links']):
        if link is old:
            data['links'][i] = new


@SETTINGS
@given(mutated())
@example(_valid())
def test_quick_path_gives_what_the_accessors_give(data):
    assert _outcome(data, quick=True) == _outcome(data, quick=False)


def test_an_unhashable_cpu_model_is_the_accessors_error():
    for value in ([], {}):
        data = _valid()
        data['hosts'][0]['cpu_model'] = value
        data['hosts'][1]['cpu_model'] = value
        assert _outcome(data, quick=True) == _outcome(data, quick=False) == (
            'error: hosts[0].cpu_model: must be a non-empty string, not '
            + ('an object' if value == {} else 'a list'))


def test_an_unhashable_cpu_list_is_the_accessors_error():
    for value in ([], {}, [1]):
        data = _valid()
        data['hosts'][1]['numa'][0]['cpus'] = value
        assert _outcome(data, quick=True) == _outcome(data, quick=False) == (
            'error: hosts[1].numa[0].cpus: must be a non-empty string, not '
            + ('an object' if value == {} else 'a list'))


def test_quick_path_takes_the_hosts_after_the_first_of_a_layout(monkeypatch):
    """Not a vacuous equality: the accessors see only the first host of a
    layout and no link."""
    seen = []
    host, link = inventory._host, inventory._link
    monkeypatch.setattr(inventory, '_host', lambda d, *a: seen.append(d['name']) or host(d, *a))
    monkeypatch.setattr(inventory, '_link', lambda d, *a: seen.append('link') or link(d, *a))
    inv = inventory.from_dict(_valid())
    assert seen == ['cn-a']
    assert list(inv.hosts) == ['cn-a', 'cn-b', 'cn-c'] and len(inv.links) == 3
    assert repr(inv) == repr(inventory.from_dict(_valid(), quick=False))


def test_an_error_on_the_quick_path_is_the_accessors_one():
    data = _valid()
    data['hosts'][2]['numa'][1]['free_memory_mib'] = 10 ** 9
    assert _outcome(data, quick=True) == _outcome(data, quick=False) == (
        'error: hosts[2].numa[1].free_memory_mib: 1000000000 is more than the node\'s '
        'memory_mib 32768')
