"""Turning plain data into terminal text, safely.

Host and guest names come from inventories and agent reports, which the
operator does not fully control: a name may hold an ESC sequence (that
would recolour or clear the operator's terminal), a newline (that would
forge a line of output) or rich markup such as ``[/]`` (which crashed
``drain`` when the names were printed through rich). Everything shown in a
table, a note or a progress bar goes through :func:`safe` first; JSON and
YAML escape such characters themselves.
"""
from __future__ import annotations

from typing import Any

from cliff import columns


def safe(value: Any) -> str:
    """``value`` as text with every non-printable character escaped
    (``\\x1b``, ``\\n``, ``\\u202e``...), so it is shown, not obeyed."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(text: str) -> str:
    """``text`` as one printable line: whitespace runs (newlines, carriage
    returns and the other line breaks str.splitlines knows) become one
    space, other control characters are shown escaped. Error messages
    quote what the user typed, and "exactly one line" must hold for any
    argv (tests/unit/test_cli_fuzz.py)."""
    shown = ''.join(c if c.isprintable() or c.isspace() else repr(c)[1:-1] for c in text)
    return ' '.join(shown.split())


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return '?'
    if seconds == float('inf'):
        return 'never'
    if seconds >= 2 * 86400:
        return f'{seconds / 86400:.1f} d'
    if seconds >= 2 * 3600:
        return f'{seconds / 3600:.1f} h'
    if seconds >= 90:
        return f'{seconds / 60:.1f} min'
    return f'{seconds:.1f} s'


class Cell(columns.FormattableColumn):
    """A value with a human form for tables and its own value for
    scripts (``-f json|yaml|csv|value``): cliff's convention.

    ``human`` is computed from the value; the text is made safe here, so
    no command has to remember to.
    """

    def __init__(self, value: Any, human: str | None = None):
        super().__init__(value)
        self._human = human

    def human_readable(self) -> str:
        if self._human is not None:
            return self._human
        return safe('' if self._value is None else self._value)

    def __lt__(self, other: object) -> bool:
        # --sort-column: compare the values, None last.
        mine = self._value
        theirs = other._value if isinstance(other, columns.FormattableColumn) else other
        if mine is None or theirs is None:
            return theirs is None and mine is not None
        try:
            return bool(mine < theirs)
        except TypeError:
            return str(mine) < str(theirs)


def cell(value: Any, human: str) -> Cell:
    """A cell whose table form is ``human`` (already built from safe parts)."""
    return Cell(value, human)


def seconds_cell(seconds: float | None) -> Cell:
    return Cell(seconds, fmt_seconds(seconds))


def mibps_cell(mibps: float | None, digits: int = 0) -> Cell:
    return Cell(mibps, '' if mibps is None else f'{mibps:.{digits}f}')


def ms_cell(ms: float | None) -> Cell:
    return Cell(ms, '' if ms is None else f'{ms:.0f} ms')


def weighers_cell(weighers: dict) -> Cell:
    """The weigher breakdown: named fields for scripts, one compact line
    per weigher for people: ``name  +0.50 = 0.50 x 1 (raw 10000)``, i.e.
    its contribution to the weight, normalized x multiplier, and the raw
    figure it was normalized from."""
    lines = []
    for name, w in (weighers or {}).items():
        raw, norm, mult = w.get('raw'), w.get('normalized'), w.get('multiplier')
        try:
            contribution = f'{norm * mult:+.2f} = {norm:.2f} x {mult:g}'
        except TypeError:
            contribution = f'{norm} x {mult}'
        raw_text = f'{raw:g}' if isinstance(raw, (int, float)) else safe(raw)
        lines.append(f'{safe(name)} {contribution} (raw {raw_text})')
    return Cell(weighers, '\n'.join(lines))


def pre_pin_text(pin: dict | None) -> str:
    if not pin:
        return '-'
    return f"node {safe(pin.get('node'))} (CPUs {safe(pin.get('cpus'))})"


def estimate_fields(est: dict) -> tuple[list[str], list[Any]]:
    """ESTIMATE as ShowOne fields: every key of the contract, in order,
    each with a readable table form; extra keys follow as they are."""
    human: dict[str, str] = {
        'bandwidth_mibps': f"{est.get('bandwidth_mibps', 0):.1f} MiB/s "
                           f"({safe(est.get('bottleneck'))}-bound)",
        'bottleneck': safe(est.get('bottleneck')),
        'rounds': safe(est.get('rounds')),
        'data_mib': f"{est.get('data_mib') or 0:.0f} MiB",
        'total_seconds': fmt_seconds(est.get('total_seconds')),
        'downtime_ms': f"{est.get('downtime_ms') or 0:.0f} ms",
        'converges': 'yes' if est.get('converges') else 'NO',
        'pre_pin': pre_pin_text(est.get('pre_pin')),
    }
    slow = est.get('without_pre_pin')
    human['without_pre_pin'] = '-' if not slow else (
        f"{slow['bandwidth_mibps']:.1f} MiB/s, {fmt_seconds(slow['total_seconds'])}")
    names = list(est)
    values: list[Any] = []
    for key in names:
        value = est[key]
        if key in human:
            values.append(Cell(value, human[key]))
        elif isinstance(value, (dict, list)):
            values.append(Cell(value, safe(value)))
        else:
            values.append(value)
    return names, values


def record_fields(record: dict) -> tuple[list[str], list[Any]]:
    """Any record (a migration, a host) as ShowOne fields: scalars as they
    are, nested values as one readable line each."""
    names, values = [], []
    for key, value in record.items():
        names.append(key)
        if isinstance(value, (dict, list)):
            values.append(Cell(value, _compact(value)))
        else:
            values.append(value)
    return names, values


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ', '.join(f'{safe(k)}={_compact(v)}' for k, v in value.items())
    if isinstance(value, list):
        return ' '.join(_compact(v) for v in value)
    if isinstance(value, float):
        return f'{value:g}'
    return safe('' if value is None else value)
