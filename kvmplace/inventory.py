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
import mmap
import os
import stat
from collections import Counter
from typing import Any, Optional

import orjson

from kvmplace import gcpause, names, objects
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
        # Built in C; the keys are walked only when one was lost, which a
        # 100,000-host file would otherwise pay for at every key.
        obj = cls(pairs)
        if len(obj) == len(pairs):
            return obj
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
        value = self.data.get(key)
        # The usual case first, accepted by the same comparisons as below
        # (NaN and infinities fail them and take the long way).
        kind = type(value)
        if (kind is int or (kind is float and not integer)) and value <= maximum and (
                minimum < value if exclusive_min else minimum <= value):
            return value
        if value is None:
            if required:
                raise InvalidInput(self.at(key), 'is required')
            return default
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


# Most hosts of a cloud share a few CPU lists ("0-23", "24-47"): each is
# parsed and formatted once per file. Bounded, so that a file of distinct
# wide lists keeps no more expanded CPU ids than one host does.
_CPU_MEMO_ENTRIES = 4096
_CPU_MEMO_CPUS = 1024


def _cpu_list(text: str, path: str, memo: dict[str, tuple[tuple[int, ...], str]]
              ) -> tuple[tuple[int, ...], str]:
    """(CPU ids, canonical text) of a node's ``cpus``, memoized in ``memo``."""
    known = memo.get(text)
    if known is not None:
        return known
    try:
        cpu_ids = objects.parse_cpu_list(text)
    except ValueError as exc:
        raise InvalidInput(path, str(exc)) from None
    known = (cpu_ids, objects.format_cpu_list(cpu_ids))
    if len(memo) < _CPU_MEMO_ENTRIES and len(cpu_ids) <= _CPU_MEMO_CPUS:
        memo[text] = known
    return known


def _node(data: Any, path: str, seen_cpus: dict[int, int],
          cpu_memo: Optional[dict[str, tuple[tuple[int, ...], str]]] = None
          ) -> objects.NumaNode:
    v = _V(data, path)
    v.obj(_NODE_FIELDS)
    node_id = v.number('id', integer=True, maximum=4095)
    cpus_text = v.string('cpus')
    cpu_ids, cpus = _cpu_list(cpus_text, v.at('cpus'), {} if cpu_memo is None else cpu_memo)
    if seen_cpus.keys().isdisjoint(cpu_ids):
        seen_cpus.update(dict.fromkeys(cpu_ids, node_id))
    else:
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
    return objects.NumaNode(id=node_id, cpus=cpus,
                            memory_mib=memory, free_memory_mib=free,
                            bandwidth_mibps=bandwidth, baseline_mibps=baseline)


def _host(data: Any, path: str,
          cpu_memo: Optional[dict[str, tuple[tuple[int, ...], str]]] = None) -> objects.Host:
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
        node = _node(raw, f'{path}.numa[{i}]', seen_cpus, cpu_memo)
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


# -- the quick path -----------------------------------------------------------
# A cloud's inventory is 100,000 hosts of plain, valid data, and _V's
# accessors (a call per field, each with its keyword arguments) took
# 60 microseconds a host. The functions below accept a host or link only
# when every field is of the plain kind and within the bounds _V checks
# (the same comparisons), and build exactly what _host and _link build;
# anything else - a missing or unknown field, a bool for a number, a name
# with a control character, a CPU list not yet seen - returns None, and
# the accessors run, raising the one-line error. So an error is always
# theirs; tests/unit/test_inventory_quick.py holds the two paths equal.

_NUMBER = (int, float)
_MAX_VCPUS = 1 << 20
_MAX_VCPUS_USED = 1 << 24
_MAX_MBPS = 10 ** 7


def _plain_object(data: Any) -> bool:
    """A JSON object without a key given twice (a plain dict, as orjson
    reads them, is asked nothing more: getattr on it costs a missed
    lookup per object)."""
    kind = type(data)
    return kind is dict or (kind is ParsedObject and not data.duplicate_keys)


