"""Inventory validation: the sample loads; each mistake names its exact field."""
import copy
import json

import pytest

from kvmplace import inventory
from kvmplace.exception import InvalidInput
from tests.unit.builders import InventoryBuilder, numa


def _valid():
    b = InventoryBuilder()
    b.host('cn-a', vcpus=16, memory_mib=65536, numa=numa(1.0, 0.5))
    b.host('cn-b', vcpus=16, memory_mib=65536, numa=numa(1.0, 1.0))
    b.instance('vm1', 'cn-a', emulator_node=1)
    b.instance('vm2', 'cn-b')
    return b.as_dict()


def _error(data) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        inventory.from_dict(data)
    return info.value


def _mutated(fn):
    data = _valid()
    fn(data)
    return _error(data)


# --- the sample and defaults -------------------------------------------------

def test_sample_inventory_loads(sample_path):
    inv = inventory.load(sample_path)
    with open(sample_path, encoding='utf-8') as fh:
        raw = json.load(fh)
    assert list(inv.hosts) == [h['name'] for h in raw['hosts']]
    assert list(inv.instances) == [i['name'] for i in raw['instances']]
    assert inv.links == []
    # Defaults of the contract: enabled, not in maintenance, shared storage, dirty 0.
    assert inv.hosts['cn-a'].enabled and not inv.hosts['cn-a'].maintenance
    assert inv.hosts['cn-maint'].maintenance
    assert inv.hosts['cn-a'].node(0).health == pytest.approx(9000 / 27000)
    assert inv.instances['vm1'].shared_storage
    assert inv.instances['web1'].disk_mib == 20 * 1024


def test_defaults_of_optional_fields():
    inv = inventory.from_dict({'hosts': [{'name': 'h', 'vcpus': 4, 'memory_mib': 1024,
                                          'numa': [{'id': 0, 'cpus': '0-3'}]}],
                               'instances': [{'name': 'i', 'host': 'h', 'memory_mib': 512}]})
    host, inst = inv.hosts['h'], inv.instances['i']
    assert (host.enabled, host.maintenance, host.up, host.link_mbps) == (True, False, True, 10000)
    assert host.node(0).health == 1.0
    assert (inst.vcpus, inst.dirty_rate_mibps, inst.shared_storage, inst.disk_gib) == \
        (1, 0.0, True, 0.0)


def test_cpu_lists_are_normalized():
    data = _valid()
    data['hosts'][0]['numa'][0]['cpus'] = '3,0-2, 4'
    assert inventory.from_dict(data).hosts['cn-a'].node(0).cpus == '0-4'


def test_explicit_links_load():
    data = _valid()
    data['links'] = [{'a': 'cn-a', 'b': 'tor', 'mbps': 10000},
                     {'a': 'tor', 'b': 'cn-b', 'mbps': 25000}]
    assert [(lk.a, lk.b, lk.mbps) for lk in inventory.from_dict(data).links] == \
        [('cn-a', 'tor', 10000), ('tor', 'cn-b', 25000)]


# --- errors name the exact field ---------------------------------------------

