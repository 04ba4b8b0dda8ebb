"""Load and validate an offline inventory (ARCHITECTURE "Offline inventory").

Validation is strict and names the first wrong field as a dotted path
(``hosts[1].numa[0].cpus: has a bad range "3-1"``): an operator planning a
drain from a hand-edited file must not get a plan built on a typo. Unknown
fields are errors for the same reason (a misspelt ``memroy_mib`` would
otherwise silently take its default). For the same reason a key given twice
in one object is an error (JSON and YAML parsers silently keep the last
one), and so are names holding control characters, a host named after the
implicit switch, a link end that is most likely a misspelt name, and more
memory used than the host has.

The format is documented in doc/source/user/inventory.rst and published as
a JSON Schema, etc/kvmplace/inventory.schema.json; the loader checks more
than the schema can say (cross-field rules), with one-line errors.
"""
from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any

from kvmplace import names, objects
from kvmplace.exception import InvalidInput

_HOST_FIELDS = {'name', 'enabled', 'maintenance', 'link_mbps', 'vcpus',
                'vcpus_used', 'memory_mib', 'memory_used_mib', 'cpu_model',
                'numa', 'up', 'updated_at'}
_NODE_FIELDS = {'id', 'cpus', 'memory_mib', 'free_memory_mib',
                'bandwidth_mibps', 'baseline_mibps'}
_INSTANCE_FIELDS = {'name', 'host', 'memory_mib', 'vcpus', 'dirty_rate_mibps',
                    'emulator_node', 'disk_gib', 'shared_storage', 'uuid',
                    'cpu_model'}
_LINK_FIELDS = {'a', 'b', 'mbps'}
_TOP_FIELDS = {'hosts', 'instances', 'links'}

# Which fields must be given (the rest have defaults); the schema file and
# the loader are checked against these in the tests.
REQUIRED_FIELDS = {
    'inventory': {'hosts'},
    'host': {'name', 'vcpus', 'memory_mib'},
    'numa': {'id', 'cpus'},
    'instance': {'name', 'host', 'memory_mib'},
    'link': {'a', 'b', 'mbps'},
}
KNOWN_FIELDS = {
    'inventory': _TOP_FIELDS,
    'host': _HOST_FIELDS,
    'numa': _NODE_FIELDS,
    'instance': _INSTANCE_FIELDS,
    'link': _LINK_FIELDS,
}


class ParsedObject(dict):
    """A JSON object or YAML mapping that remembers the keys it held twice.

    The parsers keep the last of two equal keys; the loader must refuse
    them instead, naming the field with its full path, which only the
    loader knows: so parsing records them here and :meth:`_V.obj` raises.
    """

    duplicate_keys: tuple = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[Any, Any]]) -> ParsedObject:
        obj = cls()
        duplicates = []
        for key, value in pairs:
            if key in obj and key not in duplicates:
                duplicates.append(key)
            obj[key] = value
        obj.duplicate_keys = tuple(duplicates)
        return obj

MAX_COUNT = 10 ** 12


