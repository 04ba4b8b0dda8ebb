"""Commands that go through the conductor: migrate, migrations, hosts.

They need ``--config-file`` with the broker's ``transport_url`` (the lab
writes one: ``kvmplace-lab status`` shows where).
"""
from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kvmplace.cli import base
from kvmplace.cli import schedule
from kvmplace.exception import KvmplaceError
from kvmplace.status import (ACTIVE_FILTER, FINAL_MIGRATION_STATUSES as FINAL, DrainStatus,
                             MigrationStatus as MS)


def conductor(app):
    """A ConductorAPI on the app's configuration, with a clear error if
    there is no broker configured."""
    from kvmplace.conductor import rpcapi
    import oslo_messaging as messaging
    conf = app.conf
    if not conf.transport_url or not messaging.TransportURL.parse(conf, conf.transport_url).hosts:
        raise KvmplaceError('no transport_url: pass --config-file with [DEFAULT] '
                            'transport_url (or use --inventory for offline planning)')
    # The rabbit driver retries an unreachable broker for ever, whatever the
    # call timeout: look first, and say so in one line at once.
    from kvmplace import rpc
    problem = rpc.broker_problem(conf, timeout=min(5.0, float(app.options.rpc_timeout)))
    if problem:
        raise KvmplaceError(f'{problem}: is RabbitMQ running?')
    return rpcapi.ConductorAPI(conf=conf, timeout=app.options.rpc_timeout)


def call(fn, *args, **kwargs) -> Any:
    """Make an RPC call; turn transport errors into one readable line."""
    import oslo_messaging as messaging
    try:
        return fn({}, *args, **kwargs)
    except messaging.MessagingTimeout:
        from kvmplace import rpc
        problem = rpc.broker_problem()
        if problem:
            raise KvmplaceError(f'{problem}: is RabbitMQ running?') from None
        raise KvmplaceError('the conductor did not answer in time (is kvmplace-conductor '
                            'running? see kvmplace doctor)') from None
    except messaging.MessageDeliveryFailure as exc:
        raise KvmplaceError(f'cannot reach the message broker: {exc}') from None
    except messaging.RemoteError as exc:
        raise KvmplaceError(f'conductor: {exc.exc_type}: {exc.value}') from None
    except Exception as exc:
        if type(exc).__name__ == 'AccessRefused':
            raise KvmplaceError('the broker refused the login in transport_url (user or '
                                'password wrong)') from None
        # Remote KvmplaceError subclasses arrive re-raised with a _Remote suffix.
        if type(exc).__name__.endswith('_Remote'):
            raise KvmplaceError(str(exc).splitlines()[0]) from None
        raise


def render_migration(rec: dict, console) -> None:
    table = Table(title=f"Migration {rec['id']}", show_header=False)
    table.add_column('field', style='bold')
    table.add_column('value')
    for key in ('instance', 'status', 'source', 'dest', 'error', 'created_at',
                'started_at', 'finished_at'):
        if rec.get(key) is not None:
            table.add_row(key, str(rec[key]))
    est = rec.get('estimate') or {}
    if est:
        table.add_row('predicted', f"{base.fmt_seconds(est['total_seconds'])} at "
                                   f"{est['bandwidth_mibps']:.0f} MiB/s ({est['bottleneck']})")
    res = rec.get('result') or {}
    if res.get('elapsed_seconds') is not None:
        table.add_row('measured', f"{base.fmt_seconds(res['elapsed_seconds'])}, downtime "
                                  f"{res.get('downtime_ms') or 0:.0f} ms")
    pin = rec.get('pin') or {}
    if pin:
        table.add_row('pre-pin', f"node {pin.get('node')} CPUs {pin.get('cpus')} "
                                 f"(was {pin.get('previous_cpus')})")
    console.print(table)
    steps = rec.get('steps') or []
    if steps:
        st = Table(title='Steps')
        for col in ('#', 'step', 'host', 'status', 'started', 'seconds', 'message'):
            st.add_column(col)
        for s in steps:
            st.add_row(str(s['seq']), s['name'], s.get('host') or '', s['status'],
                       (s.get('started_at') or '')[11:23], _duration(s),
                       (s.get('message') or '')[:90])
        console.print(st)


def _duration(step: dict) -> str:
    from datetime import datetime
    a, b = step.get('started_at'), step.get('finished_at')
    if not a or not b:
        return ''
    fmt = '%Y-%m-%dT%H:%M:%S.%fZ'
    return f'{(datetime.strptime(b, fmt) - datetime.strptime(a, fmt)).total_seconds():.2f}'


