"""``kvmplace paths list|forget``: the throughput the conductor learned per path.

Each completed migration that ran alone on its hosts teaches its
(source, destination) path a measured bandwidth (ConductorManager.learn);
the estimator then predicts that path from it instead of from the link's
nominal rate. Operators need to see those figures (why does the scheduler
think lab-h1 -> lab-h3 is slow?) and to drop them when the network changes
under them (a link upgraded: the old figure would under-sell it until
[estimator] learned_max_age_seconds passes).
"""
from __future__ import annotations

from rich.table import Table

from kvmplace.cli import base
from kvmplace.cli.online import call, conductor
from kvmplace.exception import InvalidInput


class PathsList(base.Command):
    """Learned throughput per path, its age, and whether predictions use it."""

    def compute(self, args):
        return call(conductor(self.app).list_path_rates)

    def render(self, data, console):
        table = Table(title='Learned path throughput')
        for col in ('source', 'dest', 'learned MiB/s', 'last MiB/s', 'migrations', 'age',
                    'predictions use'):
            table.add_column(col)
        for p in data:
            age = p.get('age_seconds')
            table.add_row(p['source'], p['dest'], f"{p['mibps']:.1f}",
                          f"{p['last_mibps']:.1f}", str(p['samples']),
                          base.fmt_seconds(age) if age is not None else '?',
                          f"{p['used_mibps']:.1f} MiB/s" if p.get('used_mibps') is not None
                          else 'nominal (too old or learning off)')
        console.print(table)
        if not data:
            console.print('No path learned yet: predictions use link rate x link_efficiency.')


class PathsForget(base.Command):
    """Forget learned paths (after a network change): from --source, to
    --dest, both, or --all."""

    def add_arguments(self, parser):
        parser.add_argument('--source', help='forget the paths from this host')
        parser.add_argument('--dest', help='forget the paths to this host')
        parser.add_argument('--all', action='store_true', help='forget every learned path')
        return parser

    def compute(self, args):
        if args.all and (args.source or args.dest):
            raise InvalidInput('--all', 'give either --all or --source/--dest, not both')
        if not (args.all or args.source or args.dest):
            raise InvalidInput('paths forget', 'say which paths: --source HOST, '
                               '--dest HOST or --all')
        return call(conductor(self.app).forget_path_rates, source=args.source,
                    dest=args.dest)

    def render(self, data, console):
        gone = data['forgotten']
        if not gone:
            console.print('No learned path matched: nothing forgotten.')
        for p in gone:
            console.print(f"forgot {p['source']} -> {p['dest']} ({p['mibps']:.1f} MiB/s)")
