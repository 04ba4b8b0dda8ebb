"""Host facts for Nova's hosts and the decisions given to nova-scheduler.

Kept apart from :mod:`kvmplace.conductor.db.api` (the migration records):
these tables (revision 0006) serve :mod:`kvmplace.conductor.decisions` only.
A host's facts are its agent's latest report when there is one, else what
``kvmplace hosts import`` recorded: an agent's report overrides imported
facts for its host.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import sqlalchemy as sa

from kvmplace import objects
from kvmplace.conductor.db import models
from kvmplace.conductor.db.api import Database, _escape_like
from kvmplace.exception import NotFound

AGENT = 'agent'
IMPORT = 'import'
#: SQLite's limit on bound parameters is 32766 in current versions, 999 in
#: old ones: names are asked for in chunks below both.
_CHUNK = 900


@dataclass
class Facts:
    """What is known about one host, where it came from and when."""
    host: objects.Host
    origin: str
    at: float
    guests: list[dict] = field(default_factory=list)
    also_imported: bool = False


def host_facts(db: Database, names: Optional[Iterable[str]]) -> dict[str, Facts]:
    """Facts of the named hosts (all hosts with ``None``), by name."""
    wanted = None if names is None else list(dict.fromkeys(names))
    out: dict[str, Facts] = {}
    with db.session() as s:
        for cls in (models.ImportedHost, models.HostRecord):
            for rows in _chunks(s, cls, wanted):
                for row in rows:
                    if cls is models.ImportedHost:
                        out[row.name] = Facts(objects.Host.from_dict(
                            {**row.facts, 'name': row.name}), IMPORT, row.imported_at)
                        continue
                    if row.reported_at is None:
                        continue
                    state = dict(row.state or {})
                    guests = state.pop('instances', None) or []
                    out[row.name] = Facts(
                        objects.Host.from_dict({**state, 'name': row.name}), AGENT,
                        row.reported_at, guests, also_imported=row.name in out)
    return out


def _chunks(session, cls, names: Optional[list[str]]):
    if names is None:
        yield session.scalars(sa.select(cls))
        return
    for i in range(0, len(names), _CHUNK):
        yield session.scalars(sa.select(cls).where(cls.name.in_(names[i:i + _CHUNK])))


def imported_links(db: Database) -> list[objects.Link]:
    with db.session() as s:
        return [objects.Link(a=r.a, b=r.b, mbps=r.mbps)
                for r in s.scalars(sa.select(models.ImportedLink))]


def import_hosts(db: Database, hosts: list[dict], links: list[dict], at: float,
                 source_file: Optional[str]) -> None:
    """Record (replace) the hosts and links of one inventory file."""
    with db.session() as s:
        for state in hosts:
            row = s.get(models.ImportedHost, state['name'])
            if row is None:
                row = models.ImportedHost(name=state['name'])
                s.add(row)
            row.facts = {k: val for k, val in state.items() if k != 'name'}
            row.imported_at = at
            row.source_file = source_file
        for link in links:
            a, b = sorted((link['a'], link['b']))
            link_row = s.get(models.ImportedLink, (a, b))
            if link_row is None:
                link_row = models.ImportedLink(a=a, b=b)
                s.add(link_row)
            link_row.mbps = link['mbps']
            link_row.imported_at = at


def record_decision(db: Database, **fields) -> None:
    with db.session() as s:
        s.add(models.NovaDecision(**fields))


_SUMMARY = ('id', 'instance_uuid', 'operation', 'source', 'candidates', 'passed', 'best',
            'elapsed_ms', 'created_at', 'request_id')


def list_decisions(db: Database, instance_uuid: Optional[str], limit: int) -> list[dict]:
    """Newest first, without the per-host detail."""
    with db.session() as s:
        query = sa.select(models.NovaDecision).order_by(models.NovaDecision.created_at.desc())
        if instance_uuid:
            query = query.where(models.NovaDecision.instance_uuid == instance_uuid)
        return [{k: d[k] for k in _SUMMARY}
                for d in (models.to_dict(r) for r in s.scalars(query.limit(limit)))]


def get_decision(db: Database, decision_id: str) -> dict:
    """One decision in full; an unambiguous id prefix is enough."""
    with db.session() as s:
        row = s.get(models.NovaDecision, decision_id)
        if row is None:
            matches = list(s.scalars(sa.select(models.NovaDecision).where(
                models.NovaDecision.id.like(f'{_escape_like(decision_id)}%',
                                            escape='\\')).limit(2)))
            if len(matches) != 1 or len(decision_id) < 4:
                raise NotFound(f'unknown decision "{decision_id}"')
            row = matches[0]
        return models.to_dict(row)
