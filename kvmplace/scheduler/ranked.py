"""The ranked hosts of one answer, kept as the columns they were weighed in.

``select`` on 100,000 hosts ranks some 70,000 of them, and each ranked
host's explanation is nine dicts (the host, its weighers and their cells,
its estimate and the estimate's two nested dicts): 620,000 dicts, built
only to be encoded one by one again when ``select -f json`` prints them,
together more CPU time than the ranking. :class:`RankedHosts` holds the
columns instead; :meth:`RankedHosts.rows` builds the dicts every other
caller gets (the scheduler's answer is plain data), and
:meth:`RankedHosts.write_json_lines` writes the JSON text straight from the
columns: each host's line is exactly ``json.dumps`` of its row (after
:func:`objects.plain`), and each distinct estimate (hosts on the same
path and rate share one) is encoded once.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from typing import Any, Optional, TextIO

import numpy as np
import orjson

from kvmplace import objects

#: json.dumps's own string encoder (ensure_ascii), so names come out the same.
_encode_str = json.encoder.encode_basestring_ascii
_ONLY_FLOAT = {float}
#: Lines written at a time (a few hundred KiB of text).
_CHUNK = 2048


class RankedHosts(Sequence):
    """A ranking's rows, best first, from its columns (see the module doc).

    ``names`` and ``weights`` are per host (weights rounded already);
    ``weighers`` maps each weigher's name, in its place in the output, to
    its rounded raw and normalized columns and its multiplier;
    ``estimates`` is per host; ``order`` the hosts' indices, best first.
    """

    def __init__(self, names: list[str], weights: list[float],
                 weighers: dict[str, tuple[list[float], list[float], Any]],
                 estimates: list[objects.Estimate], order: list[int]):
        self.names = names
        self.weights = weights
        self.weighers = weighers
        self.estimates = estimates
        self.order = order
        self._rows: Optional[list[dict]] = None

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index):
        return self.rows()[index]

    def __iter__(self):
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RankedHosts):
            other = other.rows()
        return self.rows() == other

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> list[dict]:
        """The rows (for json.dumps's ``default``, as objects with to_dict)."""
        return self.rows()

    def rows(self) -> list[dict]:
        """Each ranked host's dict, best first, every dict a fresh one."""
        if self._rows is None:
            names = self.names
            weights = self.weights
            if self.weighers:
                weigher_names = list(self.weighers)
                cells = [[{'raw': r, 'normalized': x, 'multiplier': mult}
                          for r, x in zip(raw, norm)]
                         for raw, norm, mult in self.weighers.values()]
                explained = [dict(zip(weigher_names, row)) for row in zip(*cells)]
            else:
                explained = [{} for _ in names]
            estimates = objects.estimate_dicts(self.estimates)
            self._rows = [{'host': names[i], 'weight': weights[i], 'weighers': explained[i],
                           'estimate': estimates[i]}
                          for i in self.order]
        return self._rows

    def write_json_lines(self, out: TextIO, prefix: str) -> None:
        """Write the rows to ``out`` as ``prefix`` + ``json.dumps(objects.plain(row))``,
        one a line, ``,`` ending every line but the last (no newline after
        it): what :mod:`kvmplace.scheduler.output` writes for a list's
        elements. Written a chunk of lines at a time: the whole text (80 MB
        at 70,000 hosts) and its encoded copy would be as large again as
        the columns, and cost their pages' faults."""
        if not self.order:
            return
        # The text between the values is the same on every line (the keys,
        # the weighers' names and multipliers): ``pieces[k]`` goes before
        # the k-th value, ``end`` after the last. A line is the pieces and
        # its values interleaved; a chunk of lines one join of them all
        # (a %-template per line cost four times as much).
        pieces = [f'{prefix}{{"host": ', ', "weight": ']
        between = ', "weighers": {'
        for name, (_, _, mult) in self.weighers.items():
            pieces += [f'{between}{_encode_str(name)}: {{"raw": ', ', "normalized": ']
            between = f', "multiplier": {_value_text(mult)}}}, '
        pieces.append(f'{between.removesuffix(", ")}}}, "estimate": ')
        end = '},\n'
        # The values are taken in ranked order before they are made texts:
        # a float column as a float64 array (contiguous), the names and
        # estimates by index; gathering 70,000 texts per column in ranked
        # order instead was a cache miss per text.
        numbers = [self.weights]
        for raw, norm, _ in self.weighers.values():
            numbers += [raw, norm]
        arrays = [_float_array(column) for column in numbers]
        texts: dict[int, str] = {}
        estimates = []
        for est in self.estimates:
            text = texts.get(id(est))
            if text is None:
                text = texts[id(est)] = _value_text(est.to_dict())
            estimates.append(text)
        names = self.names
        order = np.array(self.order, dtype=np.intp)
        for start in range(0, len(order), _CHUNK):
            if start:
                out.write(',\n')
            chunk = order[start:start + _CHUNK]
            at = chunk.tolist()
            columns: list[list[str]] = [[_encode_str(names[i]) for i in at]]
            for array, column in zip(arrays, numbers):
                columns.append(_float_texts(array[chunk].tolist()) if array is not None
                               else [_value_text(column[i]) for i in at])
            columns.append([estimates[i] for i in at])
            streams: list[Iterable[str]] = []
            for piece, texts_of in zip(pieces, columns):
                streams += [repeat(piece, len(at)), texts_of]
            streams.append(repeat(end, len(at)))
            out.write(''.join(chain.from_iterable(zip(*streams)))[:-2])   # no last ",\n"


def _float_array(column: list[float]) -> Optional[np.ndarray]:
    """``column`` as a float64 array when it holds floats only (so that
    tolist() gives back the same floats), else None."""
    if column and set(map(type, column)) == _ONLY_FLOAT:
        return np.array(column, dtype=np.float64)
    return None


def _value_text(value: Any) -> str:
    """``json.dumps(objects.plain(value))``: what a row's value is written as.
    (Only a value holding a non-finite float, which json.dumps refuses,
    takes plain's copy.)"""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(objects.plain(value), allow_nan=False)


def _float_texts(values: list[float]) -> list[str]:
    """``_value_text`` of each value of a list of floats.

    json.dumps writes a float as ``float.__repr__`` does, and plain() has
    made a non-finite one null. orjson writes the same shortest digits
    (null for a non-finite float) at a tenth of repr's cost, but in its own
    form where repr would use an exponent (``1e-05``: orjson ``0.00001``,
    ``1e+16``: ``1e16``): a text with an ``e`` or ``0.0000`` in it is
    remade by repr (as kvmplace.scheduler.output's quick path does).
    """
    if not values:
        return []
    text = orjson.dumps(values)
    texts = text[1:-1].decode('ascii').split(',')
    if b'e' in text or b'0.0000' in text:
        texts = [float.__repr__(v) if 'e' in t or '0.0000' in t else t
                 for t, v in zip(texts, values)]
    return texts
