"""``kvmplace drain`` and ``kvmplace rebalance``: plans and their execution.

Rows are the plan's migrations (``--dry-run``) or the running drain's
migrations; ``-f json`` without ``-c`` prints the whole plan or record.
A plan or drain that leaves guests unplaced exits 1, naming them; each
unplaced guest carries, per host, the filter that refused it and the
policy option that would place it (explain.py). Draining a host that is
already empty is a success with nothing to move.
"""
from __future__ import annotations

from typing import Any

from kvmplace.cli import backend as backends
from kvmplace.cli import base, explain, options, progress, render
from kvmplace.status import DrainStatus, MigrationStatus

PLAN_COLUMNS = ['instance', 'source', 'dest', 'start_seconds', 'predicted_seconds',
                'bandwidth_mibps', 'bottleneck', 'predicted_downtime_ms']
#: A drain's migrations: predicted_seconds is the drain plan's time for the
#: record (concurrency and fixed costs included; a migration the plan did
#: not list shows its own solo estimate), measured_seconds the record's
#: creation to its end - the two prediction_check compares - and
#: copy_seconds libvirt's job alone.
RECORD_COLUMNS = ['id', 'instance', 'source', 'dest', 'status', 'predicted_seconds',
                  'measured_seconds', 'copy_seconds', 'error']
#: A drain or rebalance record (not a plan) in one of these ended badly
#: (blocked: guests a live migration cannot move are still defined there).
FAILED = (DrainStatus.FAILED, DrainStatus.BLOCKED)


def is_plan(data: dict) -> bool:
    return 'migrations' in data and 'status' not in data


def unplaced_of(data: dict) -> list[dict]:
    if is_plan(data):
        return data.get('unplaced') or []
    return (data.get('plan') or {}).get('unplaced') or []


def plan_rows(data: dict) -> tuple[list[str], list[list]]:
    rows = []
    for m in data['migrations']:
        rows.append([m['instance'], m.get('source', data.get('host', '')), m['dest'],
                     render.Cell(m['start_seconds'], f"{m['start_seconds']:.1f} s"),
                     render.seconds_cell(m['predicted_seconds']),
                     render.mibps_cell(m['bandwidth_mibps']), m.get('bottleneck', ''),
                     render.ms_cell(m['predicted_downtime_ms'])])
    return PLAN_COLUMNS, rows


def record_rows(data: dict) -> tuple[list[str], list[list]]:
    planned = {m['instance']: m for m in
               ((data.get('plan') or {}).get('initial') or {}).get('migrations') or []}
    rows = []
    for m in data.get('migrations') or []:
        res = m.get('result') or {}
        predicted = (planned.get(m['instance']) or {}).get('predicted_seconds')
        if predicted is None:
            predicted = (m.get('estimate') or {}).get('total_seconds')
        measured = _seconds_between(m.get('created_at'), m.get('finished_at'))
        copy = res.get('elapsed_seconds')
        rows.append([render.Cell(m['id'], render.safe(m['id'][:8])), m['instance'],
                     m.get('source') or '', m.get('dest') or '', m['status'],
                     None if predicted is None else render.seconds_cell(predicted),
                     None if measured is None else render.seconds_cell(round(measured, 3)),
                     None if copy is None else render.seconds_cell(copy),
                     render.Cell(m.get('error'), render.safe((m.get('error') or '')[:60]))])
    return RECORD_COLUMNS, rows


def unplaced_notes(entries: list[dict], label: str = 'unplaced') -> list[str]:
    """Per unplaced guest: why, per host the filter and reason, and the
    option that would place it."""
    lines = []
    for u in entries:
        lines.append(f"{label} {render.safe(u['instance'])}: {render.safe(u['reason'])}")
        if u.get('detail'):
            lines.append(f"  {render.safe(u['detail'])}")
        for r in u.get('rejected') or []:
            lines.append(f"  {render.safe(r['host'])}: {render.safe(r['filter'])}: "
                         f"{render.safe(r['reason'])}")
        hint = u.get('suggestion')
        if hint:
            lines.append(f"  {render.safe(hint['option'])} would place it "
                         f"(on {render.safe(', '.join(hint['hosts'][:3]))})")
    return lines


#: Predicted and measured times agree when within this fraction.
AGREE_FRACTION = 0.15


