"""What every kvmplace command shares: cliff's Lister and ShowOne, plus
documents, notes, a safe terminal, and exit statuses.

A command computes one plain-data *document* (what ``-f json`` prints, the
ARCHITECTURE "CLI" contract) and says how it reads as rows (``Lister``) or
fields (``ShowOne``). Output then follows cliff's conventions:

- ``-f json`` and ``-f yaml`` without ``-c`` print the whole document, so
  the documented shapes hold (``select`` prints ``{"instance", "source",
  "ranked", "rejected"}``, not just its rows);
- ``-c COLUMN`` (any format) and ``-f table|csv|value`` work on the rows:
  ``select vm1 -f yaml -c host -c weight`` lists the ranked hosts' names and
  weights;
- ``-f table`` adds what a person needs beside the rows (rejected hosts,
  unplaced guests and why), as notes after the table;
- text shown in a table, a note or on stderr is made safe (render.safe):
  names from inventories and agents are data, never terminal commands.

A command whose answer is a failure (no valid host, guests left unplaced)
prints its document as usual and then one ``kvmplace: error: ...`` line,
with exit status 1: scripts see both what happened and that it failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, Optional, Sequence

from cliff import columns as cliff_columns
from cliff import lister, show

from kvmplace import objects
from kvmplace.cli import render
from kvmplace.exception import InvalidInput
from kvmplace.scheduler import output

#: Formats that print the whole document when no -c is given.
DOCUMENT_FORMATS = ('json', 'yaml')
#: Formats meant for scripts: cells give their value, not their table text.
MACHINE_FORMATS = ('csv', 'value', 'shell')

one_line = render.one_line
fmt_seconds = render.fmt_seconds


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``kvmplace: error:`` line."""

    def error(self, message):
        sys.stderr.write(f'kvmplace: error: {self.prog}: {one_line(message)}\n')
        sys.exit(2)


class _Document:
    """The part shared by Lister and ShowOne commands (see module doc)."""

    app: Any
    formatter: Any
    document: Any = None
    #: Lines for stderr after a successful answer (``kvmplace: warning: ...``).
    warnings: list[str]
    #: Write ``-f json`` streamed (kvmplace.scheduler.output): for answers
    #: that grow with the cluster.
    stream_json = False

    # -- what subclasses implement -------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return parser

    def compute(self, parsed_args: argparse.Namespace) -> Any:
        """The document: plain data (dicts, lists, numbers, strings)."""
        raise NotImplementedError

    def table_notes(self, document: Any) -> list[str]:
        """Lines printed after the table (already safe text)."""
        return []

    def extra_tables(self, document: Any) -> list[tuple[str, list[str], list[list]]]:
        """(title, columns, rows) printed after the main table."""
        return []

    def outcome(self, document: Any) -> tuple[int, Optional[str]]:
        """Exit status and, if it is a failure, the one-line reason."""
        return 0, None

    # -- cliff plumbing --------------------------------------------------------
    def get_epilog(self) -> str:
        """cliff's epilog, less its "This command is provided by the X
        plugin" sentence: that names a package other than the
        application's, and every command here is kvmplace's own; finding
        out took cliff a scan of every installed package's file list, a
        quarter of a second before each command."""
        parts = [self._epilog or '']  # type: ignore[attr-defined]
        for hook in self._hooks:  # type: ignore[attr-defined]
            epilog = hook.obj.get_epilog() if hook.obj is not None else None
            if epilog is not None:
                parts.append(epilog)
        return '\n\n'.join(parts)

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        return self.add_arguments(parser)

    def run(self, parsed_args: argparse.Namespace) -> int:
        parsed_args = self._run_before_hooks(parsed_args)  # type: ignore[attr-defined]
        self.warnings = []
        self.formatter = self._formatter_plugins[parsed_args.formatter].obj  # type: ignore
        self.document = self.compute(parsed_args)
        fmt = parsed_args.formatter
        if fmt in DOCUMENT_FORMATS and not parsed_args.columns:
            # The rows are not made: the document is the answer (select's
            # rows of 70,000 ranked hosts took longer than the ranking).
            self.emit_document(self.document, parsed_args)
        else:
            column_names, data = self.take_action(parsed_args)  # type: ignore[attr-defined]
            _check_columns(parsed_args.columns, column_names)
            data = self._cells_for(fmt, data)
            self.produce_output(parsed_args, column_names, data)  # type: ignore[attr-defined]
            if fmt == 'table':
                self._emit_extras(parsed_args)
        code, reason = self.outcome(self.document)
        if code:
            sys.stderr.write(f'kvmplace: error: {one_line(reason or "failed")}\n')
        else:
            # Written once the answer is out, so a later error stays the
            # only line on stderr.
            for warning in self.warnings:
                sys.stderr.write(f'kvmplace: warning: {one_line(warning)}\n')
        return code

    def emit_document(self, document: Any, parsed_args: argparse.Namespace) -> None:
        out = self.app.stdout
        if parsed_args.formatter == 'json' and self.stream_json:
            # Element by element: the answer grows with the cluster, and a
            # plain copy of it all would double the memory it takes.
            output.write_json(document, out, default=_jsonable)
            return
        data = plain(document)
        if parsed_args.formatter == 'yaml':
            import yaml         # here: every other command would pay its import
            yaml.safe_dump(data, out, default_flow_style=False, sort_keys=False,
                           allow_unicode=False)
        else:
            indent = None if getattr(parsed_args, 'noindent', False) else 2
            out.write(json.dumps(data, indent=indent, allow_nan=False) + '\n')

    def _emit_extras(self, parsed_args: argparse.Namespace) -> None:
        out = self.app.stdout
        for title, cols, rows in self.extra_tables(self.document):
            if not rows:
                continue
            out.write(f'{title}:\n')
            self.formatter.emit_list(cols, self._cells_for('table', rows, one=False), out,
                                     parsed_args)
        for line in self.table_notes(self.document):
            out.write(line + '\n')

    def _cells_for(self, fmt: str, data: Any, one: Optional[bool] = None) -> Any:
        """Cells as the format needs them, with user text made safe."""
        if fmt in DOCUMENT_FORMATS:
            convert = _machine_value
        elif fmt in MACHINE_FORMATS:
            convert = _machine_text
        else:
            convert = _table_cell
        if isinstance(self, ShowOne) if one is None else one:
            return [convert(v) for v in data]
        return [[convert(v) for v in row] for row in data]