def follow(app, api, migration_id: str, show_progress: bool) -> dict:
    """Poll the record until it ends, drawing phase, remaining, MiB/s, ETA."""
    interval = 0.5
    if not show_progress:
        while True:
            rec = call(api.get_migration, migration_id)
            if rec['status'] in FINAL:
                return rec
            time.sleep(interval)
    with Progress(TextColumn('[bold]{task.fields[instance]}'), BarColumn(),
                  TextColumn('{task.percentage:>3.0f}%'),
                  TextColumn('{task.fields[phase]}'),
                  TextColumn('{task.fields[remaining]}'),
                  TextColumn('{task.fields[rate]}'),
                  TextColumn('ETA {task.fields[eta]}'), TimeElapsedColumn(),
                  console=base.Console(file=app.stderr), transient=False) as bar:
        task = bar.add_task('migrate', total=100, instance=migration_id[:8], phase=MS.QUEUED,
                            remaining='', rate='', eta='-')
        while True:
            rec = call(api.get_migration, migration_id)
            prog = rec.get('progress') or {}
            total = prog.get('total_mib') or 0
            remaining = prog.get('remaining_mib')
            pct = 100.0 * (1 - remaining / total) if total and remaining is not None else 0.0
            phase = prog.get('phase') if rec['status'] == MS.MIGRATING else rec['status']
            eta = prog.get('eta_seconds')
            bar.update(task, completed=100 if rec['status'] == MS.COMPLETED else pct,
                       instance=f"{rec['instance']} -> {rec.get('dest') or '?'}",
                       phase=phase or rec['status'],
                       remaining=f'{remaining:.0f} MiB left' if remaining is not None else '',
                       rate=f"{prog.get('mibps') or 0:.0f} MiB/s" if prog else '',
                       eta=base.fmt_seconds(eta) if eta is not None else '-')
            if rec['status'] in FINAL:
                return rec
            time.sleep(interval)


class Migrate(base.Command):
    """Live-migrate a guest to the best host (or --to HOST)."""

    def add_arguments(self, parser):
        parser.add_argument('instance')
        parser.add_argument('--to', metavar='HOST', help='force the destination')
        parser.add_argument('--wait', action='store_true',
                            help='follow the migration with a progress bar until it ends')
        schedule._add_policy_arguments(parser)
        return parser

    def compute(self, args):
        api = conductor(self.app)
        policy = {k: v for k, v in schedule._policy(args).to_dict().items() if v is not None}
        rec = call(api.migrate, args.instance, dest=args.to, policy=policy or None)
        if args.wait:
            rec = follow(self.app, api, rec['id'], show_progress=args.format == 'table')
            rec = call(api.get_migration, rec['id'])
        return rec

    def exit_code(self, data):
        return 0 if data['status'] in (MS.COMPLETED, MS.QUEUED,
                                       MS.SCHEDULING) or \
            data['status'] not in FINAL else 1

    def render(self, data, console):
        render_migration(data, console)


class MigrationsList(base.Command):
    """List migrations, newest first."""

    def add_arguments(self, parser):
        parser.add_argument('--status', choices=[*MS, ACTIVE_FILTER],
                            help=f'only this status ("{ACTIVE_FILTER}" for unfinished)')
        parser.add_argument('--instance')
        parser.add_argument('--limit', type=int, default=50)
        return parser

    def compute(self, args):
        return call(conductor(self.app).list_migrations, status=args.status,
                    instance=args.instance, limit=args.limit)

    def render(self, data, console):
        table = Table(title='Migrations')
        for col in ('id', 'instance', 'source', 'dest', 'status', 'created', 'error'):
            table.add_column(col)
        for m in data:
            table.add_row(m['id'][:8], m['instance'], m['source'], m.get('dest') or '',
                          m['status'], m['created_at'][:19], (m.get('error') or '')[:60])
        console.print(table)


class MigrationsShow(base.Command):
    """Show one migration with every step and its times."""

    def add_arguments(self, parser):
        parser.add_argument('id', help='migration id (or its first characters)')
        return parser

    def compute(self, args):
        return call(conductor(self.app).get_migration, args.id)

    def render(self, data, console):
        render_migration(data, console)


class MigrationsAbort(base.Command):
    """Abort a running migration: the guest stays on its source."""

    def add_arguments(self, parser):
        parser.add_argument('id')
        parser.add_argument('--wait', action='store_true', help='wait until it has ended')
        return parser

    def compute(self, args):
        api = conductor(self.app)
        rec = call(api.abort_migration, args.id)
        if args.wait:
            rec = follow(self.app, api, rec['id'], show_progress=False)
        return call(api.get_migration, rec['id'])

    def render(self, data, console):
        render_migration(data, console)


class HostsList(base.Command):
    """Hosts as their agents last reported them."""

    def compute(self, args):
        return call(conductor(self.app).list_hosts)

    def render(self, data, console):
        table = Table(title='Hosts')
        for col in ('host', 'up', 'last report', 'maint', 'link Mbit/s', 'RAM used/total MiB',
                    'vCPUs', 'NUMA health', 'guests'):
            table.add_column(col)
        for h in data:
            table.add_row(h['name'], 'yes' if h['up'] else 'DOWN',
                          f"{h['seconds_since_report']} s ago"
                          if h['seconds_since_report'] is not None else 'never',
                          'yes' if h['maintenance'] else '', str(h.get('link_mbps') or ''),
                          f"{h.get('memory_used_mib')}/{h.get('memory_mib')}",
                          f"{h.get('vcpus_used')}/{h.get('vcpus')}",
                          ' '.join(f'{x:.2f}' for x in h['numa_health']),
                          ', '.join(h['instances']))
        console.print(table)