class _V:
    """Small typed accessors that raise InvalidInput with the field path."""

    def __init__(self, data: Any, path: str):
        self.data = data
        self.path = path

    def at(self, key: str) -> str:
        return f'{self.path}.{key}' if self.path else key

    def obj(self, allowed: set[str]) -> dict:
        if not isinstance(self.data, dict):
            raise InvalidInput(self.path or 'inventory',
                               f'must be an object, not {_kind(self.data)}')
        for key in getattr(self.data, 'duplicate_keys', ()):
            raise InvalidInput(self.at(names.printable(str(key))),
                               'is given twice in the same object')
        for key in self.data:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                extra = f' (did you mean "{hint[0]}"?)' if hint else ''
                raise InvalidInput(self.at(names.printable(str(key))), f'unknown field{extra}')
        return self.data

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def string(self, key: str, required: bool = True, default=None) -> str:
        if not self.has(key):
            if required:
                raise InvalidInput(self.at(key), 'is required')
            return default
        return names.check_text(self.at(key), self.data[key])

    def boolean(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise InvalidInput(self.at(key), f'must be true or false, not {_kind(value)}')
        return value

    def number(self, key: str, required: bool = True, default=None, *,
               minimum: float = 0.0, exclusive_min: bool = False,
               integer: bool = False, maximum: float = MAX_COUNT):
        if not self.has(key):
            if required:
                raise InvalidInput(self.at(key), 'is required')
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            want = 'an integer' if integer else 'a number'
            raise InvalidInput(self.at(key), f'must be {want}, not {_kind(value)}')
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(self.at(key), 'must be a finite number')
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise InvalidInput(self.at(key), f'must be an integer, not {value}')
            value = int(value)
        if value < minimum or (exclusive_min and value == minimum):
            op = '>' if exclusive_min else '>='
            raise InvalidInput(self.at(key), f'must be {op} {minimum:g}, not {value}')
        if value > maximum:
            raise InvalidInput(self.at(key), f'must be <= {maximum:g}, not {value}')
        return value

    def items(self, key: str, required: bool = False) -> list:
        if not self.has(key):
            if required:
                raise InvalidInput(self.at(key), 'is required')
            return []
        value = self.data[key]
        if not isinstance(value, list):
            raise InvalidInput(self.at(key), f'must be a list, not {_kind(value)}')
        return value


_kind = names.describe


def _node(data: Any, path: str, seen_cpus: dict[int, int]) -> objects.NumaNode:
    v = _V(data, path)
    v.obj(_NODE_FIELDS)
    node_id = v.number('id', integer=True, maximum=4095)
    cpus_text = v.string('cpus')
    try:
        cpu_ids = objects.parse_cpu_list(cpus_text)
    except ValueError as exc:
        raise InvalidInput(v.at('cpus'), str(exc)) from None
    for cpu in cpu_ids:
        if cpu in seen_cpus:
            raise InvalidInput(v.at('cpus'),
                               f'CPU {cpu} is already in node {seen_cpus[cpu]}')
        seen_cpus[cpu] = node_id
    memory = v.number('memory_mib', required=False, default=0, integer=True)
    free = v.number('free_memory_mib', required=False, default=memory, integer=True)
    if memory and free > memory:
        raise InvalidInput(v.at('free_memory_mib'),
                           f'{free} is more than the node\'s memory_mib {memory}')
    bandwidth = v.number('bandwidth_mibps', required=False, exclusive_min=True)
    baseline = v.number('baseline_mibps', required=False, exclusive_min=True)
    return objects.NumaNode(id=node_id, cpus=objects.format_cpu_list(cpu_ids),
                            memory_mib=memory, free_memory_mib=free,
                            bandwidth_mibps=bandwidth, baseline_mibps=baseline)


def _host(data: Any, path: str) -> objects.Host:
    v = _V(data, path)
    v.obj(_HOST_FIELDS)
    name = v.string('name')
    names.check_host_name(v.at('name'), name)
    memory = v.number('memory_mib', integer=True, exclusive_min=True)
    used = v.number('memory_used_mib', required=False, default=0, integer=True)
    if used > memory:
        raise InvalidInput(v.at('memory_used_mib'),
                           f'{used} is more than the host\'s memory_mib {memory}')
    vcpus = v.number('vcpus', integer=True, exclusive_min=True, maximum=1 << 20)
    vcpus_used = v.number('vcpus_used', required=False, default=0, integer=True,
                          maximum=1 << 24)
    nodes = []
    seen_cpus: dict[int, int] = {}
    seen_ids: set[int] = set()
    for i, raw in enumerate(v.items('numa')):
        node = _node(raw, f'{path}.numa[{i}]', seen_cpus)
        if node.id in seen_ids:
            raise InvalidInput(f'{path}.numa[{i}].id', f'node {node.id} appears twice')
        seen_ids.add(node.id)
        nodes.append(node)
    if nodes:
        node_mem = sum(n.memory_mib for n in nodes)
        if node_mem > memory:
            raise InvalidInput(v.at('numa'),
                               f'nodes hold {node_mem} MiB, more than memory_mib {memory}')
        top_cpu = max(seen_cpus)
        if top_cpu >= vcpus:
            raise InvalidInput(v.at('numa'),
                               f'CPU {top_cpu} is outside the host\'s {vcpus} vcpus')
    return objects.Host(
        name=name,
        enabled=v.boolean('enabled', True),
        maintenance=v.boolean('maintenance', False),
        up=v.boolean('up', True),
        link_mbps=v.number('link_mbps', required=False, default=10000,
                           exclusive_min=True, maximum=10 ** 7),
        vcpus=vcpus, vcpus_used=vcpus_used,
        memory_mib=memory, memory_used_mib=used,
        cpu_model=v.string('cpu_model', required=False),
        numa=nodes,
        updated_at=v.number('updated_at', required=False))


def _instance(data: Any, path: str, hosts: dict[str, objects.Host]) -> objects.Instance:
    v = _V(data, path)
    v.obj(_INSTANCE_FIELDS)
    name = v.string('name')
    host_name = v.string('host')
    host = hosts.get(host_name)
    if host is None:
        raise InvalidInput(v.at('host'), f'unknown host "{host_name}"')
    emulator_node = v.number('emulator_node', required=False, integer=True, maximum=4095)
    if emulator_node is not None and host.numa and host.node(emulator_node) is None:
        ids = ', '.join(str(n.id) for n in host.numa)
        raise InvalidInput(v.at('emulator_node'),
                           f'host "{host_name}" has no NUMA node {emulator_node} (it has {ids})')
    return objects.Instance(
        name=name, host=host_name,
        memory_mib=v.number('memory_mib', integer=True, exclusive_min=True, maximum=1 << 32),
        vcpus=v.number('vcpus', required=False, default=1, integer=True, minimum=1,
                       maximum=1 << 16),
        dirty_rate_mibps=float(v.number('dirty_rate_mibps', required=False, default=0.0,
                                        maximum=10 ** 7)),
        emulator_node=emulator_node,
        disk_gib=float(v.number('disk_gib', required=False, default=0.0, maximum=10 ** 7)),
        shared_storage=v.boolean('shared_storage', True),
        uuid=v.string('uuid', required=False),
        cpu_model=v.string('cpu_model', required=False))


def _link(data: Any, path: str) -> objects.Link:
    v = _V(data, path)
    v.obj(_LINK_FIELDS)
    a = v.string('a')
    b = v.string('b')
    if a == b:
        raise InvalidInput(v.at('b'), f'a link cannot join "{a}" to itself')
    return objects.Link(a=a, b=b, mbps=v.number('mbps', exclusive_min=True, maximum=10 ** 7))


def _check_link_ends(links: list[objects.Link], hosts: dict[str, objects.Host]) -> None:
    """Refuse a link end that is most likely a misspelt name.

    A name that is no host is taken for a switch. A switch on a single link
    (a dead end) is harmless when it hangs off another switch (a spine with
    one rack) or is a host's only uplink (a host on a segment of its own, an
    island); but it is refused when it hangs off a host that has other links
    (a dual-homed host whose second uplink went to a typo, silently lost) or
    when it looks like a host's name (``cn-aa`` for ``cn-a``).
    """
    uses: dict[str, int] = {}
    for link in links:
        for end in (link.a, link.b):
            uses[end] = uses.get(end, 0) + 1
    host_names = list(hosts)
    for i, link in enumerate(links):
        for side, end, other in (('a', link.a, link.b), ('b', link.b, link.a)):
            if end in hosts or uses[end] >= 2:
                continue
            hint = difflib.get_close_matches(end, host_names, n=1, cutoff=_TYPO_CUTOFF)
            if other in hosts and uses[other] > 1:
                why = f': a dead end from host "{other}", which has other links (misspelt?)'
            elif hint:
                why = f'; did you mean host "{hint[0]}"?'
            else:
                continue
            raise InvalidInput(f'links[{i}].{side}', f'"{end}" is no host and on no other '
                                                     f'link{why}')


# How close (difflib ratio) a dead-end switch name must be to a host's name
# to be taken for a misspelling of it: "cn-aa" for "cn-a" is 0.89.
_TYPO_CUTOFF = 0.8


def from_dict(data: Any) -> objects.Inventory:
    """Validate ``data`` (parsed JSON/YAML) and build an Inventory."""
    top = _V(data, '')
    top.obj(_TOP_FIELDS)
    hosts: dict[str, objects.Host] = {}
    for i, raw in enumerate(top.items('hosts', required=True)):
        host = _host(raw, f'hosts[{i}]')
        if host.name in hosts:
            raise InvalidInput(f'hosts[{i}].name', f'host "{host.name}" appears twice')
        hosts[host.name] = host
    if not hosts:
        raise InvalidInput('hosts', 'must list at least one host')
    instances: dict[str, objects.Instance] = {}
    for i, raw in enumerate(top.items('instances')):
        inst = _instance(raw, f'instances[{i}]', hosts)
        if inst.name in instances:
            raise InvalidInput(f'instances[{i}].name', f'instance "{inst.name}" appears twice')
        instances[inst.name] = inst
    links = []
    seen_pairs: set[frozenset] = set()
    for i, raw in enumerate(top.items('links')):
        link = _link(raw, f'links[{i}]')
        pair = frozenset((link.a, link.b))
        if pair in seen_pairs:
            raise InvalidInput(f'links[{i}]', f'"{link.a}"-"{link.b}" is listed twice')
        seen_pairs.add(pair)
        links.append(link)
    if links:
        ends = {link.a for link in links} | {link.b for link in links}
        for i, name in enumerate(hosts):
            if name not in ends:
                raise InvalidInput(f'hosts[{i}].name',
                                   f'host "{name}" is on no link (with "links" given, '
                                   'every host needs one)')
        _check_link_ends(links, hosts)
    return objects.Inventory(hosts=hosts, instances=instances, links=links)


def parse_text(text: str, source: str = 'inventory') -> Any:
    """Parse JSON, or YAML when it is not JSON."""
    try:
        return json.loads(text, object_pairs_hook=ParsedObject.from_pairs)
    except RecursionError:
        raise InvalidInput(source, 'is nested too deeply') from None
    except ValueError as json_exc:
        stripped = text.lstrip()
        if stripped.startswith(('{', '[')):
            raise InvalidInput(source, f'is not valid JSON: {json_exc}') from None
    import yaml
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark else ''
        raise InvalidInput(source, f'is neither JSON nor valid YAML{where}') from None
    except RecursionError:
        raise InvalidInput(source, 'is nested too deeply') from None
    except Exception as exc:  # noqa: BLE001
        # PyYAML's constructors let plain errors through for tagged or
        # implicit values they cannot build ("2001-13-45", "!!int x", a bare
        # "!!float"): ValueError, IndexError, AttributeError... Each means
        # the text is not a YAML inventory, and must not become a traceback.
        raise InvalidInput(source, f'is not valid YAML: {exc}') from None


_YAML_LOADER: Any = None


def _yaml_loader() -> Any:
    """A SafeLoader whose mappings are ParsedObjects (duplicate keys kept).

    Built on first use so that importing this module does not import yaml.
    """
    global _YAML_LOADER
    if _YAML_LOADER is not None:
        return _YAML_LOADER
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_yaml_map(self, node):
            data = ParsedObject()
            yield data
            # Before construct_mapping flattens merge keys ("<<"), whose
            # values may legitimately be overridden by the mapping's own.
            own_keys = []
            for key_node, _ in node.value:
                if key_node.tag != 'tag:yaml.org,2002:merge' \
                        and isinstance(key_node, yaml.ScalarNode):
                    own_keys.append(self.construct_object(key_node))
            data.update(self.construct_mapping(node))
            seen = set()
            duplicates = []
            for key in own_keys:
                try:
                    if key in seen and key not in duplicates:
                        duplicates.append(key)
                    seen.add(key)
                except TypeError:       # unhashable: construct_mapping refuses it
                    continue
            data.duplicate_keys = tuple(duplicates)

    Loader.add_constructor('tag:yaml.org,2002:map', Loader.construct_yaml_map)
    _YAML_LOADER = Loader
    return Loader


def load(path: str) -> objects.Inventory:
    """Read and validate an inventory file (JSON, or YAML)."""
    try:
        with open(path, encoding='utf-8') as fh:
            text = fh.read(64 * 1024 * 1024 + 1)
    except OSError as exc:
        raise InvalidInput('--inventory', f'cannot read {path}: {exc.strerror}') from None
    except UnicodeDecodeError:
        raise InvalidInput('--inventory', f'{path} is not UTF-8 text') from None
    if len(text) > 64 * 1024 * 1024:
        raise InvalidInput('--inventory', f'{path} is larger than 64 MiB')
    return from_dict(parse_text(text, os.path.basename(path)))
