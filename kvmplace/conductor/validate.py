"""Validation of RPC arguments at the conductor's boundary.

RPC arguments come from other processes (the CLI, a cloud scheduler, the
agents); each is checked for type and range before it touches the
database or a workflow, and a bad one raises InvalidInput naming the
argument, which oslo.messaging re-raises at the caller.

The checks the agent makes too (names, numbers, the policy) are
kvmplace.validation's, shared; this module adds the conductor's own: the
agents' reports and casts, migration ids, statuses.
"""
from __future__ import annotations

import math
import re
import uuid as uuidlib
from typing import Any, Optional

from kvmplace import bounds
from kvmplace import names as names_mod
from kvmplace import objects
from kvmplace import validation as shared
from kvmplace.exception import InvalidInput
from kvmplace.status import ACTIVE_FILTER, DrainStatus, MigrationStatus

_IDENT = re.compile(r'[0-9a-fA-F-]{4,36}')
#: Numbers no real host, guest or migration comes near (2**53: exact in JSON).
_BIG = float(2 ** 53)

name = shared.name
integer = shared.integer
boolean = shared.boolean
_show = shared.show


def names(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or len(value) > 10000:
        raise InvalidInput(field, f'must be a list of names, not {_show(value)}')
    return [name(f'{field}[{i}]', item) for i, item in enumerate(value)]


def uuid(field: str, value: Any) -> str:
    try:
        return str(uuidlib.UUID(str(value))) if isinstance(value, str) else _bad(field, value)
    except ValueError:
        raise InvalidInput(field, f'must be a UUID, not {_show(value)}') from None


def ident(field: str, value: Any) -> str:
    """A migration id or an unambiguous prefix of one."""
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise InvalidInput(field, f'must be a migration id (or its first characters), '
                           f'not {_show(value)}')
    return value.lower()


def status(field: str, value: Any) -> str:
    """A migration status, or ``active`` (every unfinished one)."""
    return shared.choice(field, value, (*MigrationStatus, ACTIVE_FILTER))


def drain_status(field: str, value: Any) -> str:
    return shared.choice(field, value, tuple(DrainStatus))


def number(field: str, value: Any, lo: float, hi: float) -> float:
    """A number above ``lo`` (excluded) up to ``hi``: a ratio such as the
    rebalance threshold, where ``lo`` itself means nothing to do."""
    return shared.number(field, value, lo, hi, above=True)


def policy_dict(value: Any) -> dict:
    """The policy as it is stored and sent to the agent: every key of
    kvmplace.validation.POLICY_SCHEMA the request set."""
    if isinstance(value, objects.Policy):
        value = value.to_dict()
    return shared.policy('policy', value)


def policy(value: Any) -> objects.Policy:
    """The policy as the scheduler reads it (the keys it models)."""
    return objects.Policy.from_dict(policy_dict(value))


def text(field: str, value: Any, max_len: int = 255) -> Optional[str]:
    """Free text for the operator (a reason): a string or null.

    No NUL character: PostgreSQL cannot store one in a text column (its
    driver raises ValueError, not a database error), so it is refused here,
    on every back end alike."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or '\x00' in value:
        raise InvalidInput(field, f'must be text of at most {max_len} characters '
                                  f'without NUL, not {_show(value)}')
    return value


def _num(field: str, value: Any, lo: float = 0.0, hi: float = _BIG, *,
         above: bool = False, whole: bool = False, optional: bool = True):
    """A finite number in [lo, hi] (or (lo, hi] with ``above``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < lo or value > hi or (above and value == lo) \
            or (whole and float(value) != int(value)):
        what = 'a whole number' if whole else 'a number'
        raise InvalidInput(field, f'must be {what} from {lo:g} to {hi:g}'
                                  f'{" (exclusive)" if above else ""}, not {_show(value)}')
    return value


def _dict(field: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(field, f'must be an object, not {_show(value)}')
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(field, f'has a key that is not a string: {_show(key)}')
    return value


def _label(field: str, value: Any, max_len: int = 255) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(field, f'must be a non-empty string of at most {max_len} '
                                  f'characters, not {_show(value)}')
    return value


#: Fields the scheduler reads whose dataclass default is not None (Host,
#: NumaNode, Instance): an explicit null is dropped so the default applies.
_HOST_DEFAULTED = ('link_mbps', 'enabled', 'maintenance', 'vcpus_used', 'memory_used_mib')
_NODE_DEFAULTED = ('memory_mib', 'free_memory_mib')
_GUEST_DEFAULTED = ('vcpus', 'dirty_rate_mibps', 'disk_gib', 'shared_storage')


def _without_nulls(value: dict, keys: tuple) -> dict:
    return {k: v for k, v in value.items() if not (v is None and k in keys)}


def host_state(value: Any) -> dict:
    """An agent's host report, checked before it is stored.

    Every later scheduling decision reads the stored reports: one report
    with a string where a number belongs would make every select, migrate
    and drain fail until that host reported again (found by fuzzing,
    tests/unit/conductor/test_rpc_fuzz.py). So the fields the scheduler
    and the workflow read are type-checked here; other fields (the agent's
    extras: libvirt_uri, disks, pids...) pass through. Deliberately lenient
    about guest names (libvirt allows more than the RPC name pattern):
    any non-empty string without control characters
    (:mod:`kvmplace.names`).

    Sized first (:mod:`kvmplace.bounds`): the whole report walked once
    within a budget, list lengths capped and CPU lists counted before
    they are expanded - a 6.8 KB report once cost 2.3 GB and was stored.
    The host's name must not be the implicit switch's (``switch``): such
    a host became that switch in the topology graph.
    """
    bounds.report('host_state', value)
    state = _without_nulls(_dict('host_state', value), _HOST_DEFAULTED)
    name('host_state.name', state.get('name'))
    names_mod.check_host_name('host_state.name', state['name'])
    bounds.length('host_state.numa', state.get('numa'), bounds.MAX_NUMA_NODES, 'NUMA nodes')
    bounds.length('host_state.instances', state.get('instances'), bounds.MAX_GUESTS, 'guests')
    for key in ('vcpus', 'memory_mib'):
        _num(f'host_state.{key}', state.get(key), above=True, optional=False)
    for key in ('vcpus_used', 'memory_used_mib'):
        _num(f'host_state.{key}', state.get(key))
    _num('host_state.link_mbps', state.get('link_mbps'), hi=1e7, above=True)
    for key in ('enabled', 'maintenance'):
        if state.get(key) is not None:
            boolean(f'host_state.{key}', state[key])
    _label('host_state.cpu_model', state.get('cpu_model'))
    nodes = state.get('numa') or []
    if not isinstance(nodes, list):
        raise InvalidInput('host_state.numa', f'must be a list, not {_show(nodes)}')
    clean_nodes = []
    for i, node in enumerate(nodes):
        at = f'host_state.numa[{i}]'
        node = _without_nulls(_dict(at, node), _NODE_DEFAULTED)
        clean_nodes.append(node)
        _num(f'{at}.id', node.get('id'), hi=4095, whole=True, optional=False)
        try:
            objects.parse_cpu_list(node.get('cpus'))  # type: ignore[arg-type]  # checks it
        except ValueError as exc:
            raise InvalidInput(f'{at}.cpus', str(exc)) from None
        for key in ('memory_mib', 'free_memory_mib', 'bandwidth_mibps', 'baseline_mibps'):
            _num(f'{at}.{key}', node.get(key))
    guests = state.get('instances') or []
    if not isinstance(guests, list):
        raise InvalidInput('host_state.instances', f'must be a list, not {_show(guests)}')
    clean = []
    for i, guest in enumerate(guests):
        at = f'host_state.instances[{i}]'
        guest = _without_nulls(_dict(at, guest), _GUEST_DEFAULTED)
        if guest.get('name') is None:
            raise InvalidInput(f'{at}.name', 'is required')
        names_mod.check_name(f'{at}.name', guest['name'])
        bounds.length(f'{at}.disks', guest.get('disks'), bounds.MAX_DISKS_PER_GUEST, 'disks')
        _num(f'{at}.memory_mib', guest.get('memory_mib'), optional=False)
        _num(f'{at}.vcpus', guest.get('vcpus'), whole=True)
        for key in ('dirty_rate_mibps', 'disk_gib'):
            _num(f'{at}.{key}', guest.get(key))
        _num(f'{at}.emulator_node', guest.get('emulator_node'), hi=4095, whole=True)
        for key in ('shared_storage', 'incoming'):
            if guest.get(key) is not None:
                boolean(f'{at}.{key}', guest[key])
        for key in ('uuid', 'cpu_model', 'state'):
            _label(f'{at}.{key}', guest.get(key))
        clean.append(guest)
    if 'numa' in state:
        state['numa'] = clean_nodes
    if 'instances' in state:
        state['instances'] = clean
    return state


#: Numeric fields of a progress cast that the conductor and the CLI read.
_PROGRESS_NUMBERS = ('remaining_mib', 'total_mib', 'processed_mib', 'mibps', 'eta_seconds',
                     'dirty_rate_mibps', 'iteration', 'elapsed_seconds', 'disk_remaining_mib',
                     'disk_total_mib', 'at', 'downtime_limit_ms')
_RESULT_NUMBERS = ('elapsed_seconds', 'job_seconds', 'downtime_ms', 'data_mib', 'mibps',
                   'iterations', 'disk_mib', 'memory_mib', 'started_at', 'finished_at',
                   'downtime_limit_ms')


def progress(value: Any) -> dict:
    """A migration_progress cast's payload (drawn by the CLI, read by the
    drain's re-planning): the numbers must be numbers."""
    data = dict(_dict('progress', value))
    _label('progress.phase', data.get('phase'), 64)
    for key in _PROGRESS_NUMBERS:
        _num(f'progress.{key}', data.get(key), lo=-_BIG)
    return data


def result(value: Any) -> dict:
    """A migration_finished cast's payload: what the workflow decides on."""
    data = dict(_dict('result', value))
    _label('result.status', data.get('status'), 32)
    if data.get('status') is None:
        raise InvalidInput('result.status', 'is required')
    text('result.error', data.get('error'), 4096)
    for key in _RESULT_NUMBERS:
        _num(f'result.{key}', data.get(key), lo=-_BIG)
    if data.get('guest') is not None:
        guest = _dict('result.guest', data['guest'])
        for key in ('memory_mib', 'vcpus'):
            _num(f'result.guest.{key}', guest.get(key), whole=True)
        _label('result.guest.uuid', guest.get('uuid'))
    return data


def _bad(field: str, value: Any):
    raise InvalidInput(field, f'must be a UUID, not {_show(value)}')
