"""Shared pieces of every kvmplace command: output format and errors."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cliff import command
from rich.console import Console

from kvmplace import inventory as inv
from kvmplace import objects
from kvmplace.exception import InvalidInput
from kvmplace.scheduler import output


def one_line(text: str) -> str:
    """``text`` as one printable line: whitespace runs (newlines, carriage
    returns and the other line breaks str.splitlines knows) become one
    space, other control characters are shown escaped. Error messages
    quote what the user typed, and "exactly one line" must hold for any
    argv (tests/unit/test_cli_fuzz.py)."""
    shown = ''.join(c if c.isprintable() or c.isspace() else repr(c)[1:-1] for c in text)
    return ' '.join(shown.split())


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``kvmplace: error:`` line."""

    def error(self, message):
        sys.stderr.write(f'kvmplace: error: {self.prog}: {one_line(message)}\n')
        sys.exit(2)


class Command(command.Command):
    """A command with ``-f table|json``; subclasses implement ``compute``
    (returns plain data) and ``render`` (draws it for people)."""

    #: Write ``-f json`` streamed (kvmplace.scheduler.output): for answers
    #: that grow with the cluster.
    stream_json = False

    def get_parser(self, prog_name):
        parser = OneLineParser(prog=prog_name, description=self.get_description(),
                               add_help=True)
        parser.add_argument('-f', '--format', choices=('table', 'json'), default='table',
                            help='output format (default: table)')
        return self.add_arguments(parser)

    def add_arguments(self, parser):
        return parser

    def take_action(self, parsed_args) -> int:
        data = self.compute(parsed_args)
        if parsed_args.format == 'json' and self.stream_json:
            output.write_json(data, self.app.stdout, default=_jsonable)
        elif parsed_args.format == 'json':
            self.app.stdout.write(json.dumps(objects.plain(json.loads(json.dumps(
                data, default=_jsonable))), indent=2, allow_nan=False) + '\n')
        else:
            self.render(data, self.console())
        return self.exit_code(data)

    def console(self) -> Console:
        return Console(file=self.app.stdout, width=max(100, Console().width))

    def exit_code(self, data: Any) -> int:
        return 0

    def compute(self, parsed_args) -> Any:
        raise NotImplementedError

    def render(self, data: Any, console: Console) -> None:
        console.print_json(json.dumps(data, default=_jsonable))


def _jsonable(value):
    if hasattr(value, 'to_dict'):
        return value.to_dict()
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def add_inventory_argument(parser) -> None:
    parser.add_argument('--inventory', metavar='FILE',
                        help='offline inventory (JSON or YAML); without it the command asks '
                             'the conductor (needs --config-file)')


def load_inventory(parsed_args) -> objects.Inventory:
    if not parsed_args.inventory:
        raise InvalidInput('--inventory', 'is required (online mode needs --config-file '
                           'with a reachable conductor)')
    return inv.load(parsed_args.inventory)


def fmt_seconds(seconds: float) -> str:
    if seconds == float('inf'):
        return 'never'
    if seconds >= 2 * 86400:
        return f'{seconds / 86400:.1f} d'
    if seconds >= 2 * 3600:
        return f'{seconds / 3600:.1f} h'
    if seconds >= 90:
        return f'{seconds / 60:.1f} min'
    return f'{seconds:.1f} s'
