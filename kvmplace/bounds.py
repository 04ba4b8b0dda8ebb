"""Size limits on whatever arrives from the bus, checked before it is used.

Anyone who can publish on the message bus reaches the agents' and the
conductor's RPC methods; a request's cost must therefore be bounded by
its size, and its size bounded before anything is expanded or stored.
Two findings of the review (issue 16) showed why: a 1 KiB ``cpus``
argument (many wide ranges, e.g. ``0-65535,0-65535,...``) cost 326 MiB
and half a second before it was refused, because each range was
expanded into a set of integers before the limit was checked; and a
6.8 KB host report (NUMA nodes with such CPU lists) cost 2.3 GB and
4.3 s and was stored.

So here:

* :func:`cpu_ranges` reads a Linux CPU list into ``(first, last)``
  ranges and counts the CPUs they name *before* any range is expanded:
  too long a string, too many items, a CPU id above :data:`MAX_CPU_ID`
  or more than :data:`MAX_CPUS` CPUs in all is refused at a cost linear
  in the string (itself capped at :data:`MAX_CPU_LIST_CHARS`).
* :func:`plain` walks an RPC argument or a report once, iteratively,
  with a budget: only plain JSON data (dict with string keys, list,
  str, int, float, bool, None), at most :data:`MAX_DEPTH` levels, at
  most ``max_items`` values in all and no string longer than
  ``max_str_chars``. It stops at the first value over budget, so its
  cost is bounded by the budget, not by the input.

The figures are far above anything a real host has (Linux's NR_CPUS
limit is 8192; a host with 10,000 guests is not a host) and far below
what hurts a process.
"""
from __future__ import annotations

from typing import Any

from kvmplace.exception import InvalidInput

#: Largest CPU id accepted anywhere (Linux's NR_CPUS maximum is 8192).
MAX_CPU_ID = 8191
#: Most CPUs one list may name, counted before expansion.
MAX_CPUS = MAX_CPU_ID + 1
#: Longest CPU list string ("0-8191" needs 6; every CPU listed singly ~40 KB).
MAX_CPU_LIST_CHARS = 65536

#: Nesting limit of any RPC argument or report.
MAX_DEPTH = 12
#: Budget of one RPC argument (a guest dict, a policy, a CPU list).
ARGUMENT_ITEMS = 20_000
ARGUMENT_STR_CHARS = 65536
#: Budget of one host report: 4096 guests x ~40 fields with their disks fit.
REPORT_ITEMS = 400_000
REPORT_STR_CHARS = 65536
#: Most NUMA nodes, guests and disks a host report may list.
MAX_NUMA_NODES = 1024
MAX_GUESTS = 4096
MAX_DISKS_PER_GUEST = 256

_SCALARS = (str, int, float, bool, type(None))


def cpu_ranges(text: Any) -> list[tuple[int, int]]:
    """The ranges of a Linux CPU list ("0-3,8,10-11"), counted and bounded
    before expansion. Raises ValueError with a short reason; callers add
    the field name (as for :func:`kvmplace.objects.parse_cpu_list`)."""
    if not isinstance(text, str):
        raise ValueError('must be a CPU list string such as "0-3,8"')
    if len(text) > MAX_CPU_LIST_CHARS:
        raise ValueError(f'is longer than {MAX_CPU_LIST_CHARS} characters')
    stripped = text.strip()
    if not stripped:
        raise ValueError('is empty')
    ranges: list[tuple[int, int]] = []
    count = 0
    for part in stripped.split(','):
        part = part.strip()
        if not part:
            raise ValueError(f'has an empty item in "{_short(text)}"')
        lo_s, dash, hi_s = part.partition('-')
        if not dash:
            hi_s = lo_s
        # str.isdigit accepts other scripts' digits ("٣"); int() of a
        # 5000-digit string is itself slow: ASCII digits, at most 5.
        if not (_digits(lo_s) and _digits(hi_s)):
            raise ValueError(f'has a bad {"range" if dash else "CPU id"} "{_short(part)}"')
        lo, hi = int(lo_s), int(hi_s)
        if lo > hi:
            raise ValueError(f'has a descending range "{part}"')
        if hi > MAX_CPU_ID:
            raise ValueError(f'names CPU {hi}, above {MAX_CPU_ID}')
        count += hi - lo + 1
        if count > MAX_CPUS:
            raise ValueError(f'names more than {MAX_CPUS} CPUs')
        ranges.append((lo, hi))
    return ranges


def _digits(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + '...'


def plain(field: str, value: Any, *, max_items: int = ARGUMENT_ITEMS,
          max_str_chars: int = ARGUMENT_STR_CHARS, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` if it is plain JSON data within the budget, else
    InvalidInput naming ``field`` (and where inside it the problem is).

    Containers are counted by their length before their contents are
    looked at, and only containers are queued; where a value sits is
    spelt out only for the error (one walk of 20,000 values takes a few
    milliseconds)."""
    if not isinstance(value, (dict, list, tuple)):
        _scalar(field, value, max_str_chars)
        return value
    items = 0
    stack: list[tuple[Any, Any, int]] = [((field,), value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if depth >= max_depth:
            raise InvalidInput(_where(where), f'is nested deeper than {max_depth} levels')
        items += len(item)
        if items > max_items:
            raise InvalidInput(field, f'holds more than {max_items} values')
        is_dict = isinstance(item, dict)
        for key, sub in (item.items() if is_dict else enumerate(item)):
            if is_dict and (not isinstance(key, str) or len(key) > 255):
                raise InvalidInput(_where(where), 'has a key that is not a string of at '
                                                  'most 255 characters')
            if isinstance(sub, (dict, list, tuple)):
                stack.append(((where, key), sub, depth + 1))
            elif not (isinstance(sub, (int, float, bool)) or sub is None or
                      (isinstance(sub, str) and len(sub) <= max_str_chars)):
                _scalar(_where((where, key)), sub, max_str_chars)
    return value


def _scalar(where: str, value: Any, max_str_chars: int) -> None:
    if isinstance(value, str):
        if len(value) > max_str_chars:
            raise InvalidInput(where, f'is a string longer than {max_str_chars} characters')
    elif not isinstance(value, _SCALARS):
        raise InvalidInput(where, f'is of type {type(value).__name__}, not plain data')


def _where(where: tuple) -> str:
    """("field",) / ((parent, key)) -> "field.key[3]" for an error."""
    keys = []
    while len(where) == 2:
        where, key = where
        keys.append(f'[{key}]' if isinstance(key, int) else f'.{key}')
    return where[0] + ''.join(reversed(keys))


def report(field: str, value: Any) -> Any:
    """A host report (report_state), within the report budget."""
    return plain(field, value, max_items=REPORT_ITEMS, max_str_chars=REPORT_STR_CHARS)


def length(field: str, value: Any, most: int, what: str = 'items') -> Any:
    """A list of at most ``most`` entries (None passes)."""
    if value is not None and isinstance(value, (list, tuple, dict)) and len(value) > most:
        raise InvalidInput(field, f'has {len(value)} {what}, more than {most}')
    return value
