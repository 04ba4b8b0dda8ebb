"""Commands for kvmplace inside Nova: ``hosts import``, ``decisions list|show``.

``hosts import FILE`` records hosts and links from a file in the inventory
format (JSON or YAML; its ``instances`` are ignored: Nova's guests are
known by their instance UUID when kvmplace's filter asks) for hosts no
kvmplace agent reports on; an agent's report overrides them for its host.
``decisions list|show`` read what the conductor answered nova-scheduler,
so an operator can tell why Nova put a guest where it did.
"""
from __future__ import annotations

import os

from kvmplace import inventory as inv_mod
from kvmplace import rpc
from kvmplace.cli import base, client, render

DECISION_COLUMNS = ['id', 'created_at', 'instance_uuid', 'operation', 'source', 'candidates',
                    'passed', 'best', 'elapsed_ms']
RANKED_COLUMNS = ['host', 'weight', 'estimate']
REJECTED_COLUMNS = ['host', 'filter', 'reason']


class NovaAPI:
    """Client of the conductor's ``kvmplace-nova`` RPC namespace (API 1.0,
    kvmplace.conductor.decisions.NovaEndpoint)."""

    def __init__(self, app):
        import oslo_messaging as messaging

        from kvmplace.conductor import decisions
        client.conductor(app)           # the same broker checks, one readable line
        target = messaging.Target(topic=rpc.CONDUCTOR_TOPIC, namespace=decisions.NAMESPACE,
                                  version=decisions.API_VERSION)
        self._client = rpc.signed(
            messaging.get_rpc_client(rpc.get_transport(app.conf), target,
                                     timeout=app.options.rpc_timeout),
            app.conf, rpc.CONDUCTOR_TOPIC)

    def __getattr__(self, method: str):
        def call(ctxt, **kwargs):
            return self._client.prepare().call(ctxt or {}, method, **kwargs)
        return call


class HostsImport(base.ShowOne):
    """Record hosts and links from an inventory file (JSON or YAML) for
    hosts without a kvmplace agent; an agent's report overrides them."""

    def add_arguments(self, parser):
        parser.add_argument('file', help='inventory file (its instances are ignored)')
        return parser

    def compute(self, args):
        inventory = inv_mod.load(args.file)
        hosts = [{k: val for k, val in h.to_dict().items() if k not in ('up', 'updated_at')}
                 for h in inventory.hosts.values()]
        links = [link.to_dict() for link in inventory.links]
        return client.call(NovaAPI(self.app).import_hosts, hosts=hosts, links=links,
                           source_file=os.path.basename(args.file))


class DecisionsList(base.Lister):
    """What the conductor answered nova-scheduler, newest first."""

    def add_arguments(self, parser):
        parser.add_argument('--instance', help='only this instance UUID')
        parser.add_argument('--limit', type=int, default=50, help='at most this many')
        return parser

    def compute(self, args):
        return client.call(NovaAPI(self.app).list_decisions, instance_uuid=args.instance,
                           limit=args.limit)

    def rows(self, data):
        return DECISION_COLUMNS, [[d.get(c) for c in DECISION_COLUMNS] for d in data]

    def table_notes(self, data):
        return [] if data else ['No decision recorded: nova-scheduler has not asked kvmplace.']


class DecisionsShow(base.ShowOne):
    """One decision: Nova's request, kvmplace's ranking, rejections and why."""

    def add_arguments(self, parser):
        parser.add_argument('decision', help='decision id (or its first characters)')
        return parser

    def compute(self, args):
        return client.call(NovaAPI(self.app).get_decision, decision_id=args.decision)

    def fields(self, data):
        shown = {k: val for k, val in data.items() if k != 'result'}
        return render.record_fields(shown)

    def extra_tables(self, data):
        result = data.get('result') or {}
        ranked = [[r['host'], r['weight'], _estimate_text(r.get('estimate'))]
                  for r in result.get('ranked') or []]
        rejected = [[r['host'], r['filter'], render.safe(r['reason'])]
                    for r in result.get('rejected') or []]
        rejected += [[r['host'], 'unknown', render.safe(r['reason'])]
                     for r in result.get('unknown') or []]
        return [('Ranked (best first)', RANKED_COLUMNS, ranked),
                ('Rejected or unknown', REJECTED_COLUMNS, rejected)]


def _estimate_text(est) -> str:
    if not est:
        return ''
    return (f"{render.fmt_seconds(est.get('total_seconds'))} at "
            f"{est.get('bandwidth_mibps') or 0:.0f} MiB/s ({render.safe(est.get('bottleneck'))})")