class Lister(_Document, lister.Lister):
    """A command whose answer is rows: ``rows(document)`` gives them."""

    @property
    def need_sort_by_cliff(self) -> bool:
        return True

    def rows(self, document: Any) -> tuple[list[str], list[list]]:
        raise NotImplementedError

    def take_action(self, parsed_args):
        return self.rows(self.document)


class ShowOne(_Document, show.ShowOne):
    """A command whose answer is one object: ``fields(document)``."""

    def fields(self, document: Any) -> tuple[list[str], list]:
        return render.record_fields(document)

    def take_action(self, parsed_args):
        return self.fields(self.document)


def plain(value: Any) -> Any:
    """The document as JSON-able plain data (objects with to_dict become
    dicts; non-finite floats become null, as JSON has no Infinity)."""
    return objects.plain(json.loads(json.dumps(value, default=_jsonable)))


def _jsonable(value):
    if hasattr(value, 'to_dict'):
        return value.to_dict()
    if isinstance(value, cliff_columns.FormattableColumn):
        return value.machine_readable()
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def _machine_value(value: Any) -> Any:
    if isinstance(value, cliff_columns.FormattableColumn):
        value = value.machine_readable()
    return plain(value)


def _machine_text(value: Any) -> Any:
    value = _machine_value(value)
    if value is None:
        return ''
    if isinstance(value, (dict, list)):
        return render.safe(json.dumps(value))
    if isinstance(value, str):
        return render.safe(value)
    return value


def _table_cell(value: Any) -> Any:
    if isinstance(value, cliff_columns.FormattableColumn):
        return value            # render.Cell: its human form is safe already
    if value is None:
        return ''
    if isinstance(value, str):
        return render.safe(value)
    if isinstance(value, (dict, list)):
        return render.Cell(value, render.safe(json.dumps(plain(value))))
    return value


def _check_columns(requested: Sequence[str], available: Iterable[str]) -> None:
    """``-c`` naming no column is a usage error that lists the columns
    (cliff would raise a bare ValueError)."""
    if not requested:
        return
    names = list(available)
    known = {n.lower().strip().replace(' ', '_') for n in names}
    if not any(c.lower().strip().replace(' ', '_') in known for c in requested):
        raise InvalidInput('-c', f'no column named {", ".join(requested)}; the columns are '
                                 f'{", ".join(names)}')


def add_inventory_argument(parser) -> None:
    from kvmplace.cli import options
    options.add_inventory_argument(parser)
