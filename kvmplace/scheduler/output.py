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

Even the C encoder took 15 microseconds a ranked host (their floats'
repr above all): 1.5 s of the 100,000-host answer. So list elements are
first encoded by orjson, a chunk at a time, and its text is used when it
can be shown to be exactly json.dumps's once the spaces after ``,`` and
``:`` are added (:func:`_quick_lines`); any other chunk takes json.dumps
as before. The bytes written are the same either way.

A scheduler ranking kept as columns (:class:`~kvmplace.scheduler.ranked.
RankedHosts`, what ``select -f json`` asks for) writes its own lines from
them, the same bytes again, without a dict per host.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional, Sequence, TextIO

import orjson

from kvmplace import objects
from kvmplace.scheduler.ranked import RankedHosts

#: List elements encoded by orjson at a time (a few hundred KiB of text).
_CHUNK = 2048
#: What orjson would write its own way (str/int/dict/list subclasses,
#: dataclasses, dates) goes to _refuse instead, and so json.dumps's way.
_ORJSON_OPTIONS = (orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_DATETIME)


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
    if isinstance(data, (list, tuple, RankedHosts)):
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
        if isinstance(value, (list, tuple, RankedHosts)):
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
    if isinstance(items, RankedHosts):
        # Its lines straight from its columns, the same text (ranked's doc).
        items.write_json_lines(out, indent + '  ')
        out.write(f'\n{indent}]')
        return
    last = len(items) - 1
    prefix = indent + '  '
    for start in range(0, len(items), _CHUNK):
        chunk = items[start:start + _CHUNK]
        final = start + len(chunk) > last
        quick = _quick_lines(chunk, prefix)
        if quick is not None:
            out.write(quick + ('\n' if final else ',\n'))
            continue
        for i, item in enumerate(chunk, start):
            out.write(f'{prefix}{_encode(item, default)}{"," if i < last else ""}\n')
    out.write(f'{indent}]')


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _quick_lines(items: Sequence[Any], prefix: str) -> Optional[str]:
    """The lines of ``items`` as _encode makes them (``prefix``, the element,
    ``,`` between lines, no newline at the end), from orjson's text, or None
    when that cannot be shown to be the same.

    orjson writes what json.dumps(allow_nan=False) writes, less the space
    after each ``,`` and ``:``, when: every value is a plain str, int,
    float, bool, None, dict (str keys), list or tuple (anything else goes
    to _refuse: the chunk is refused); the text is ASCII without a
    backslash or DEL (json.dumps escapes DEL and non-ASCII, orjson does
    not; without escapes every ``"`` opens or closes a string); and no number is written
    in exponent form or as ``0.0000...`` (json.dumps writes ``1e-05``,
    orjson ``0.00001``): a digit, ``e`` or ``E`` and a sign, or ``0.0000``,
    anywhere (in a string too, to be quick) refuses the chunk.
    A non-finite float is null in both (the _plain copy nulls it). orjson
    refuses what json.dumps refuses (ints beyond 64 bits, keys that are not
    text: the chunk is refused) except an Enum or UUID, which no answer
    holds (plain data only).
    """
    try:
        text = b'\n'.join([orjson.dumps(item, default=_refuse, option=_ORJSON_OPTIONS)
                           for item in items])
    except TypeError:               # orjson.JSONEncodeError too
        return None
    if not text.isascii() or b'\\' in text or b'\x7f' in text or b'0.0000' in text:
        return None
    if b'0e-' in text.translate(_EXPONENTS):    # a digit, e or E, a sign
        return None
    # The quotes, commas and colons alone. Quotes alternate open, close
    # (no escapes), and between two strings JSON puts a comma or a colon
    # (or nothing, from one line to the next). If no quote is left once
    # every adjacent "" is removed, no string holds a comma or a colon: the
    # first string that did could have its opening quote removed only with
    # the closing quote before it, that string's opening quote only with
    # the one before it, and so on back to a quote that has none.
    marks = text.translate(None, _NOT_MARKS)
    if b'"' in marks.replace(b'""', b''):
        # Spaces only outside the strings (a rejected host's reason).
        parts = text.split(b'"')   # outside strings at even places
        parts[0::2] = [part.replace(b',', b', ').replace(b':', b': ') for part in parts[0::2]]
        text = b'"'.join(parts)
    else:
        text = text.replace(b',', b', ').replace(b':', b': ')
    head = prefix.encode('ascii')
    return (head + text.replace(b'\n', b',\n' + head)).decode('ascii')


#: Digits as 0, E as e, + as -: orjson's exponents (it always signs them)
#: are then all "0e-", a needle whose rare last byte makes the search quick.
_EXPONENTS = bytes.maketrans(b'123456789E+', b'000000000e-')
_NOT_MARKS = bytes(b for b in range(256) if b not in b'",:')