def _plain_text(value: Any) -> bool:
    """What names.check_text accepts, for the usual strings (a False means
    "ask check_text", which may still accept)."""
    return (type(value) is str and 0 < len(value) <= names.MAX_NAME_LENGTH
            and value.isprintable() and not value.isspace())


class _Quick:
    """What the quick path has already judged in one file: CPU lists (the
    accessors' memo), node layouts (the CPU lists of a host's nodes:
    disjoint, and their highest CPU) and CPU model names. Each bounded."""

    def __init__(self, cpu_memo: dict[str, tuple[tuple[int, ...], str]]):
        self.cpu_memo = cpu_memo
        self.layouts: dict[tuple, Optional[tuple[list[str], int]]] = {}
        self.texts: set[str] = set()

    def layout(self, key: tuple) -> Optional[tuple[list[str], int]]:
        """(canonical CPU lists, highest CPU) of nodes with these ``cpus``;
        None when one is not known yet or two share a CPU."""
        if key in self.layouts:
            return self.layouts[key]
        seen: set[int] = set()
        texts = []
        for text in key:
            known = self.cpu_memo.get(text)
            if known is None:
                return None             # not known yet: not remembered either
            if not seen.isdisjoint(known[0]):
                seen = set()
                break
            seen.update(known[0])
            texts.append(known[1])
        found = (texts, max(seen)) if seen else None
        if len(self.layouts) < _CPU_MEMO_ENTRIES:
            self.layouts[key] = found
        return found

    def text(self, value: Any) -> bool:
        if type(value) is not str:      # a list or dict is not hashable
            return False
        if value in self.texts:
            return True
        if not _plain_text(value) or len(self.texts) >= _CPU_MEMO_ENTRIES:
            return False
        self.texts.add(value)
        return True


