"""Write a big answer as JSON without building it twice in memory.

``select`` on 100,000 hosts answers with some 70,000 ranked hosts, each
with its weighers and estimate: 80 MB of indented JSON. Converting the
answer to plain JSON types in one piece (dumps, loads, replace non-finite
floats, dumps again with indentation) held three copies of it: 1.2 GB and
8 s on top of the ranking. Here the top-level object is written key by
key and its lists element by element, each element converted and encoded
on its own (with the C encoder: one line per element), so memory stays at
what the answer itself holds. The content is what ``json.loads`` of the
one-piece output gives; only the layout inside elements differs.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional, TextIO

from kvmplace import objects


def _plain(value: Any, default: Optional[Callable[[Any], Any]]) -> Any:
    """``objects.plain`` after the conversions json.dumps(default=...) makes:
    tuples to lists, ``default`` for what JSON cannot hold."""
    if isinstance(value, float):
        return objects.plain(value)
    if isinstance(value, dict):
        return {k: _plain(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, default) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if default is None:
        raise TypeError(f'{type(value).__name__} is not JSON serializable')
    return _plain(default(value), default)


def _encode(value: Any, default: Optional[Callable[[Any], Any]]) -> str:
    try:
        # The C encoder makes what _plain then dumps would, in one pass, for
        # every value without a non-finite float (ValueError), which is all
        # but unreachable hosts: only those take the copy that nulls them.
        return json.dumps(value, allow_nan=False, default=default)
    except ValueError:
        return json.dumps(_plain(value, default), allow_nan=False)


def write_json(data: Any, out: TextIO, default: Optional[Callable[[Any], Any]] = None) -> None:
    """Write ``data`` to ``out`` as JSON, streamed (see the module doc).

    A dict at the top is written one key per line; a list value (or a list
    at the top) one element per line. Raises ValueError/TypeError like
    json.dumps for what JSON cannot hold.
    """
    if isinstance(data, (list, tuple)):
        _write_list(data, out, default, '')
        out.write('\n')
        return
    if not isinstance(data, dict):
        out.write(_encode(data, default) + '\n')
        return
    if not data:
        out.write('{}\n')
        return
    out.write('{\n')
    last = len(data) - 1
    for i, (key, value) in enumerate(data.items()):
        out.write(f'  {json.dumps({key: 0})[1:-4]}: ')
        if isinstance(value, (list, tuple)):
            _write_list(value, out, default, '  ')
        else:
            out.write(_encode(value, default))
        out.write(',\n' if i < last else '\n')
    out.write('}\n')


def _write_list(items, out: TextIO, default, indent: str) -> None:
    if not items:
        out.write('[]')
        return
    out.write('[\n')
    last = len(items) - 1
    for i, item in enumerate(items):
        out.write(f'{indent}  {_encode(item, default)}{"," if i < last else ""}\n')
    out.write(f'{indent}]')
