"""``kvmplace select`` and ``kvmplace estimate``: the scheduler's answers."""
from __future__ import annotations

from rich.table import Table

from kvmplace import objects
from kvmplace.cli import base
from kvmplace.scheduler import manager


def _policy(parsed_args) -> objects.Policy:
    return objects.Policy(max_downtime_ms=parsed_args.max_downtime_ms,
                          bandwidth_cap_mibps=parsed_args.bandwidth_cap_mibps,
                          allow_auto_converge=True if parsed_args.auto_converge else None,
                          allow_post_copy=True if parsed_args.post_copy else None)


def _add_policy_arguments(parser) -> None:
    parser.add_argument('--max-downtime-ms', type=_positive_int, default=None,
                        help='largest acceptable pause at switch-over (default from config)')
    parser.add_argument('--bandwidth-cap-mibps', type=_positive_float, default=None,
                        help='cap the migration bandwidth')
    parser.add_argument('--auto-converge', action='store_true',
                        help='allow throttling the guest so it converges')
    parser.add_argument('--post-copy', action='store_true',
                        help='allow switching to post-copy')


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise base.argparse.ArgumentTypeError(f'"{text}" is not a whole number') from None
    if value <= 0:
        raise base.argparse.ArgumentTypeError(f'{value} must be > 0')
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise base.argparse.ArgumentTypeError(f'"{text}" is not a number') from None
    if not value > 0 or value == float('inf'):
        raise base.argparse.ArgumentTypeError(f'{text} must be a finite number > 0')
    return value


def render_estimate(est: dict, console, title: str = 'Estimate') -> None:
    table = Table(title=title, show_header=False)
    table.add_column('field', style='bold')
    table.add_column('value')
    table.add_row('bandwidth', f"{est['bandwidth_mibps']:.1f} MiB/s ({est['bottleneck']}-bound)")
    table.add_row('total time', base.fmt_seconds(est['total_seconds']))
    table.add_row('downtime', f"{est['downtime_ms']:.0f} ms")
    table.add_row('rounds', str(est['rounds']))
    table.add_row('data sent', f"{est['data_mib']:.0f} MiB")
    table.add_row('converges', 'yes' if est['converges'] else 'NO')
    if est.get('mode') and est['mode'] != 'pre-copy':
        table.add_row('mode', est['mode'])
    if est.get('pre_pin'):
        pin = est['pre_pin']
        slow = est['without_pre_pin']
        table.add_row('pre-pin', f"emulator thread to node {pin['node']} (CPUs {pin['cpus']})")
        table.add_row('without pre-pin', f"{slow['bandwidth_mibps']:.1f} MiB/s, "
                                         f"{base.fmt_seconds(slow['total_seconds'])}")
    console.print(table)


class Select(base.Command):
    """Rank the hosts a guest could live-migrate to, with every reason."""

    stream_json = True

    def add_arguments(self, parser):
        parser.add_argument('instance', help='guest name')
        base.add_inventory_argument(parser)
        parser.add_argument('--host', dest='force_hosts', action='append', default=[],
                            metavar='HOST', help='only consider this host (repeatable)')
        parser.add_argument('--ignore-host', dest='ignore_hosts', action='append',
                            default=[], metavar='HOST', help='never consider this host')
        _add_policy_arguments(parser)
        return parser

    def compute(self, parsed_args):
        if not parsed_args.inventory:
            from kvmplace.cli import online
            api = online.conductor(self.app)
            policy = {k: v for k, v in _policy(parsed_args).to_dict().items() if v is not None}
            return online.call(api.select_destinations, parsed_args.instance,
                               policy=policy or None, force_hosts=parsed_args.force_hosts,
                               ignore_hosts=parsed_args.ignore_hosts)
        inventory = base.load_inventory(parsed_args)
        sched = manager.SchedulerManager(self.app.conf)
        request = objects.MigrationRequest(instance=parsed_args.instance,
                                           force_hosts=parsed_args.force_hosts,
                                           ignore_hosts=parsed_args.ignore_hosts,
                                           policy=_policy(parsed_args))
        return sched.select(inventory, request)

    def exit_code(self, data) -> int:
        return 0

    def render(self, data, console):
        ranked = Table(title=f"Targets for {data['instance']} (from {data['source']})")
        ranked.add_column('#', justify='right')
        ranked.add_column('host')
        ranked.add_column('weight', justify='right')
        ranked.add_column('time', justify='right')
        ranked.add_column('MiB/s', justify='right')
        ranked.add_column('bottleneck')
        ranked.add_column('downtime', justify='right')
        ranked.add_column('pre-pin')
        ranked.add_column('weighers (raw / normalized x multiplier)')
        for i, row in enumerate(data['ranked'], 1):
            est = row['estimate']
            parts = [f"{name} {w['raw']:g}/{w['normalized']:.2f}x{w['multiplier']:g}"
                     for name, w in row['weighers'].items()]
            pin = est.get('pre_pin')
            ranked.add_row(str(i), row['host'], f"{row['weight']:.3f}",
                           base.fmt_seconds(est['total_seconds']),
                           f"{est['bandwidth_mibps']:.0f}", est['bottleneck'],
                           f"{est['downtime_ms']:.0f} ms",
                           f"node {pin['node']}" if pin else '-', '\n'.join(parts))
        console.print(ranked)
        if data['rejected']:
            rejected = Table(title='Rejected')
            rejected.add_column('host')
            rejected.add_column('filter')
            rejected.add_column('reason')
            for row in data['rejected']:
                rejected.add_row(row['host'], row['filter'], row['reason'])
            console.print(rejected)
        if not data['ranked']:
            console.print('[bold red]No valid host.[/]')


class Estimate(base.Command):
    """Predict a live migration: bandwidth, bottleneck, time, downtime."""

    def add_arguments(self, parser):
        parser.add_argument('instance', help='guest name')
        parser.add_argument('--to', required=True, metavar='HOST', help='destination host')
        base.add_inventory_argument(parser)
        _add_policy_arguments(parser)
        return parser

    def compute(self, parsed_args):
        if not parsed_args.inventory:
            from kvmplace.cli import online
            policy = {k: v for k, v in _policy(parsed_args).to_dict().items() if v is not None}
            return online.call(online.conductor(self.app).estimate, parsed_args.instance,
                               parsed_args.to, policy=policy or None)
        inventory = base.load_inventory(parsed_args)
        sched = manager.SchedulerManager(self.app.conf)
        est = sched.estimate(inventory, parsed_args.instance, parsed_args.to,
                             policy=_policy(parsed_args))
        return est.to_dict()

    def render(self, data, console):
        render_estimate(data, console, title='Migration estimate')
