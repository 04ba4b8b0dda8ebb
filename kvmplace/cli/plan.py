"""``kvmplace drain`` and ``kvmplace rebalance``."""
from __future__ import annotations

from rich.table import Table

from kvmplace import topology as topo
from kvmplace.cli import base
from kvmplace.cli import schedule as sched_cli
from kvmplace.exception import InvalidInput
from kvmplace.planner import drain, rebalance, schedule, timeline
from kvmplace.scheduler import manager


def _capacities(app, inventory):
    from kvmplace import estimator
    topology = topo.Topology.from_inventory(inventory)
    capacity = schedule.link_capacity(topology, estimator.ModelParams.from_conf(app.conf))
    return {link: capacity(link) for link in topology.links()}


def render_plan(data: dict, console, title: str) -> None:
    table = Table(title=title)
    for col in ('instance', 'from', 'to', 'start', 'time', 'MiB/s', 'limit', 'downtime'):
        table.add_column(col)
    for m in data['migrations']:
        table.add_row(m['instance'], m.get('source', data.get('host', '')), m['dest'],
                      f"{m['start_seconds']:.1f} s", base.fmt_seconds(m['predicted_seconds']),
                      f"{m['bandwidth_mibps']:.0f}", m.get('bottleneck', ''),
                      f"{m['predicted_downtime_ms']:.0f} ms")
    console.print(table)
    for u in data.get('unplaced') or []:
        console.print(f"[bold red]unplaced[/] {u['instance']}: {u['reason']}")
    makespan = base.fmt_seconds(data['predicted_makespan_seconds'])
    console.print(f"predicted makespan: [bold]{makespan}"
                  f"[/]" + (f" (physical bound {base.fmt_seconds(data['physical_bound_seconds'])})"
                            if data.get('physical_bound_seconds') else ''))


class _PlanCommand(base.Command):
    """Plan offline (--inventory, --dry-run only) or through the conductor;
    draw the plan with --output."""

    def add_arguments(self, parser):
        parser.add_argument('--dry-run', action='store_true', help='plan only')
        parser.add_argument('--wait', action='store_true', help='follow until done')
        parser.add_argument('--output', metavar='FILE', help='draw the plan (.svg or .png)')
        base.add_inventory_argument(parser)
        sched_cli._add_policy_arguments(parser)
        return parser

    def title(self, args) -> str:
        raise NotImplementedError

    def plan_offline(self, sched, inventory, args) -> dict:
        raise NotImplementedError

    def run_online(self, args) -> dict:
        raise NotImplementedError

    def compute(self, args):
        if args.inventory:
            if not args.dry_run:
                raise InvalidInput('--dry-run', 'an offline inventory can only be planned: '
                                   'add --dry-run (or drop --inventory to act for real)')
            inventory = base.load_inventory(args)
            result = self.plan_offline(manager.SchedulerManager(self.app.conf), inventory, args)
            capacities = _capacities(self.app, inventory)
        else:
            result = self.run_online(args)
            capacities = None
        if args.output and args.dry_run:
            timeline.draw(result, args.output, self.title(args), capacities)
        return result


class Drain(_PlanCommand):
    """Empty a host, fast and safely (--dry-run: only plan)."""

    def add_arguments(self, parser):
        parser.add_argument('host')
        return super().add_arguments(parser)

    def title(self, args) -> str:
        return f'Drain of {args.host}'

    def plan_offline(self, sched, inventory, args) -> dict:
        return drain.plan(sched, inventory, args.host, policy=sched_cli._policy(args),
                          reserve_fraction=self.app.conf.conductor.link_reserve_fraction)

    def run_online(self, args) -> dict:
        from kvmplace.cli import online
        return online.drain(self.app, args)

    def render(self, data, console):
        if 'migrations' in data and 'status' not in data:
            render_plan(data, console, f"Drain plan for {data['host']}")
        else:
            from kvmplace.cli import online
            online.render_drain(data, console)


class Rebalance(_PlanCommand):
    """Even out memory use and move guests off slow-memory hosts."""

    def add_arguments(self, parser):
        parser.add_argument('--threshold', type=_fraction, default=rebalance.DEFAULT_THRESHOLD,
                            help='largest acceptable spread of memory use, 0..1 '
                                 '(default 0.10)')
        return super().add_arguments(parser)

    def title(self, args) -> str:
        return 'Rebalance'

    def plan_offline(self, sched, inventory, args) -> dict:
        return rebalance.plan(sched, inventory, args.threshold, policy=sched_cli._policy(args),
                              reserve_fraction=self.app.conf.conductor.link_reserve_fraction)

    def run_online(self, args) -> dict:
        from kvmplace.cli import online
        return online.rebalance(self.app, args)

    def render(self, data, console):
        if 'before' in data:
            render_plan(data, console, 'Rebalance plan')
            b, a = data['before'], data['after']
            console.print(f"memory-use spread: {b['memory_spread']:.0%} -> "
                          f"{a['memory_spread']:.0%} (threshold {data['threshold']:.0%}); "
                          f"guests on unhealthy hosts: {len(b['guests_on_unhealthy_hosts'])} -> "
                          f"{len(a['guests_on_unhealthy_hosts'])}")
        else:
            from kvmplace.cli import online
            online.render_drain(data, console)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise base.argparse.ArgumentTypeError(f'"{text}" is not a number') from None
    if not 0.0 < value < 1.0:
        raise base.argparse.ArgumentTypeError(f'{text} must be between 0 and 1')
    return value