def _set(path, value):
    def fn(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return fn


@pytest.mark.parametrize('mutate,message', [
    (_set(('hosts', 0, 'numa', 1, 'cpus'), '11-9'),
     'hosts[0].numa[1].cpus: has a descending range "11-9"'),
    (_set(('hosts', 1, 'numa', 0, 'cpus'), ''), 'hosts[1].numa[0].cpus: '),
    (_set(('instances', 0, 'host'), 'cn-z'), 'instances[0].host: unknown host "cn-z"'),
    (_set(('hosts', 1, 'name'), 'cn-a'), 'hosts[1].name: host "cn-a" appears twice'),
    (_set(('instances', 1, 'name'), 'vm1'), 'instances[1].name: instance "vm1" appears twice'),
    (_set(('hosts', 0, 'numa', 1, 'id'), 0), 'hosts[0].numa[1].id: node 0 appears twice'),
    (_set(('hosts', 0, 'numa', 1, 'cpus'), '7-15'),
     'hosts[0].numa[1].cpus: CPU 7 is already in node 0'),
    (_set(('hosts', 0, 'numa', 0, 'free_memory_mib'), 40000),
     "hosts[0].numa[0].free_memory_mib: 40000 is more than the node's memory_mib 32768"),
    (_set(('hosts', 0, 'numa', 0, 'memory_mib'), 40000),
     'hosts[0].numa: nodes hold 72768 MiB, more than memory_mib 65536'),
    (_set(('hosts', 1, 'vcpus'), 12), "hosts[1].numa: CPU 15 is outside the host's 12 vcpus"),
    (_set(('hosts', 0, 'memory_mib'), True),
     'hosts[0].memory_mib: must be an integer, not boolean true'),
    (_set(('instances', 0, 'dirty_rate_mibps'), False),
     'instances[0].dirty_rate_mibps: must be a number, not boolean false'),
    (_set(('hosts', 0, 'enabled'), 1), 'hosts[0].enabled: must be true or false, not number 1'),
    (_set(('instances', 0, 'dirty_rate_mibps'), -5),
     'instances[0].dirty_rate_mibps: must be >= 0, not -5'),
    (_set(('hosts', 1, 'link_mbps'), 0), 'hosts[1].link_mbps: must be > 0, not 0'),
    (_set(('hosts', 0, 'vcpus_used'), -1), 'hosts[0].vcpus_used: must be >= 0, not -1'),
    (_set(('instances', 1, 'memory_mib'), 1.5),
     'instances[1].memory_mib: must be an integer, not 1.5'),
    (_set(('instances', 1, 'memory_mib'), '4096'),
     'instances[1].memory_mib: must be an integer, not string "4096"'),
    (_set(('hosts', 0, 'numa', 0, 'bandwidth_mibps'), float('nan')),
     'hosts[0].numa[0].bandwidth_mibps: must be a finite number'),
    (_set(('instances', 0, 'disk_gib'), float('inf')),
     'instances[0].disk_gib: must be a finite number'),
    (_set(('instances', 0, 'emulator_node'), 3),
     'instances[0].emulator_node: host "cn-a" has no NUMA node 3 (it has 0, 1)'),
    (_set(('hosts', 0, 'name'), ''), 'hosts[0].name: must be a non-empty string'),
    (_set(('hosts', 0, 'name'), 'x' * 256), 'hosts[0].name: is longer than 255 characters'),
    (_set(('hosts', 0, 'numa'), {}), 'hosts[0].numa: must be a list, not an object'),
    (_set(('hosts', 0, 'numa', 0), 'node0'), 'hosts[0].numa[0]: must be an object'),
    (_set(('hosts',), []), 'hosts: must list at least one host'),
    (_set(('hosts', 0, 'memory_used_mib'), 65537),
     "hosts[0].memory_used_mib: 65537 is more than the host's memory_mib 65536"),
    (_set(('hosts', 1, 'name'), 'switch'), 'hosts[1].name: "switch" is reserved'),
    (_set(('hosts', 0, 'name'), 'cn-a\nkvmplace: error: forged'),
     'hosts[0].name: contains a control character (U+000A)'),
    (_set(('instances', 0, 'name'), 'vm\x1b[31m'),
     'instances[0].name: contains a control character (U+001B)'),
    (_set(('instances', 1, 'name'), 'vm\u202egpj.exe'),
     'instances[1].name: contains a control character (U+202E)'),
    (_set(('hosts', 1, 'cpu_model'), 'Haswell\x00'),
     'hosts[1].cpu_model: contains a control character (U+0000)'),
    (_set(('hosts', 0, 'name'), '\n'), 'hosts[0].name: must be a non-empty string, not '
                                        'string "\\n"'),
    (lambda d: d['hosts'][1].pop('memory_mib'), 'hosts[1].memory_mib: is required'),
    (lambda d: d.pop('hosts'), 'hosts: is required'),
])
def test_bad_field_is_named(mutate, message):
    err = _mutated(mutate)
    assert str(err).startswith(message)


def test_unknown_field_suggests_the_right_one():
    err = _mutated(_set(('hosts', 0, 'memroy_mib'), 1))
    assert str(err) == 'hosts[0].memroy_mib: unknown field (did you mean "memory_mib"?)'
    assert err.field == 'hosts[0].memroy_mib'
    err = _mutated(_set(('instances', 1, 'dirty_rate'), 1))
    assert 'did you mean "dirty_rate_mibps"' in str(err)
    err = _mutated(_set(('zzz',), 1))
    assert str(err) == 'zzz: unknown field'


def test_links_errors():
    def with_links(*links):
        data = _valid()
        data['links'] = list(links)
        return _error(data)
    ok_a, ok_b = {'a': 'cn-a', 'b': 'tor', 'mbps': 1000}, {'a': 'cn-b', 'b': 'tor', 'mbps': 1000}
    assert str(with_links(ok_a, ok_b, {'a': 'tor', 'b': 'tor', 'mbps': 1})).startswith(
        'links[2].b: a link cannot join "tor" to itself')
    assert str(with_links(ok_a, ok_b, {'a': 'tor', 'b': 'cn-a', 'mbps': 1})).startswith(
        'links[2]: "tor"-"cn-a" is listed twice')
    assert str(with_links(ok_a)).startswith('hosts[1].name: host "cn-b" is on no link')
    assert str(with_links(ok_a, dict(ok_b, mbps=-1))).startswith(
        'links[1].mbps: must be > 0')
    # A misspelt host in a link would be a switch joining nothing: refused,
    # with the host it probably meant.
    assert str(with_links(ok_a, ok_b, {'a': 'cn-bb', 'b': 'tor', 'mbps': 1})) == (
        'links[2].a: "cn-bb" is no host and on no other link; did you mean host "cn-b"?')
    # A second uplink of a host to a name nothing else knows: a typo, refused.
    assert str(with_links(ok_a, ok_b, {'a': 'cn-a', 'b': 'tor-x', 'mbps': 1})) == (
        'links[2].b: "tor-x" is no host and on no other link: a dead end from host "cn-a", '
        'which has other links (misspelt?)')
    assert str(with_links(ok_a, ok_b, {'a': 'tor', 'b': 'x\ty', 'mbps': 1})) == (
        'links[2].b: contains a control character (U+0009)')


def test_a_dead_end_switch_off_a_switch_loads():
    # A spine with a single rack under it: harmless, and real.
    data = _valid()
    data['links'] = [{'a': 'cn-a', 'b': 'tor', 'mbps': 10000},
                     {'a': 'cn-b', 'b': 'tor', 'mbps': 10000},
                     {'a': 'tor', 'b': 'spine', 'mbps': 40000}]
    assert len(inventory.from_dict(data).links) == 3


def test_a_host_alone_on_its_own_switch_is_an_island():
    # How an unreachable segment is modelled: the host's only link goes to a
    # switch nothing else is on. Accepted; the scheduler finds no path.
    data = _valid()
    data['links'] = [{'a': 'cn-a', 'b': 'tor-1', 'mbps': 10000},
                     {'a': 'cn-b', 'b': 'tor-2', 'mbps': 10000}]
    assert len(inventory.from_dict(data).links) == 2


def test_switches_between_switches_load():
    data = _valid()
    data['links'] = [{'a': 'cn-a', 'b': 'tor-1', 'mbps': 10000},
                     {'a': 'cn-b', 'b': 'tor-2', 'mbps': 10000},
                     {'a': 'tor-1', 'b': 'spine', 'mbps': 40000},
                     {'a': 'tor-2', 'b': 'spine', 'mbps': 40000}]
    assert len(inventory.from_dict(data).links) == 4


def test_an_explicit_switch_may_be_called_switch():
    # Only the implicit switch of a link-less inventory owns the name; with
    # links given, "switch" is just a switch and no host may take it.
    data = _valid()
    data['links'] = [{'a': 'cn-a', 'b': 'switch', 'mbps': 1000},
                     {'a': 'cn-b', 'b': 'switch', 'mbps': 1000}]
    assert [lk.b for lk in inventory.from_dict(data).links] == ['switch', 'switch']


def test_memory_used_may_equal_memory():
    data = _valid()
    data['hosts'][0]['memory_used_mib'] = data['hosts'][0]['memory_mib']
    assert inventory.from_dict(data).hosts['cn-a'].memory_used_mib == 65536


# --- keys given twice ----------------------------------------------------------

def test_duplicate_json_key_is_refused_with_its_path(tmp_path):
    path = tmp_path / 'dup.json'
    path.write_text('{"hosts": [{"name": "h", "vcpus": 4, "memory_mib": 1024,'
                    ' "numa": [{"id": 0, "cpus": "0-1", "cpus": "0-3"}]}]}')
    with pytest.raises(InvalidInput) as info:
        inventory.load(str(path))
    assert str(info.value) == 'hosts[0].numa[0].cpus: is given twice in the same object'


def test_duplicate_json_key_with_the_same_value_is_refused_too():
    data = inventory.parse_text('{"hosts": [], "hosts": []}')
    with pytest.raises(InvalidInput, match=r'^hosts: is given twice'):
        inventory.from_dict(data)


def test_duplicate_yaml_key_is_refused_with_its_path(tmp_path):
    path = tmp_path / 'dup.yaml'
    path.write_text('hosts:\n  - name: h\n    vcpus: 4\n    memory_mib: 1024\n'
                    '    memory_mib: 2048\n')
    with pytest.raises(InvalidInput) as info:
        inventory.load(str(path))
    assert str(info.value) == 'hosts[0].memory_mib: is given twice in the same object'


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / 'merge.yaml'
    text = ('hosts:\n'
            '  - <<: {vcpus: 4, memory_mib: 1024}\n    name: a\n    memory_mib: 2048\n')
    path.write_text(text)
    inv = inventory.load(str(path))
    assert inv.hosts['a'].memory_mib == 2048


def test_top_level_must_be_an_object():
    assert str(_error([1, 2])) == 'inventory: must be an object, not a list'
    assert str(_error(None)) == 'inventory: must be an object, not null'


def test_valid_inventory_is_not_modified():
    data = _valid()
    before = copy.deepcopy(data)
    inventory.from_dict(data)
    assert data == before


# --- files ---------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match=r'^--inventory: cannot read .*nope\.json: '
                                            'No such file'):
        inventory.load(str(tmp_path / 'nope.json'))