def _seconds_between(start, end) -> float | None:
    import datetime as dt
    if not start or not end:
        return None
    a, b = (dt.datetime.fromisoformat(str(x).rstrip('Z')) for x in (start, end))
    return (b - a).total_seconds()


def prediction_check(data: dict) -> dict | None:
    """A finished drain's initial plan against what happened: per
    migration its planned record time and its measured one, the makespan
    both ways, whether they agree within AGREE_FRACTION and, when not,
    the measured cause. None for anything but a completed drain record."""
    initial = (data.get('plan') or {}).get('initial') or {}
    if is_plan(data) or data.get('kind', 'drain') != 'drain' or \
            data.get('status') != DrainStatus.COMPLETED or not initial.get('migrations'):
        return None
    planned = {m['instance']: m for m in initial['migrations']}
    moves = []
    for m in data.get('migrations') or []:
        p = planned.get(m['instance'])
        measured = _seconds_between(m.get('created_at'), m.get('finished_at'))
        if p is None or measured is None or m.get('status') != MigrationStatus.COMPLETED:
            continue
        job = (m.get('result') or {}).get('elapsed_seconds')
        moves.append({'instance': m['instance'], 'predicted_seconds': p['predicted_seconds'],
                      'measured_seconds': round(measured, 3), 'job_seconds': job,
                      'solo_seconds': (m.get('estimate') or {}).get('total_seconds')})
    measured = _seconds_between(data.get('created_at'), data.get('finished_at'))
    predicted = initial.get('predicted_makespan_seconds')
    if measured is None or not predicted or not moves:
        return None
    error = (predicted - measured) / measured
    errors = [abs(m['predicted_seconds'] - m['measured_seconds']) / m['measured_seconds']
              for m in moves if m['measured_seconds'] > 0]
    out = {'predicted_makespan_seconds': predicted, 'measured_makespan_seconds':
           round(measured, 3), 'makespan_error': round(error, 3),
           'migration_mape': round(sum(errors) / len(errors), 3) if errors else None,
           'migrations': moves, 'agree': abs(error) <= AGREE_FRACTION and all(
               e <= AGREE_FRACTION for e in errors)}
    if not out['agree']:
        learned = (initial.get('concurrency') or {}).get('samples', 0)
        paces = [m['solo_seconds'] / m['job_seconds'] for m in moves
                 if m['solo_seconds'] and m['job_seconds']]
        pace = sorted(paces)[len(paces) // 2] if paces else None
        if not learned:
            out['why'] = ('the plan had no finished drain to learn from (concurrency: '
                          'contention between parallel migrations, the fixed costs of each); '
                          'the next drain plans with what this one measured')
        elif pace is not None:
            out['why'] = (f'the migrations ran at {pace:.0%} of their solo pace (median), '
                          f'the plan expected the pace of the {learned} migrations learned '
                          'from: the hosts were busier or quieter than then')
        else:
            out['why'] = 'no job statistics to tell which part was off'
    return out


def prediction_notes(data: dict) -> list[str]:
    check = prediction_check(data)
    if check is None:
        return []
    lines = [f"predicted {render.fmt_seconds(check['predicted_makespan_seconds'])}, "
             f"measured {render.fmt_seconds(check['measured_makespan_seconds'])} "
             f"({check['makespan_error']:+.0%}); per migration "
             + ', '.join(f"{render.safe(m['instance'])} "
                         f"{render.fmt_seconds(m['predicted_seconds'])}/"
                         f"{render.fmt_seconds(m['measured_seconds'])}"
                         for m in check['migrations'])]
    if check['agree']:
        lines.append(f'predicted and measured agree within {AGREE_FRACTION:.0%}')
    else:
        lines.append(f"not within {AGREE_FRACTION:.0%}: {render.safe(check['why'])}")
    return lines


def record_notes(data: dict) -> list[str]:
    lines = [f"{render.safe(data.get('kind', 'drain')).capitalize()} "
             f"{render.safe(data.get('id', ''))}"]
    for key in ('host', 'status', 'error', 'created_at', 'finished_at'):
        if data.get(key):
            lines.append(f'  {key}: {render.safe(data[key])}')
    lines += unplaced_notes(unplaced_of(data), 'not moved')
    for b in (data.get('plan') or {}).get('failed_after_leaving') or []:
        lines.append(f"left, but its migration failed {render.safe(b['instance'])} "
                     f"(now on {render.safe(b.get('dest') or '?')}): "
                     f"{render.safe(b['reason'])}")
    return lines + prediction_notes(data)


def plan_notes(data: dict) -> list[str]:
    lines = unplaced_notes(data.get('unplaced') or [])
    if data.get('note'):
        lines.append(render.safe(data['note']))
    makespan = render.fmt_seconds(data.get('predicted_makespan_seconds'))
    bound = data.get('physical_bound_seconds')
    lines.append(f'predicted makespan: {makespan}'
                 + (f' (physical bound {render.fmt_seconds(bound)})' if bound else ''))
    return lines


def plan_outcome(data: dict, what: str) -> tuple[int, str | None]:
    left = unplaced_of(data)
    if left:
        names = ', '.join(u['instance'] for u in left[:5])
        more = f' and {len(left) - 5} more' if len(left) > 5 else ''
        return 1, render.safe(f'{what} leaves {len(left)} guest(s) unplaced: {names}{more}')
    if not is_plan(data) and data.get('status') in FAILED:
        return 1, render.safe(f"{what} {data['status']}: {data.get('error') or ''}")
    return 0, None


class _PlanCommand(base.Lister):
    """Plan offline (--inventory, --dry-run only) or through the conductor;
    draw the plan with --output."""

    what = 'plan'

    def add_arguments(self, parser):
        parser.add_argument('--dry-run', action='store_true', help='plan only')
        parser.add_argument('--wait', action='store_true', help='follow until done')
        parser.add_argument('--output', metavar='FILE', help='draw the plan (.svg or .png)')
        options.add_inventory_argument(parser)
        options.add_policy_arguments(parser)
        return parser

    def title(self, args) -> str:
        raise NotImplementedError

    def ask(self, back, args) -> dict:
        raise NotImplementedError

    def compute(self, args):
        back = backends.for_args(self.app, args)
        result = self.ask(back, args)
        if not args.dry_run and args.wait and not is_plan(result):
            result = progress.follow_drain(self.app, back.api, result['id'],
                                           show=args.formatter == 'table')
        explain.unplaced(back, unplaced_of(result), options.policy(args))
        if args.output and args.dry_run:
            from kvmplace.planner import timeline
            timeline.draw(result, args.output, self.title(args), back.capacities())
        return result

    def rows(self, data):
        return plan_rows(data) if is_plan(data) else record_rows(data)

    def table_notes(self, data):
        return plan_notes(data) if is_plan(data) else record_notes(data)

    def outcome(self, data):
        return plan_outcome(data, self.what)


class Drain(_PlanCommand):
    """Empty a host, fast and safely (--dry-run: only plan)."""

    what = 'the drain'

    def add_arguments(self, parser):
        parser.add_argument('host')
        return super().add_arguments(parser)

    def title(self, args) -> str:
        return f'Drain of {args.host}'

    def ask(self, back, args) -> dict:
        return back.drain(args.host, options.policy(args), args.dry_run)


class Rebalance(_PlanCommand):
    """Even out memory use and move guests off slow-memory hosts."""

    what = 'the rebalance'

    def add_arguments(self, parser):
        from kvmplace.planner import rebalance
        parser.add_argument('--threshold', type=options.fraction,
                            default=rebalance.DEFAULT_THRESHOLD,
                            help='largest acceptable spread of memory use, 0..1 '
                                 '(default 0.10)')
        return super().add_arguments(parser)

    def title(self, args) -> str:
        return 'Rebalance'

    def ask(self, back, args) -> dict:
        result = back.rebalance(args.threshold, options.policy(args), args.dry_run)
        if is_plan(result) and not result['migrations'] and 'before' in result:
            result['explanation'] = explain.nothing_moves(result)
        return result

    def table_notes(self, data: Any):
        lines = super().table_notes(data)
        if 'before' in data:
            b, a = data['before'], data['after']
            lines.append(f"memory-use spread: {b['memory_spread']:.0%} -> "
                         f"{a['memory_spread']:.0%} (threshold {data['threshold']:.0%}); "
                         f"guests on unhealthy hosts: {len(b['guests_on_unhealthy_hosts'])} "
                         f"-> {len(a['guests_on_unhealthy_hosts'])}")
        if data.get('explanation'):
            lines.append(render.safe(data['explanation']))
        return lines
