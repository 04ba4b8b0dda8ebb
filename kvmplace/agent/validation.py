"""Checks on every RPC argument, at the agent's boundary.

Anything on the message bus can call the agent, and its arguments end up in
libvirt calls that pin threads, move guests and create storage pools. So
each argument is checked for type, range and shape before use, and a bad one
is refused with :class:`InvalidInput` naming the field; oslo.messaging
re-raises it on the caller's side with the reason. Nothing here builds a
shell command: the agent has none to build.

Names, numbers, true/false and the migration policy are
kvmplace.validation's, shared with the conductor (one name length, one
policy schema); this module adds what only the agent receives: CPU lists,
NUMA nodes, libvirt and migration URIs, disk paths, the guest it is sent.
"""
from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlparse

from kvmplace import bounds
from kvmplace import objects
from kvmplace import validation as shared
from kvmplace.exception import InvalidInput

HOST_RE = re.compile(r'^[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$')
MIGRATION_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$')
UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                     r'[0-9a-fA-F]{12}$')
CPU_MODEL_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$')
PATH_RE = re.compile(r'^/[A-Za-z0-9_.+@:/=-]{0,4095}$')
LIBVIRT_SCHEMES = ('qemu', 'qemu+tcp', 'qemu+tls', 'qemu+ssh', 'qemu+libssh',
                   'qemu+libssh2', 'qemu+unix', 'test')
MIGRATE_SCHEMES = ('tcp',)
MAX_CPU_ID = bounds.MAX_CPU_ID
MAX_MEMORY_MIB = 64 * 1024 * 1024  # 64 TiB
POLICY_KEYS = shared.POLICY_SCHEMA
name = shared.name
integer = shared.integer
boolean = shared.boolean
policy = shared.policy
_is_int = shared.is_int


def text(field: str, value: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f'must be a string ({what}), got {type(value).__name__}')
    if not pattern.match(value):
        shown = value if len(value) <= 64 else value[:61] + '...'
        raise InvalidInput(field, f'{shown!r} is not {what}')
    return value


def host(field: str, value: Any) -> str:
    return text(field, value, HOST_RE, 'a host name')


def migration_id(field: str, value: Any) -> str:
    return text(field, value, MIGRATION_ID_RE,
                'a migration id (letters, digits, _.:-, at most 128)')


def uuid(field: str, value: Any, allow_empty: bool = False) -> Optional[str]:
    if allow_empty and (value is None or value == ''):
        return None
    return text(field, value, UUID_RE, 'a UUID').lower()


def number(field: str, value: Any, lo: float, hi: float) -> float:
    """A finite number from ``lo`` to ``hi``, both included."""
    return shared.number(field, value, lo, hi)


def cpu_list(field: str, value: Any, allowed: Optional[set[int]] = None) -> tuple[int, ...]:
    """A Linux CPU list, every CPU inside ``allowed`` (this host's topology)."""
    if not isinstance(value, str) or len(value) > 1024:
        raise InvalidInput(field, 'must be a CPU list string such as "0-3,8" (at most 1024 '
                                  'characters)')
    try:
        cpus = objects.parse_cpu_list(value)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None
    if cpus[-1] > MAX_CPU_ID:
        raise InvalidInput(field, f'CPU {cpus[-1]} is above {MAX_CPU_ID}')
    if allowed is not None:
        outside = sorted(set(cpus) - allowed)
        if outside:
            raise InvalidInput(field, f'CPUs {objects.format_cpu_list(outside)} are not in '
                                      f'this host\'s topology '
                                      f'({objects.format_cpu_list(allowed) or "none"})')
    return cpus


def node_id(field: str, value: Any, node_ids: list[int]) -> Optional[int]:
    if value is None:
        return None
    if not _is_int(value):
        raise InvalidInput(field, f'must be a NUMA node id (integer) or null, got '
                                  f'{type(value).__name__}')
    if value not in node_ids:
        raise InvalidInput(field, f'node {value} does not exist here (nodes: '
                                  f'{", ".join(map(str, node_ids)) or "none"})')
    return value


def _netloc_ok(parsed) -> bool:
    try:
        hostname, port = parsed.hostname, parsed.port
    except ValueError:
        return False
    if parsed.username or parsed.password:
        return False
    if hostname is not None and not (HOST_RE.match(hostname) or _is_ipv6(hostname)):
        return False
    return port is None or 1 <= port <= 65535


def _is_ipv6(value: str) -> bool:
    return bool(re.match(r'^[0-9a-fA-F:.]{2,45}$', value)) and ':' in value


def libvirt_uri(field: str, value: Any) -> str:
    """A libvirt URI the source's libvirtd may connect to (peer-to-peer)."""
    if not isinstance(value, str) or not 0 < len(value) <= 512 or \
            any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidInput(field, 'must be a libvirt URI such as qemu+tcp://10.0.0.2/system')
    parsed = urlparse(value)
    if parsed.scheme not in LIBVIRT_SCHEMES:
        raise InvalidInput(field, f'scheme {parsed.scheme!r} is not one of '
                                  f'{", ".join(LIBVIRT_SCHEMES)}')
    if parsed.query or parsed.fragment or parsed.params:
        raise InvalidInput(field, 'must not carry a query or fragment')
    if not _netloc_ok(parsed):
        raise InvalidInput(field, 'has a bad host or port')
    if parsed.scheme.startswith('qemu') and parsed.path not in ('/system', '/session'):
        raise InvalidInput(field, 'path must be /system or /session')
    if parsed.scheme == 'test' and not re.match(r'^/[A-Za-z0-9_.-]{0,64}$', parsed.path or '/'):
        raise InvalidInput(field, 'bad test driver path')
    return value


