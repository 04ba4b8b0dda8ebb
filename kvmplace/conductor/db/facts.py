"""Host facts for Nova's hosts and the decisions given to nova-scheduler.

Kept apart from :mod:`kvmplace.conductor.db.api` (the migration records):
these tables (revision 0006) serve :mod:`kvmplace.conductor.decisions` only.
A host's facts are its agent's latest report when there is one, else what
``kvmplace hosts import`` recorded: an agent's report overrides imported
facts for its host.
"""
from __future__ import annotations

import threading
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


class FactsCache:
    """:func:`host_facts` for one process, parsing only what changed.

    Each request reads every candidate's facts; parsing 1,000 hosts' JSON
    into objects costs hundreds of milliseconds, while what changed since
    the last request is a few agents' reports. So each request reads only
    (name, reported_at) and (name, imported_at) - no JSON - and fetches
    and parses just the rows whose stamp moved. Imported links are
    re-read when their count or newest stamp changes. Entries are shared
    read-only between requests (the scheduler never modifies a Host).
    """

    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._agent: dict[str, tuple[float, Facts]] = {}
        self._imported: dict[str, tuple[float, Facts]] = {}
        self._links: tuple[tuple, list[objects.Link]] = ((), [])

    def facts(self, names: Iterable[str]) -> dict[str, Facts]:
        wanted = set(names)
        with self.db.session() as s:
            imp = {n: at for n, at in s.execute(sa.select(
                models.ImportedHost.name, models.ImportedHost.imported_at)) if n in wanted}
            agt = {n: at for n, at in s.execute(sa.select(
                models.HostRecord.name, models.HostRecord.reported_at).where(
                models.HostRecord.reported_at.is_not(None))) if n in wanted}
            stale_imp = [n for n, at in imp.items()
                         if self._imported.get(n, (None,))[0] != at]
            stale_agt = [n for n, at in agt.items() if self._agent.get(n, (None,))[0] != at]
            fresh_imp = {}
            for rows in _chunks(s, models.ImportedHost, stale_imp):
                for row in rows:
                    fresh_imp[row.name] = (row.imported_at, Facts(objects.Host.from_dict(
                        {**row.facts, 'name': row.name}), IMPORT, row.imported_at))
            fresh_agt = {}
            for rows in _chunks(s, models.HostRecord, stale_agt):
                for row in rows:
                    state = dict(row.state or {})
                    guests = state.pop('instances', None) or []
                    fresh_agt[row.name] = (row.reported_at, Facts(
                        objects.Host.from_dict({**state, 'name': row.name}), AGENT,
                        row.reported_at, guests))
        with self._lock:
            self._imported.update(fresh_imp)
            self._agent.update(fresh_agt)
            out: dict[str, Facts] = {}
            for name in imp:
                entry = self._imported.get(name)
                if entry is not None:
                    out[name] = entry[1]
            for name in agt:
                entry = self._agent.get(name)
                if entry is None:
                    continue
                facts = entry[1]
                if name in out and not facts.also_imported:
                    facts = Facts(facts.host, facts.origin, facts.at, facts.guests, True)
                out[name] = facts
        return out

    def forget_imported(self) -> None:
        """Drop the imported facts and links (this process imported anew;
        other processes' imports show in the stamps)."""
        with self._lock:
            self._imported.clear()
            self._links = ((), [])

    def links(self) -> list[objects.Link]:
        with self.db.session() as s:
            stamp = tuple(s.execute(sa.select(sa.func.count(), sa.func.max(
                models.ImportedLink.imported_at))).one())
            if stamp == self._links[0]:
                return self._links[1]
            links = [objects.Link(a=r.a, b=r.b, mbps=r.mbps)
                     for r in s.scalars(sa.select(models.ImportedLink))]
        self._links = (stamp, links)
        return links


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


def with_origins(db: Database, summaries: list[dict], now: float) -> list[dict]:
    """``hosts list``'s rows with where each host's facts come from and
    their age, plus the hosts known only from ``hosts import``."""
    with db.session() as s:
        imported = {r.name: r for r in s.scalars(sa.select(models.ImportedHost))}
        rows = {r.name: (r.facts, r.imported_at) for r in imported.values()}
    out = []
    for summary in summaries:
        name = summary['name']
        since = summary.get('seconds_since_report')
        summary['facts'] = (('agent (overrides import)' if name in rows else AGENT)
                            if since is not None else (IMPORT if name in rows else None))
        summary['facts_age_seconds'] = since if since is not None else (
            round(now - rows[name][1], 1) if name in rows else None)
        rows.pop(name, None)
        out.append(summary)
    for name, (facts, at) in sorted(rows.items()):
        numa = facts.get('numa') or []
        out.append({'name': name, 'up': None, 'seconds_since_report': None,
                    'maintenance': False, 'link_mbps': facts.get('link_mbps'),
                    'memory_mib': facts.get('memory_mib'),
                    'memory_used_mib': facts.get('memory_used_mib'),
                    'vcpus': facts.get('vcpus'), 'vcpus_used': facts.get('vcpus_used'),
                    'numa_health': [round(n['bandwidth_mibps'] / n['baseline_mibps'], 3)
                                    for n in numa
                                    if n.get('bandwidth_mibps') and n.get('baseline_mibps')],
                    'instances': [], 'facts': IMPORT,
                    'facts_age_seconds': round(now - at, 1)})
    return out
