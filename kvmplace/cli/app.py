"""The cliff application behind ``kvmplace``.

cliff gives us subcommands from entry points and ``--debug``; we replace its
error reporting so every failure is exactly one ``kvmplace: error: ...``
line on stderr (a traceback only with ``--debug``), which scripts and
operators can rely on.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import logging
import sys
import traceback

from cliff import app as cliff_app
from cliff import commandmanager
from cliff import help as cliff_help
from oslo_config import cfg

import kvmplace.conf
from kvmplace.cli import base
from kvmplace.exception import KvmplaceError

NAMESPACE = 'kvmplace.cli'


class ExactCommandManager(commandmanager.CommandManager):
    """cliff's command lookup, with whole command names preferred.

    cliff tries the longest word sequence first and accepts abbreviations
    there, so ``kvmplace drain l`` (drain the host named ``l``) would run
    ``drains list``. An operator's host or guest name must never turn one
    command into another: a command spelled in full wins over an
    abbreviation of a longer one; abbreviations still work when no command
    is spelled in full."""

    def load_commands(self, namespace):
        """The commands' entry points, none of them imported yet.

        cliff asks stevedore, which imports every command's module (and so
        rich, the RPC clients, ...) for any command: a third of a second
        before ``select --inventory`` starts. An entry point is loaded when
        its command runs (find_command) or is listed with help."""
        self.group_list.append(namespace)
        for entry_point in importlib.metadata.entry_points(group=namespace):
            name = entry_point.name.replace('_', ' ') if self.convert_underscores \
                else entry_point.name
            self.commands[name] = entry_point      # the last one wins, as in cliff

    def find_command(self, argv):
        for i in range(self._get_last_possible_command_index(argv), 0, -1):
            name = ' '.join(argv[:i])
            if name in self.commands and name not in self._legacy:
                return self.commands[name].load(), name, argv[i:]
        return super().find_command(argv)


class KvmplaceApp(cliff_app.App):

    def __init__(self):
        super().__init__(
            description='Choose where a KVM guest should live-migrate, and drive it there.',
            version=_version(),
            command_manager=ExactCommandManager(NAMESPACE),
            deferred_help=True)
        self.conf = None
        self._config_error: KvmplaceError | None = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument('--config-file', action='append', default=[], metavar='PATH',
                            help='kvmplace configuration file (repeatable)')
        parser.add_argument('--rpc-timeout', type=int, default=30, metavar='SECONDS',
                            help='how long to wait for the conductor (default 30)')

        def one_line_error(message):
            # argparse would print the whole usage first.
            sys.stderr.write(f'kvmplace: error: {base.one_line(message)}\n')
            sys.exit(2)

        parser.error = one_line_error
        return parser

    def configure_logging(self):
        # Warnings and up only, in one-line form; -v/--debug show more.
        level = logging.DEBUG if self.options.debug or self.options.verbose_level > 1 \
            else logging.WARNING
        logging.basicConfig(level=level, stream=self.stderr,
                            format='kvmplace: %(levelname)s: %(message)s')
        if not self.options.debug:
            # The broker client logs every reconnect attempt; the command
            # reports the outcome itself in one line.
            for noisy in ('oslo.messaging', 'oslo_messaging', 'kombu', 'amqp'):
                logging.getLogger(noisy).setLevel(logging.CRITICAL)

    def initialize_app(self, argv):
        conf = cfg.CONF
        # Not keystoneauth1's [nova] options (the conductor talks to Nova,
        # the command line never does) nor oslo.messaging's, which the
        # commands that use the bus register when they do (kvmplace.rpc).
        kvmplace.conf.register_opts(conf, nova_clients=False)
        try:
            conf([], project='kvmplace', default_config_files=self.options.config_file,
                 default_config_dirs=[])
        except (cfg.Error, OSError) as exc:
            # Reported when the command runs, like every other error: cliff
            # would log an exception raised here as "kvmplace: ERROR: ...".
            self._config_error = KvmplaceError(f'configuration: {exc}')
        self.conf = conf

    def interact(self):
        self.print_help()
        return 2

    def print_help(self):
        self.parser.print_help(self.stdout)
        self.stdout.write('\nCommands:\n')
        for name, _ in sorted(self.command_manager):
            self.stdout.write(f'  {name}\n')

    def run(self, argv):
        try:
            if not argv:
                self.options = self.parser.parse_known_args([])[0]
                self.print_help()
                return 2
            return super().run(argv)
        except KvmplaceError as exc:
            return self._fail(exc)
        except SystemExit as exc:  # a global option's usage error, --help, --version
            return _exit_code(exc)

    def unknown_command(self, argv: list[str]) -> str:
        """'unknown command "selct" (did you mean "select"?)': one line.

        cliff would print its guesses over several lines on stdout; scripts
        rely on one error line on stderr, so the guesses go in it.
        """
        words = ' '.join(argv[:2])
        names = sorted(name for name, _ in self.command_manager)
        close = (difflib.get_close_matches(words, names, n=3, cutoff=0.6)
                 or difflib.get_close_matches(argv[0], names, n=3, cutoff=0.6)
                 or [n for n in names if n.startswith(argv[0] + ' ')][:3]) if argv else []
        if close:
            # Only the nearest: "hosts lst" is "hosts list", not "hosts show".
            score = {g: difflib.SequenceMatcher(None, words, g).ratio() for g in close}
            best = max(score.values())
            close = [g for g in close if score[g] >= best - 0.1 or g.startswith(argv[0] + ' ')
                     and len(argv) == 1]
        text = f'unknown command "{base.one_line(words)}"'
        if close:
            text += ' (did you mean ' + ' or '.join(f'"{g}"' for g in close) + '?)'
        return text + " (see 'kvmplace help')"

    def run_subcommand(self, argv):
        if self._config_error is not None:
            return self._fail(self._config_error)
        try:
            found = self.command_manager.find_command(argv)
        except ValueError:
            sys.stderr.write(f'kvmplace: error: {self.unknown_command(argv)}\n')
            return 2
        cmd_factory, cmd_name, sub_argv = found
        cmd = cmd_factory(self, self.options)
        try:
            parser = cmd.get_parser(f'kvmplace {cmd_name}')
            _one_line_errors(parser)
            if isinstance(cmd, cliff_help.HelpCommand):
                # cliff turns "kvmplace select --inventory F -h" into
                # "help select --inventory F": the help command only needs
                # the command words, so the rest must not be a usage error.
                parsed = parser.parse_known_args(sub_argv)[0]
            else:
                parsed = parser.parse_args(sub_argv)
            return cmd.run(parsed) or 0
        except SystemExit as exc:
            return _exit_code(exc)
        except KeyboardInterrupt:
            sys.stderr.write('kvmplace: error: interrupted\n')
            return 130
        except BrokenPipeError:
            return 141
        except Exception as exc:  # noqa: BLE001 - the one place errors become lines
            return self._fail(exc)

    def _fail(self, exc: BaseException) -> int:
        if self.options is not None and getattr(self.options, 'debug', False):
            traceback.print_exception(exc, file=sys.stderr)
        if isinstance(exc, KvmplaceError):
            message = str(exc)
            code = exc.exit_code
        else:
            message = f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__
            code = 1
        sys.stderr.write(f'kvmplace: error: {base.one_line(message)}\n')
        return code


def _exit_code(exc: SystemExit) -> int:
    """The exit status a SystemExit means: ``None`` is success, as for
    Python itself (cliff's help ends with a bare SystemExit: ``kvmplace
    help`` used to exit 2)."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 2


def _one_line_errors(parser) -> None:
    """Make a usage error of ``parser`` one ``kvmplace: error:`` line.

    Our commands' parsers do this already (base.OneLineParser); cliff's own
    ``help`` and ``complete`` commands use plain argparse, which prints the
    whole usage first, so every parser is fixed up here (found by fuzzing
    the command line, tests/unit/test_cli_fuzz.py).
    """
    if isinstance(parser, base.OneLineParser):
        return

    def one_line_error(message):
        sys.stderr.write(f'kvmplace: error: {parser.prog}: {base.one_line(message)}\n')
        sys.exit(2)

    parser.error = one_line_error


def _version() -> str:
    try:
        from importlib.metadata import version
        return version('kvmplace')
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return '0+unknown'