def test_non_utf8_file(tmp_path):
    path = tmp_path / 'latin1.json'
    path.write_bytes('{"hosts": [{"name": "caf\xe9"}]}'.encode('latin-1'))
    with pytest.raises(InvalidInput, match='is not UTF-8 text'):
        inventory.load(str(path))


def test_invalid_json_names_the_file_and_position(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"hosts": [}\n')
    with pytest.raises(InvalidInput, match=r'^broken\.json: is not valid JSON: .*line 1'):
        inventory.load(str(path))


def test_nan_in_a_json_file_is_rejected_by_field(tmp_path):
    path = tmp_path / 'nan.json'
    path.write_text('{"hosts": [{"name": "h", "vcpus": 4, "memory_mib": NaN}]}')
    with pytest.raises(InvalidInput, match=r'^hosts\[0\]\.memory_mib: must be a finite'):
        inventory.load(str(path))


def test_yaml_is_accepted(tmp_path):
    path = tmp_path / 'inv.yaml'
    path.write_text('hosts:\n'
                    '  - name: cn-a\n    vcpus: 8\n    memory_mib: 16384\n'
                    '    numa:\n      - {id: 0, cpus: "0-7", bandwidth_mibps: 1000,'
                    ' baseline_mibps: 3000}\n'
                    '  - name: cn-b\n    vcpus: 8\n    memory_mib: 16384\n'
                    'instances:\n  - {name: vm, host: cn-a, memory_mib: 2048}\n')
    inv = inventory.load(str(path))
    assert list(inv.hosts) == ['cn-a', 'cn-b']
    assert inv.hosts['cn-a'].node(0).health == pytest.approx(1 / 3)
    assert inv.instances['vm'].host == 'cn-a'


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('hosts:\n  - name: a\n   bad: [\n')
    with pytest.raises(InvalidInput, match=r'^bad\.yaml: is neither JSON nor valid YAML'
                                           r' at line \d'):
        inventory.load(str(path))


@pytest.mark.parametrize('text', [
    'hosts: 2001-13-45\n',           # YAML date that is no date
    'hosts: !!int x\n',              # YAML tag that cannot build its value
    'hosts: !!float x\n',
    '[' * 100000,                    # JSON nested past the recursion limit
    '- ' * 20000 + 'x',              # YAML nested past the recursion limit
])
def test_parse_errors_are_invalid_input_not_crashes(tmp_path, text):
    path = tmp_path / 'weird.yaml'
    path.write_text(text)
    with pytest.raises(InvalidInput, match=r'^weird\.yaml: '):
        inventory.load(str(path))
