"""Load and validate an offline inventory (ARCHITECTURE "Offline inventory").

Validation is strict and names the first wrong field as a dotted path
(``hosts[1].numa[0].cpus: has a bad range "3-1"``): an operator planning a
drain from a hand-edited file must not get a plan built on a typo. Unknown
fields are errors for the same reason (a misspelt ``memroy_mib`` would
otherwise silently take its default).
"""
from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any

from kvmplace import objects
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
        for key in self.data:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                extra = f' (did you mean "{hint[0]}"?)' if hint else ''
                raise InvalidInput(self.at(str(key)), f'unknown field{extra}')
        return self.data

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def string(self, key: str, required: bool = True, default=None) -> str:
        if not self.has(key):
            if required:
                raise InvalidInput(self.at(key), 'is required')
            return default
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(self.at(key), f'must be a non-empty string, not {_kind(value)}')
        if len(value) > 255:
            raise InvalidInput(self.at(key), 'is longer than 255 characters')
        return value

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


def _kind(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return f'boolean {str(value).lower()}'
    if isinstance(value, (int, float)):
        return f'number {value}'
    if isinstance(value, str):
        return f'string "{value[:40]}"'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, dict):
        return 'an object'
    return type(value).__name__


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
    memory = v.number('memory_mib', integer=True, exclusive_min=True)
    used = v.number('memory_used_mib', required=False, default=0, integer=True)
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
    return objects.Inventory(hosts=hosts, instances=instances, links=links)


def parse_text(text: str, source: str = 'inventory') -> Any:
    """Parse JSON, or YAML when it is not JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInput(source, 'is nested too deeply') from None
    except ValueError as json_exc:
        stripped = text.lstrip()
        if stripped.startswith(('{', '[')):
            raise InvalidInput(source, f'is not valid JSON: {json_exc}') from None
    import yaml
    try:
        return yaml.safe_load(text)
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