def _quick_host(data: Any, quick: _Quick) -> Optional[objects.Host]:
    """_host(data) when it is plain and valid (see above), else None."""
    # (The usual cases of _plain_object and _plain_text written out: a
    # call each, 100,000 times.)
    if (type(data) is not dict and not _plain_object(data)) \
            or not _HOST_FIELDS.issuperset(data):
        return None
    get = data.get
    name = get('name')
    memory = get('memory_mib')
    vcpus = get('vcpus')
    used = get('memory_used_mib')
    if used is None:
        used = 0
    vcpus_used = get('vcpus_used')
    if vcpus_used is None:
        vcpus_used = 0
    link_mbps = get('link_mbps')
    if link_mbps is None:
        link_mbps = 10000
    enabled = get('enabled')
    if enabled is None:
        enabled = True
    maintenance = get('maintenance')
    if maintenance is None:
        maintenance = False
    up = get('up')
    if up is None:
        up = True
    updated_at = get('updated_at')
    cpu_model = get('cpu_model')
    if not (type(name) is str and 0 < len(name) <= names.MAX_NAME_LENGTH
            and name.isprintable() and not name.isspace()
            and name not in names.RESERVED_HOST_NAMES
            and type(memory) is int and 0 < memory <= MAX_COUNT
            and type(vcpus) is int and 0 < vcpus <= _MAX_VCPUS
            and type(used) is int and 0 <= used <= memory
            and type(vcpus_used) is int and 0 <= vcpus_used <= _MAX_VCPUS_USED
            and type(link_mbps) in _NUMBER and 0 < link_mbps <= _MAX_MBPS
            and type(enabled) is bool and type(maintenance) is bool and type(up) is bool
            and (updated_at is None or (type(updated_at) in _NUMBER
                                        and 0 <= updated_at <= MAX_COUNT))
            and (cpu_model is None or (type(cpu_model) is str and cpu_model in quick.texts)
                 or quick.text(cpu_model))):
        return None
    raw_nodes = get('numa')
    nodes: list[objects.NumaNode] = []
    if raw_nodes:
        if type(raw_nodes) is not list:
            return None
        # The nodes in one loop, written out (_node's checks, the same
        # comparisons as above): a call per node and three comprehensions
        # a host cost a quarter of the quick path. Each node is made with
        # its CPU list as given, then given the canonical text (of the
        # accessors' memo) once the layout is known.
        cpu_lists = []
        ids = set()
        node_memory = 0
        for raw in raw_nodes:
            if (type(raw) is not dict and not _plain_object(raw)) \
                    or not _NODE_FIELDS.issuperset(raw):
                return None
            get = raw.get
            cpus = get('cpus')
            node_id = get('id')
            size = get('memory_mib')
            if size is None:
                size = 0
            free = get('free_memory_mib')
            if free is None:
                free = size
            bandwidth = get('bandwidth_mibps')
            baseline = get('baseline_mibps')
            if not (type(cpus) is str
                    and type(node_id) is int and 0 <= node_id <= 4095
                    and type(size) is int and 0 <= size <= MAX_COUNT
                    and type(free) is int and 0 <= free <= MAX_COUNT
                    and not (size and free > size)
                    and (bandwidth is None or (type(bandwidth) in _NUMBER
                                               and 0 < bandwidth <= MAX_COUNT))
                    and (baseline is None or (type(baseline) in _NUMBER
                                              and 0 < baseline <= MAX_COUNT))):
                return None
            cpu_lists.append(cpus)
            ids.add(node_id)
            node_memory += size
            # Positional, in NumaNode's field order.
            nodes.append(objects.NumaNode(node_id, cpus, size, free, bandwidth, baseline))
        layout = quick.layout(tuple(cpu_lists))     # (keys of the memos: texts)
        if (layout is None or layout[1] >= vcpus or len(ids) < len(nodes)
                or node_memory > memory):
            return None
        for node, text in zip(nodes, layout[0]):
            node.cpus = text
    elif raw_nodes is not None and type(raw_nodes) is not list:
        return None
    # Positional, in Host's field order (as for NumaNode above).
    return objects.Host(name, enabled, maintenance, link_mbps, vcpus, vcpus_used, memory,
                        used, cpu_model, nodes, up, updated_at)


def _quick_link(data: Any, hosts: dict[str, objects.Host]) -> Optional[objects.Link]:
    """_link(data) when it is plain and valid, else None. An end that names
    a host (most do: each host's uplink) is text check_text accepted."""
    if not _plain_object(data) or not _LINK_FIELDS.issuperset(data):
        return None
    a = data.get('a')
    b = data.get('b')
    mbps = data.get('mbps')
    if ((type(a) is str and a in hosts or _plain_text(a))
            and (type(b) is str and b in hosts or _plain_text(b)) and a != b
            and type(mbps) in _NUMBER and 0 < mbps <= _MAX_MBPS):
        return objects.Link(a, b, mbps)
    return None


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
    uses: Counter[str] = Counter(link.a for link in links)
    uses.update(link.b for link in links)
    if all(end in hosts for end, count in uses.items() if count < 2):
        return      # every dead end is a host (the usual case): no link to look at
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


def from_dict(data: Any, quick: bool = True) -> objects.Inventory:
    """Validate ``data`` (parsed JSON/YAML) and build an Inventory.

    ``quick=False`` judges every host and link with the accessors alone
    (the reference the tests hold the quick path to)."""
    top = _V(data, '')
    top.obj(_TOP_FIELDS)
    hosts: dict[str, objects.Host] = {}
    cpu_memo: dict[str, tuple[tuple[int, ...], str]] = {}
    judged = _Quick(cpu_memo)
    for i, raw in enumerate(top.items('hosts', required=True)):
        host = _quick_host(raw, judged) if quick else None
        if host is None:
            host = _host(raw, f'hosts[{i}]', cpu_memo)
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
        link = (_quick_link(raw, hosts) if quick else None) or _link(raw, f'links[{i}]')
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


