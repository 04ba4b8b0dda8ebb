"""Validation of RPC arguments at the conductor's boundary.

RPC arguments come from other processes (the CLI, a cloud scheduler, the
agents); each is checked for type and range before it touches the
database or a workflow, and a bad one raises InvalidInput naming the
argument, which oslo.messaging re-raises at the caller.
"""
from __future__ import annotations

import math
import re
import uuid as uuidlib
from typing import Any, Optional

from kvmplace import objects
from kvmplace.conductor.db.api import ACTIVE_STATUSES, FINAL_STATUSES
from kvmplace.exception import InvalidInput

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}$')
_IDENT = re.compile(r'^[0-9a-fA-F-]{4,36}$')
_POLICY_KEYS = {'max_downtime_ms', 'bandwidth_cap_mibps', 'allow_auto_converge',
                'allow_post_copy'}


def name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(field, f'must be a host or guest name (letters, digits, ._:@+-), '
                           f'not {_show(value)}')
    return value


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
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidInput(field, f'must be a migration id (or its first characters), '
                           f'not {_show(value)}')
    return value.lower()


def status(field: str, value: Any) -> str:
    allowed = set(ACTIVE_STATUSES) | set(FINAL_STATUSES) | {'active'}
    if value not in allowed:
        raise InvalidInput(field, f'must be one of {", ".join(sorted(allowed))}, '
                           f'not {_show(value)}')
    return value


def integer(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(field, f'must be a whole number from {lo} to {hi}, not {_show(value)}')
    return value


def number(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not lo < value <= hi:
        raise InvalidInput(field, f'must be a number above {lo:g} and at most {hi:g}, '
                           f'not {_show(value)}')
    return float(value)


def policy(value: Optional[dict]) -> objects.Policy:
    if value is None:
        return objects.Policy()
    if isinstance(value, objects.Policy):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise InvalidInput('policy', f'must be an object, not {_show(value)}')
    for key in value:
        if key not in _POLICY_KEYS:
            raise InvalidInput(f'policy.{key}', 'unknown policy field')
    out = objects.Policy()
    if value.get('max_downtime_ms') is not None:
        out.max_downtime_ms = integer('policy.max_downtime_ms', value['max_downtime_ms'],
                                      1, 600000)
    if value.get('bandwidth_cap_mibps') is not None:
        out.bandwidth_cap_mibps = number('policy.bandwidth_cap_mibps',
                                         value['bandwidth_cap_mibps'], 0, 1e6)
    for key in ('allow_auto_converge', 'allow_post_copy'):
        if value.get(key) is not None:
            if not isinstance(value[key], bool):
                raise InvalidInput(f'policy.{key}', f'must be true or false, not '
                                   f'{_show(value[key])}')
            setattr(out, key, value[key])
    return out


def _bad(field: str, value: Any):
    raise InvalidInput(field, f'must be a UUID, not {_show(value)}')


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'
