"""Commands that go through the conductor: migrate, migrations, hosts, drains.

They need ``--config-file`` with the broker's ``transport_url`` (the lab
writes one: ``kvmplace-lab status`` shows where). Lists are cliff Listers
(``-f table|json|yaml|csv|value``, ``-c``), single records ShowOnes; with
``-f json`` and no ``-c`` each prints the conductor's record as it is.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from kvmplace.cli import base, client, options, plan, progress, render
from kvmplace.status import ACTIVE_FILTER, DrainStatus, MigrationStatus

FINAL = progress.FINAL

MIGRATION_COLUMNS = ['id', 'instance', 'source', 'dest', 'status', 'created_at', 'error']
STEP_COLUMNS = ['seq', 'name', 'host', 'status', 'started_at', 'seconds', 'message']
HOST_COLUMNS = ['name', 'up', 'seconds_since_report', 'maintenance', 'link_mbps',
                'memory_used_mib', 'memory_mib', 'vcpus_used', 'vcpus', 'numa_health',
                'instances', 'facts', 'facts_age_seconds']
DRAIN_COLUMNS = ['id', 'kind', 'host', 'status', 'created_at', 'finished_at', 'error']


def migration_fields(rec: dict) -> tuple[list[str], list[Any]]:
    """A migration record as fields; nested parts in one readable line."""
    names, values = [], []
    for key, value in rec.items():
        names.append(key)
        if key == 'estimate' and value:
            values.append(render.Cell(value, f"{render.fmt_seconds(value.get('total_seconds'))}"
                                             f" at {value.get('bandwidth_mibps') or 0:.0f} MiB/s"
                                             f" ({render.safe(value.get('bottleneck'))})"))
        elif key == 'result' and value and value.get('elapsed_seconds') is not None:
            values.append(render.Cell(value, f"{render.fmt_seconds(value['elapsed_seconds'])},"
                                             f" downtime {value.get('downtime_ms') or 0:.0f} ms"))
        elif key == 'pin' and value:
            values.append(render.Cell(value, f"node {render.safe(value.get('node'))} CPUs "
                                             f"{render.safe(value.get('cpus'))} (was "
                                             f"{render.safe(value.get('previous_cpus'))})"))
        elif key == 'steps' and isinstance(value, list):
            values.append(render.Cell(value, f'{len(value)} (below)' if value else '-'))
        else:
            values.append(render.record_fields({key: value})[1][0])
    return names, values


def step_rows(rec: dict) -> list[list]:
    return [[s['seq'], s['name'], s.get('host') or '', s['status'],
             render.safe((s.get('started_at') or '')[11:23]), _duration(s),
             render.safe((s.get('message') or '')[:90])] for s in rec.get('steps') or []]


def _duration(step: dict) -> str:
    a, b = step.get('started_at'), step.get('finished_at')
    if not a or not b:
        return ''
    fmt = '%Y-%m-%dT%H:%M:%S.%fZ'
    try:
        return f'{(datetime.strptime(b, fmt) - datetime.strptime(a, fmt)).total_seconds():.2f}'
    except (TypeError, ValueError):
        return ''


class _MigrationRecord(base.ShowOne):
    """One migration record, its steps in a second table."""

    def fields(self, data):
        return migration_fields(data)

    def extra_tables(self, data):
        return [('Steps', STEP_COLUMNS, step_rows(data))]


class Migrate(_MigrationRecord):
    """Live-migrate a guest to the best host (or --to HOST)."""

    def add_arguments(self, parser):
        parser.add_argument('instance')
        parser.add_argument('--to', metavar='HOST', help='force the destination')
        parser.add_argument('--wait', action='store_true',
                            help='follow the migration with a progress bar until it ends')
        options.add_policy_arguments(parser)
        return parser

    def compute(self, args):
        api = client.conductor(self.app)
        rec = client.call(api.migrate, args.instance, dest=args.to,
                          policy=options.policy_dict(options.policy(args)))
        if args.wait:
            rec = progress.follow(self.app, api, rec['id'],
                                  show_progress=args.formatter == 'table')
            rec = client.call(api.get_migration, rec['id'])
        return rec

    def outcome(self, data):
        if data['status'] in FINAL and data['status'] != MigrationStatus.COMPLETED:
            return 1, render.safe(f"migration of {data['instance']} {data['status']}: "
                                  f"{data.get('error') or ''}")
        return 0, None


class MigrationsList(base.Lister):
    """List migrations, newest first."""

    def add_arguments(self, parser):
        parser.add_argument('--status', choices=[*MigrationStatus, ACTIVE_FILTER],
                            help=f'only this status ("{ACTIVE_FILTER}" for unfinished)')
        parser.add_argument('--instance')
        parser.add_argument('--limit', type=int, default=50)
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).list_migrations, status=args.status,
                           instance=args.instance, limit=args.limit)

    def rows(self, data):
        return MIGRATION_COLUMNS, [
            [render.Cell(m['id'], render.safe(m['id'][:8])), m['instance'], m['source'],
             m.get('dest') or '', m['status'],
             render.Cell(m.get('created_at'), render.safe((m.get('created_at') or '')[:19])),
             render.Cell(m.get('error'), render.safe((m.get('error') or '')[:60]))]
            for m in data]


class MigrationsShow(_MigrationRecord):
    """Show one migration with every step and its times."""

    def add_arguments(self, parser):
        parser.add_argument('id', help='migration id (or its first characters)')
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).get_migration, args.id)


class MigrationsAbort(_MigrationRecord):
    """Abort a running migration: the guest stays on its source."""

    def add_arguments(self, parser):
        parser.add_argument('id')
        parser.add_argument('--wait', action='store_true', help='wait until it has ended')
        return parser

    def compute(self, args):
        api = client.conductor(self.app)
        rec = client.call(api.abort_migration, args.id)
        if args.wait:
            rec = progress.follow(self.app, api, rec['id'], show_progress=False)
        return client.call(api.get_migration, rec['id'])


def host_row(h: dict) -> list:
    since = h.get('seconds_since_report')
    health = h.get('numa_health') or []
    return [h['name'], render.Cell(h.get('up'), 'yes' if h.get('up') else
                                      '-' if h.get('up') is None else 'DOWN'),
            render.Cell(since, f'{since} s ago' if since is not None else 'never'),
            render.Cell(h.get('maintenance'), 'yes' if h.get('maintenance') else ''),
            h.get('link_mbps'), h.get('memory_used_mib'), h.get('memory_mib'),
            h.get('vcpus_used'), h.get('vcpus'),
            render.Cell(health, ' '.join(f'{x:.2f}' for x in health)),
            render.Cell(h.get('instances') or [],
                        ', '.join(render.safe(i) for i in h.get('instances') or [])),
            h.get('facts') or '', render.seconds_cell(h.get('facts_age_seconds'))]


class HostsList(base.Lister):
    """Hosts as their agents last reported them, and hosts known only from
    ``hosts import``: ``facts`` says where each host's facts came from
    (agent, import, or agent overriding an import) and how old they are."""

    def compute(self, args):
        return client.call(client.conductor(self.app).list_hosts)

    def rows(self, data):
        return HOST_COLUMNS, [host_row(h) for h in data]


class HostsShow(base.ShowOne):
    """One host's full reported state."""

    def add_arguments(self, parser):
        parser.add_argument('host')
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).get_host, args.host)


class HostsMaintenance(base.ShowOne):
    """Put a host in maintenance (no new placements) or take it out."""

    def add_arguments(self, parser):
        parser.add_argument('host')
        parser.add_argument('state', choices=('on', 'off'))
        parser.add_argument('--reason', help='shown in hosts list')
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).set_maintenance, args.host,
                           args.state == 'on', reason=args.reason)


class DrainsList(base.Lister):
    """Drains and rebalances, as the conductor recorded them."""

    def add_arguments(self, parser):
        parser.add_argument('--status', choices=list(DrainStatus), help='only this status')
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).list_drains, status=args.status)

    def rows(self, data):
        return DRAIN_COLUMNS, [[d.get(c) for c in DRAIN_COLUMNS] for d in data]


class DrainsShow(base.Lister):
    """One drain or rebalance: its migrations, what was not moved and why."""

    def add_arguments(self, parser):
        parser.add_argument('id', help='drain id')
        return parser

    def compute(self, args):
        return client.call(client.conductor(self.app).get_drain, args.id)

    def rows(self, data):
        return plan.record_rows(data)

    def table_notes(self, data):
        return plan.record_notes(data)