#: Largest inventory file read (in characters; a mapped file in bytes).
MAX_FILE_SIZE = 64 * 1024 * 1024
#: Bytes of a mapped file whose colons are counted at a time (mmap has no
#: count(); a slice is a copy, reused at this size).
_COUNT_CHUNK = 64 * 1024


def load(path: str) -> objects.Inventory:
    """Read and validate an inventory file (JSON, or YAML).

    A JSON file is first read by orjson from the file mapped in memory:
    read() and decoding made two 58 MB copies of a 100,000-host file,
    whose pages (faulted in at 4 µs each on a VM) cost more than the
    copies. Anything that path does not accept (not a regular file, not
    UTF-8, not JSON, not valid) is read as text as before, and judged the
    long way."""
    mapped = _mapped(path)
    if mapped is not None:
        with gcpause.paused(), mapped, memoryview(mapped) as view:
            quick = _quick_json(view, mapped)
        if quick is not None:
            return quick
    try:
        with open(path, encoding='utf-8') as fh:
            text = fh.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise InvalidInput('--inventory', f'cannot read {path}: {exc.strerror}') from None
    except UnicodeDecodeError:
        raise InvalidInput('--inventory', f'{path} is not UTF-8 text') from None
    if len(text) > MAX_FILE_SIZE:
        raise InvalidInput('--inventory', f'{path} is larger than 64 MiB')
    with gcpause.paused():
        # (orjson has read the mapped file already: no second try.)
        quick = None if mapped is not None else _quick_json(text)
        if quick is not None:
            return quick
        return from_dict(parse_text(text, os.path.basename(path)))


def _mapped(path: str) -> Optional[mmap.mmap]:
    """``path`` mapped read-only, or None when it cannot be (not a regular
    file, empty, larger than MAX_FILE_SIZE bytes, unreadable): the text
    read then says why, if anything is wrong."""
    try:
        with open(path, 'rb') as fh:
            size = os.fstat(fh.fileno()).st_size
            if not 0 < size <= MAX_FILE_SIZE or not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _quick_json(text: Any, mapped: Optional[mmap.mmap] = None) -> Optional[objects.Inventory]:
    """The inventory a valid JSON file holds, read by orjson, or None: then
    parse_text and from_dict read it again, and raise their errors.

    ``text`` is a str, or the bytes of the file ``mapped`` (a memoryview
    of it; the same colons either way: in UTF-8 no other character has a
    byte 0x3A).

    json.loads's hook that keeps duplicate keys cost 1 s of a 100,000-host
    file, orjson reads it in 0.45 s, but keeps the last of two equal keys
    silently and reads an integer beyond 64 bits as a float. Both are
    ruled out after the fact, and only for an inventory from_dict accepts:
    every number there is at most MAX_COUNT (10**12), so no integer was
    read as a float; and its objects hold :func:`_key_count` keys, which
    equals the colons in the text only when no key was lost (each key has
    one colon after it; colons in strings add more, and send the file the
    long way). Otherwise orjson gives what json.loads gives (its errors
    - NaN, lone surrogates, invalid UTF-8, deep nesting - send the file the
    long way).
    """
    try:
        data = orjson.loads(text)
        inventory = from_dict(data)
    except Exception:  # noqa: BLE001 - the long way raises the error to show
        return None
    if mapped is None:
        colons = text.count(':')
    else:
        colons = sum([mapped[i:i + _COUNT_CHUNK].count(b':')
                      for i in range(0, len(mapped), _COUNT_CHUNK)])
    if colons != _key_count(data):
        return None
    return inventory


def _key_count(data: dict) -> int:
    """Keys in the objects of ``data``, an inventory from_dict accepted
    (so only its hosts' numa lists hold objects below the top lists)."""
    count = len(data)
    for key in ('hosts', 'instances', 'links'):
        count += sum(map(len, data.get(key) or ()))
    return count + sum(len(node) for host in data['hosts'] for node in host.get('numa') or ())