class HostsShow(base.Command):
    """One host's full reported state."""

    def add_arguments(self, parser):
        parser.add_argument('host')
        return parser

    def compute(self, args):
        return call(conductor(self.app).get_host, args.host)


def drain(app, args) -> dict:
    api = conductor(app)
    if args.dry_run:
        return call(api.drain, args.host, dry_run=True)
    record = call(api.drain, args.host)
    if args.wait:
        record = follow_drain(app, api, record['id'], show=args.format == 'table')
    return record


def rebalance(app, args) -> dict:
    api = conductor(app)
    if args.dry_run:
        return call(api.rebalance, threshold=args.threshold, dry_run=True)
    record = call(api.rebalance, threshold=args.threshold)
    if args.wait:
        record = follow_drain(app, api, record['id'], show=args.format == 'table')
    return record


def follow_drain(app, api, drain_id: str, show: bool) -> dict:
    """Per-guest progress bars and the drain's overall ETA, until it ends."""
    if not show:
        while True:
            rec = call(api.get_drain, drain_id)
            if rec['status'] != DrainStatus.RUNNING:
                return rec
            time.sleep(1.0)
    console = base.Console(file=app.stderr)
    with Progress(TextColumn('[bold]{task.description}'), BarColumn(),
                  TextColumn('{task.percentage:>3.0f}%'), TextColumn('{task.fields[info]}'),
                  console=console) as bar:
        overall = bar.add_task('drain', total=None, info='planning')
        tasks: dict[str, TaskID] = {}
        start = time.monotonic()
        while True:
            rec = call(api.get_drain, drain_id)
            migs = rec.get('migrations') or []
            for m in migs:
                key = m['id']
                if key not in tasks:
                    tasks[key] = bar.add_task(f"{m['instance']} -> {m.get('dest') or '?'}",
                                              total=100, info=m['status'])
                prog = m.get('progress') or {}
                total, left = prog.get('total_mib'), prog.get('remaining_mib')
                pct = 100.0 if m['status'] == MS.COMPLETED else (
                    100.0 * (1 - left / total) if total and left is not None else 0.0)
                info = m['status'] if m['status'] != MS.MIGRATING else (
                    f"{prog.get('phase', '')} {prog.get('mibps') or 0:.0f} MiB/s "
                    f"ETA {base.fmt_seconds(prog['eta_seconds'])}"
                    if prog.get('eta_seconds') is not None else prog.get('phase', MS.MIGRATING))
                bar.update(tasks[key], completed=pct, info=info,
                           description=f"{m['instance']} -> {m.get('dest') or '?'}")
            plan = rec.get('plan') or {}
            done = sum(1 for m in migs if m['status'] == MS.COMPLETED)
            end = plan.get('predicted_end_seconds')
            bar.update(overall, info=f"{done} moved, {len(plan.get('running') or [])} running"
                       + (f", overall ETA {base.fmt_seconds(end)}" if end is not None else '')
                       + f", {time.monotonic() - start:.0f} s elapsed")
            if rec['status'] != DrainStatus.RUNNING:
                return rec
            time.sleep(1.0)


def render_drain(data: dict, console) -> None:
    if 'migrations' in data and 'status' not in data:
        from kvmplace.cli import plan
        plan.render_plan(data, console, 'Plan')
        return
    table = Table(title=f"{data.get('kind', 'drain').capitalize()} {data['id']}",
                  show_header=False)
    table.add_column('field', style='bold')
    table.add_column('value')
    for key in ('host', 'status', 'error', 'created_at', 'finished_at'):
        if data.get(key):
            table.add_row(key, str(data[key]))
    console.print(table)
    migs = data.get('migrations') or []
    if migs:
        mt = Table(title='Migrations')
        for col in ('id', 'instance', 'dest', 'status', 'measured', 'predicted', 'error'):
            mt.add_column(col)
        for m in migs:
            res = m.get('result') or {}
            est = m.get('estimate') or {}
            mt.add_row(m['id'][:8], m['instance'], m.get('dest') or '', m['status'],
                       base.fmt_seconds(res['elapsed_seconds'])
                       if res.get('elapsed_seconds') is not None else '',
                       base.fmt_seconds(est['total_seconds']) if est else '',
                       (m.get('error') or '')[:60])
        console.print(mt)
    for u in (data.get('plan') or {}).get('unplaced') or []:
        console.print(f"[bold red]not moved[/] {u['instance']}: {u['reason']}")
    for b in (data.get('plan') or {}).get('failed_after_leaving') or []:
        console.print(f"[bold red]left, but its migration failed[/] {b['instance']} "
                      f"(now on {b.get('dest') or '?'}): {b['reason']}")


class HostsMaintenance(base.Command):
    """Put a host in maintenance (no new placements) or take it out."""

    def add_arguments(self, parser):
        parser.add_argument('host')
        parser.add_argument('state', choices=('on', 'off'))
        parser.add_argument('--reason', help='shown in hosts list')
        return parser

    def compute(self, args):
        return call(conductor(self.app).set_maintenance, args.host, args.state == 'on',
                    reason=args.reason)
