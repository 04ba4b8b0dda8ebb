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

from kvmplace.cli import base, client, render
from kvmplace.exception import InvalidInput

PATH_COLUMNS = ['source', 'dest', 'mibps', 'last_mibps', 'samples', 'age_seconds', 'used_mibps']


class PathsList(base.Lister):
    """Learned throughput per path, its age, and whether predictions use it."""

    def compute(self, args):
        return client.call(client.conductor(self.app).list_path_rates)

    def rows(self, data):
        rows = []
        for p in data:
            used = p.get('used_mibps')
            rows.append([p['source'], p['dest'], render.mibps_cell(p['mibps'], 1),
                         render.mibps_cell(p['last_mibps'], 1), p['samples'],
                         render.seconds_cell(p.get('age_seconds')),
                         render.Cell(used, f'{used:.1f} MiB/s' if used is not None
                                     else 'nominal (too old or learning off)')])
        return PATH_COLUMNS, rows

    def table_notes(self, data):
        if data:
            return []
        return ['No path learned yet: predictions use link rate x link_efficiency.']


class PathsForget(base.Lister):
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
        return client.call(client.conductor(self.app).forget_path_rates, source=args.source,
                           dest=args.dest)

    def rows(self, data):
        return ['source', 'dest', 'mibps'], [
            [p['source'], p['dest'], render.mibps_cell(p['mibps'], 1)]
            for p in data['forgotten']]

    def table_notes(self, data):
        return [] if data['forgotten'] else ['No learned path matched: nothing forgotten.']
