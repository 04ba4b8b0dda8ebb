"""Checks shared by every RPC boundary: the conductor's and the agent's.

A guest's name, a whole number in a range, a true/false and the migration
policy mean the same at both ends of the bus, so they are defined once,
here: kvmplace.conductor.validate and kvmplace.agent.validation build on
this module and add only what is theirs (host reports and agent casts;
CPU lists, libvirt URIs, disk paths). Before, the two disagreed on the
longest name (255 vs 200 characters), on the policy's keys (4 vs 8: the
conductor refused a timeout_action the agent understood) and on whether
a bandwidth cap of 0 ("no cap") was allowed.

Every check raises InvalidInput(field, problem) naming the argument; a
value that passes is returned (converted where the type is loose: a
number is a float).
"""
from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from typing import Any, Optional

from kvmplace.conf.agent import NON_SHARED_DISK_MODES, TIMEOUT_ACTIONS
from kvmplace.exception import InvalidInput

#: Longest host or guest name: the database's name columns (String(255)).
NAME_MAX = 255
#: Matched with fullmatch: ``$`` would also accept a trailing newline.
NAME_RE = re.compile(rf'[A-Za-z0-9][A-Za-z0-9._:@+-]{{0,{NAME_MAX - 1}}}')


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60
_REPR.maxlong = 40


def show(value: Any) -> str:
    """A value as an error message shows it: repr, at most 60 characters.

    Made with reprlib's limits, not ``repr()`` then cut: the repr of a
    refused million-item list would cost what refusing it was to save."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def is_int(value: Any) -> bool:
    """A real int: ``True`` is an int to Python, not to an RPC argument."""
    return isinstance(value, int) and not isinstance(value, bool)


def name(field: str, value: Any) -> str:
    """A host or guest name: letters, digits, ``._:@+-``, at most NAME_MAX."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(field, f'must be a host or guest name (letters, digits, ._:@+-, '
                                  f'at most {NAME_MAX}), not {show(value)}')
    return value


def integer(field: str, value: Any, lo: int, hi: int) -> int:
    """A whole number from ``lo`` to ``hi``, both included."""
    if not is_int(value) or not lo <= value <= hi:
        raise InvalidInput(field, f'must be a whole number from {lo} to {hi}, not {show(value)}')
    return value


def number(field: str, value: Any, lo: float, hi: float, *, above: bool = False) -> float:
    """A finite number from ``lo`` to ``hi``, both included - or, with
    ``above``, strictly above ``lo`` (a rate or a ratio that cannot be 0)."""
    ok = (is_int(value) or isinstance(value, float)) and math.isfinite(value) and \
        (lo < value if above else lo <= value) and value <= hi
    if not ok:
        low = f'above {lo:g}' if above else f'from {lo:g}'
        raise InvalidInput(field, f'must be a number {low} up to {hi:g}, not {show(value)}')
    return float(value)


def boolean(field: str, value: Any) -> bool:
    """A real true/false: ``bool("no")`` is True, and a malformed flag
    (dry_run) must not turn into the opposite of what was meant."""
    if not isinstance(value, bool):
        raise InvalidInput(field, f'must be true or false, not {show(value)}')
    return value


def choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(field, f'must be one of {", ".join(choices)}, not {show(value)}')
    return value


# -- the migration policy ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PolicyKey:
    """One key of the migration policy: its type, bounds and meaning."""

    kind: str                       # 'int', 'number', 'bool' or 'choice'
    doc: str
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()

    def check(self, field: str, value: Any) -> Any:
        if self.kind == 'int':
            return integer(field, value, int(self.lo), int(self.hi))
        if self.kind == 'number':
            return number(field, value, self.lo, self.hi)
        if self.kind == 'bool':
            return boolean(field, value)
        return choice(field, value, self.choices)


#: The policy a migration request may carry: the one definition of its keys
#: and bounds. The scheduler reads the first four (objects.Policy); the
#: agent all of them. A null value means "as configured".
POLICY_SCHEMA: dict[str, PolicyKey] = {
    'max_downtime_ms': PolicyKey('int', 'largest pause at switch-over', 1, 600000),
    'bandwidth_cap_mibps': PolicyKey('number', 'cap on this migration, 0 = none', 0, 1e6),
    'allow_auto_converge': PolicyKey('bool', 'throttle the guest if it does not converge'),
    'allow_post_copy': PolicyKey('bool', 'enable post-copy (used by timeout_action '
                                         '"post-copy")'),
    'completion_timeout_seconds_per_gib': PolicyKey('int', 'overrides [agent]', 1, 100000),
    'progress_timeout_seconds': PolicyKey('int', 'overrides [agent]', 1, 86400),
    'timeout_action': PolicyKey('choice', 'overrides [agent]', choices=TIMEOUT_ACTIONS),
    'non_shared_disk_mode': PolicyKey('choice', 'overrides [agent]',
                                      choices=NON_SHARED_DISK_MODES),
}


def policy(field: str, value: Any) -> dict[str, Any]:
    """A migration policy: known keys only, each typed and bounded; null
    values are dropped (they mean "as configured")."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(field, f'must be an object, not {show(value)}')
    out: dict[str, Any] = {}
    for key, val in value.items():
        spec: Optional[PolicyKey] = POLICY_SCHEMA.get(key) if isinstance(key, str) else None
        if spec is None:
            # A plain key as it is; anything else (a newline, a control
            # character, a long key) as its bounded repr: one line always.
            shown = key if isinstance(key, str) and len(key) < 64 and key.isprintable() \
                and key.strip() == key and key else show(key)
            raise InvalidInput(f'{field}.{shown}', 'unknown policy key; known: ' +
                               ', '.join(sorted(POLICY_SCHEMA)))
        if val is not None:
            out[key] = spec.check(f'{field}.{key}', val)
    return out
