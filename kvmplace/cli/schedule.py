"""``kvmplace select`` and ``kvmplace estimate``: the scheduler's answers."""
from __future__ import annotations

from kvmplace.cli import backend as backends
from kvmplace.cli import base, explain, options, render

RANKED_COLUMNS = ['rank', 'host', 'weight', 'total_seconds', 'bandwidth_mibps', 'bottleneck',
                  'downtime_ms', 'converges', 'pre_pin', 'weighers']


class Select(base.Lister):
    """Rank the hosts a guest could live-migrate to, with every reason.

    Rows are the ranked hosts, best first; ``-f json`` (or yaml) without
    ``-c`` prints the whole answer: ranked and rejected hosts. Exits 1
    when no host is valid.
    """

    stream_json = True

    def add_arguments(self, parser):
        parser.add_argument('instance', help='guest name')
        options.add_inventory_argument(parser)
        parser.add_argument('--host', dest='force_hosts', action='append', default=[],
                            metavar='HOST', help='only consider this host (repeatable)')
        parser.add_argument('--ignore-host', dest='ignore_hosts', action='append',
                            default=[], metavar='HOST', help='never consider this host')
        options.add_policy_arguments(parser)
        return parser

    def compute(self, parsed_args):
        self.backend = backends.for_args(self.app, parsed_args)
        self.args = parsed_args
        # The whole answer as JSON is written straight from the ranking's
        # columns (scheduler.ranked): its 70,000 ranked rows are not built.
        whole_json = parsed_args.formatter == 'json' and not parsed_args.columns
        return self.backend.select(parsed_args.instance, options.policy(parsed_args),
                                   tuple(parsed_args.force_hosts),
                                   tuple(parsed_args.ignore_hosts),
                                   ranked_columns=whole_json)

    def rows(self, data):
        rows = []
        for i, row in enumerate(data['ranked'], 1):
            est = row['estimate']
            rows.append([i, row['host'], render.Cell(row['weight'], f"{row['weight']:.3f}"),
                         render.seconds_cell(est['total_seconds']),
                         render.mibps_cell(est['bandwidth_mibps']), est['bottleneck'],
                         render.ms_cell(est['downtime_ms']), est['converges'],
                         render.Cell(est.get('pre_pin'), render.pre_pin_text(est.get('pre_pin'))),
                         render.weighers_cell(row['weighers'])])
        return RANKED_COLUMNS, rows

    def extra_tables(self, data):
        return [('Rejected', ['host', 'filter', 'reason'],
                 [[r['host'], r['filter'], r['reason']] for r in data['rejected']])]

    def table_notes(self, data):
        return [] if data['ranked'] else ['No valid host.']

    def outcome(self, data):
        if data['ranked']:
            return 0, None
        why = f"no valid host for {data['instance']}: all {len(data['rejected'])} hosts rejected"
        hint = explain.suggestion(self.backend, self.args.instance, options.policy(self.args),
                                  tuple(self.args.force_hosts), tuple(self.args.ignore_hosts))
        if hint:
            why += f"; {hint['option']} would place it on {', '.join(hint['hosts'][:3])}"
        return 1, render.safe(why)


class Estimate(base.ShowOne):
    """Predict a live migration: bandwidth, bottleneck, time, downtime.

    The estimate is computed for any host; when a filter would refuse it
    (so ``select`` would not pick it) a warning says which and why, and
    ``rejected_by`` lists them.
    """

    def add_arguments(self, parser):
        parser.add_argument('instance', help='guest name')
        parser.add_argument('--to', required=True, metavar='HOST', help='destination host')
        options.add_inventory_argument(parser)
        options.add_policy_arguments(parser)
        return parser

    def compute(self, parsed_args):
        back = backends.for_args(self.app, parsed_args)
        policy = options.policy(parsed_args)
        est = back.estimate(parsed_args.instance, parsed_args.to, policy)
        est['rejected_by'] = explain.estimate_rejections(back, parsed_args.instance,
                                                         parsed_args.to, policy)
        # A person reading the table gets the warning on stderr too; the
        # machine formats carry it in rejected_by (stderr stays clean).
        for r in est['rejected_by'] if parsed_args.formatter == 'table' else ():
            self.warnings.append(f"the {r['filter']} filter would reject "
                                 f"{render.safe(parsed_args.to)}: {render.safe(r['reason'])}")
        return est

    def fields(self, data):
        names, values = render.estimate_fields(
            {k: v for k, v in data.items() if k != 'rejected_by'})
        names.append('rejected_by')
        values.append(render.Cell(data['rejected_by'], '; '.join(
            f"{render.safe(r['filter'])}: {render.safe(r['reason'])}"
            for r in data['rejected_by']) or '-'))
        return names, values
