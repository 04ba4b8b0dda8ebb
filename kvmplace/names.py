"""What a host, instance or switch name may be.

Names end up in tables, JSON, log lines, graph nodes and RPC server names.
A control character in one (a newline, an escape sequence, a bidi override)
can forge a log line, repaint a terminal or make two names look the same,
so names are refused, not cleaned: the operator must see which one is
wrong. One name is reserved: without ``links``, every host hangs off one
implicit switch (:data:`IMPLICIT_SWITCH`), and a host of that name would
become that switch in the topology graph.

Usable for any name that arrives from outside (the offline inventory today;
an agent's host report too), so every entry point refuses the same names
with the same one-line error.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from kvmplace.exception import InvalidInput

IMPLICIT_SWITCH = 'switch'
"""The node every host hangs off when an inventory gives no ``links``."""

RESERVED_HOST_NAMES = frozenset({IMPLICIT_SWITCH})

MAX_NAME_LENGTH = 255

# Cc: C0/C1 controls (newline, ESC, DEL...); Cf: invisible format characters
# (bidi overrides, zero-width space, BOM); Zl/Zp: line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({'Cc', 'Cf', 'Zl', 'Zp'})


def control_character(text: str) -> str | None:
    """The first character of ``text`` a name must not hold, as ``U+XXXX``."""
    # Every refused category is also one str.isprintable() refuses (which
    # adds only Zs, Cs, Co, Cn): a printable text holds none of them, and
    # is told so in C, without a category lookup per character.
    if text.isprintable():
        return None
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f'U+{ord(char):04X}'
    return None


def check_text(field: str, value: Any) -> str:
    """A non-empty, printable string of at most 255 characters, or InvalidInput."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f'must be a non-empty string, not {describe(value)}')
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(field, f'is longer than {MAX_NAME_LENGTH} characters')
    bad = control_character(value)
    if bad:
        raise InvalidInput(field, f'contains a control character ({bad})')
    return value


def check_name(field: str, value: Any) -> str:
    """An instance or switch name: :func:`check_text`."""
    return check_text(field, value)


def check_host_name(field: str, value: Any) -> str:
    """A host name: :func:`check_text`, and not a reserved name."""
    check_text(field, value)
    if value in RESERVED_HOST_NAMES:
        raise InvalidInput(field, f'"{value}" is reserved (the implicit switch every host '
                                  'hangs off when "links" is not given)')
    return value


def printable(text: str) -> str:
    """``text`` with whatever would not print escaped (``\\n``, ``\\x1b``)."""
    if control_character(text):
        return text.encode('unicode_escape').decode('ascii')
    return text


def describe(value: Any) -> str:
    """A short, printable description of a value for an error message."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return f'boolean {str(value).lower()}'
    if isinstance(value, (int, float)):
        return f'number {value}'
    if isinstance(value, str):
        # Escape whatever would not print, so the message stays one line.
        return f'string "{printable(value[:40])}"'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, dict):
        return 'an object'
    return type(value).__name__