def migrate_uri(field: str, value: Any) -> Optional[str]:
    """Where QEMU sends the migration stream: tcp://ADDRESS[:PORT]."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 300 or \
            any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidInput(field, 'must be a URI such as tcp://10.0.0.2 or null')
    parsed = urlparse(value)
    if parsed.scheme not in MIGRATE_SCHEMES:
        raise InvalidInput(field, f'scheme must be one of {", ".join(MIGRATE_SCHEMES)}')
    if parsed.path not in ('', '/') or parsed.query or parsed.fragment or \
            not parsed.hostname or not _netloc_ok(parsed):
        raise InvalidInput(field, 'must be tcp://ADDRESS[:PORT]')
    return value


def known_peer(peers: dict, dest_host: str, dest_uri: str, migrate_uri: Optional[str]) -> None:
    """The destination must be a peer of this host's configuration
    (``[agent] peers``, NAME:ADDRESS) and both URIs must name that peer
    (by its name or its address): the request comes over the bus, and a
    URI of the caller's choosing would send the guest's memory anywhere.
    The peer list is this agent's own: a list sent over the bus would be
    as forgeable as the request."""
    if dest_host not in peers:
        known = ', '.join(sorted(peers)[:8]) or 'none: [agent] peers is empty'
        raise InvalidInput('dest_host', f'{dest_host!r} is not a known peer of this host '
                                        f'([agent] peers: {known})')
    allowed = {dest_host.lower(), str(peers[dest_host]).strip('[]').lower()}
    for field, value in (('dest_uri', dest_uri), ('migrate_uri', migrate_uri)):
        if value is None:
            continue
        hostname = urlparse(value).hostname
        if hostname is None or hostname.lower() not in allowed:
            raise InvalidInput(field, f'{value!r} does not name peer {dest_host} '
                                      f'({" or ".join(sorted(allowed))})')


def path(field: str, value: Any) -> str:
    value = text(field, value, PATH_RE, 'an absolute path')
    if '/../' in value + '/' or '/./' in value + '/' or '//' in value:
        raise InvalidInput(field, 'must be a normalized absolute path')
    return value


def guest_dict(field: str, value: Any) -> dict:
    """The guest dict a source agent reported (only the fields used here
    are checked and kept)."""
    if not isinstance(value, dict):
        raise InvalidInput(field, f'must be a dict, got {type(value).__name__}')
    if 'name' not in value:
        raise InvalidInput(f'{field}.name', 'is required')
    if 'memory_mib' not in value:
        raise InvalidInput(f'{field}.memory_mib', 'is required')
    out: dict[str, Any] = {
        'name': name(f'{field}.name', value['name']),
        'memory_mib': integer(f'{field}.memory_mib', value['memory_mib'], 0, MAX_MEMORY_MIB),
        'vcpus': integer(f'{field}.vcpus', value.get('vcpus', 1), 1, 4096),
        'uuid': uuid(f'{field}.uuid', value.get('uuid'), allow_empty=True),
        'cpu_model': None, 'cpu_mode': None, 'disks': [],
    }
    if value.get('cpu_model') is not None:
        out['cpu_model'] = text(f'{field}.cpu_model', value['cpu_model'], CPU_MODEL_RE,
                                'a CPU model name')
    if value.get('cpu_mode') is not None:
        mode = value['cpu_mode']
        if mode not in ('custom', 'host-model', 'host-passthrough', 'maximum'):
            raise InvalidInput(f'{field}.cpu_mode', 'is not a libvirt CPU mode')
        out['cpu_mode'] = mode
    disks = value.get('disks') or []
    if not isinstance(disks, list) or len(disks) > 64:
        raise InvalidInput(f'{field}.disks', 'must be a list of at most 64 disks')
    for i, disk in enumerate(disks):
        sub = f'{field}.disks[{i}]'
        if not isinstance(disk, dict):
            raise InvalidInput(sub, 'must be a dict')
        shared = disk.get('shared', True)
        boolean(f'{sub}.shared', shared)
        entry = {'shared': shared, 'path': None, 'capacity_mib': None, 'format': None}
        if disk.get('path') is not None:
            entry['path'] = path(f'{sub}.path', disk['path'])
        if disk.get('capacity_mib') is not None:
            entry['capacity_mib'] = number(f'{sub}.capacity_mib', disk['capacity_mib'], 0,
                                           1024.0 ** 3)
        if disk.get('format') is not None:
            entry['format'] = text(f'{sub}.format', disk['format'],
                                   re.compile(r'^[a-z0-9]{1,16}$'), 'a disk format')
        out['disks'].append(entry)
    return out


def cpu_model(field: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    return text(field, value, CPU_MODEL_RE, 'a CPU model name')
