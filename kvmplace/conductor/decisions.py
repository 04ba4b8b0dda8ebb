"""Answers for nova-scheduler: kvmplace's verdict on Nova's candidate hosts.

kvmplace's filter and weigher inside nova-scheduler (:mod:`kvmplace.nova`)
make ONE call per scheduling request, :meth:`NovaDecisions.decide`, with
Nova's view of the request: the instance UUID, the flavor's RAM and vCPUs,
the source host and the names of the hosts Nova still considers. The answer
holds, per candidate, whether it passes kvmplace's filters (and if not,
which filter and why) and kvmplace's weight; both the Nova filter and the
Nova weigher read it.

Facts about a host come from its agent's report, else from
``kvmplace hosts import`` (an agent's report overrides imported facts).
A fact older than the request's ``max_fact_age_seconds`` is *unknown*: the
host passes (Nova decides on its own filters) with the lowest kvmplace
weight, and the decision says why. A stale fact is never taken as healthy.

Every decision is recorded (``nova_decisions``), so ``kvmplace decisions
show`` answers "why did Nova put this guest there?".

The RPC surface is :class:`NovaEndpoint`, in its own namespace
(``kvmplace-nova``) on the conductor's topic: it lists its methods one by
one, so nothing else of the conductor is callable through it.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
import uuid as uuidlib
from typing import Any, Optional

import oslo_messaging as messaging

from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.conductor import validate as v
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import facts as facts_db
from kvmplace.exception import InvalidInput, KvmplaceError
from kvmplace.nova import conf as nova_conf
from kvmplace.scheduler import manager as sched
from kvmplace.status import MigrationStatus

LOG = logging.getLogger(__name__)

#: oslo.messaging namespace of the Nova-facing endpoint.
NAMESPACE = 'kvmplace-nova'
API_VERSION = '1.0'
#: The only names callable in NAMESPACE.
RPC_METHODS = ('decide', 'import_hosts', 'list_decisions', 'get_decision', 'list_facts')

#: Candidates per request: Nova's largest cells schedule over a few
#: thousand hosts; this bounds the cost of one request before any work.
MAX_CANDIDATES = 20000
#: Ranked hosts recorded with their weighers and estimate; the others with
#: their weight only (a decision over 1,000 hosts stays a few kB).
RECORDED_IN_FULL = 20
#: Name of the stand-in source of requests without one (boots): it sits on
#: the implicit switch, so only the NUMA-health checks tell hosts apart.
NO_SOURCE = ' no-source'

UNKNOWN = 'unknown'


def check_request(value: Any) -> dict:
    """Nova's request, checked field by field (it crosses the bus)."""
    if not isinstance(value, dict):
        raise InvalidInput('request', f'must be a dict, not {v._show(value)}')
    req: dict[str, Any] = {}
    req['instance_uuid'] = v.uuid('request.instance_uuid', value.get('instance_uuid'))
    req['operation'] = v.shared.choice('request.operation', value.get('operation'),
                                       nova_conf.OPERATIONS)
    req['memory_mib'] = v.integer('request.memory_mib', value.get('memory_mib'), 1, 2 ** 40)
    req['vcpus'] = v.integer('request.vcpus', value.get('vcpus'), 1, 2 ** 20)
    source = value.get('source')
    req['source'] = None if source is None else v.name('request.source', source)
    cands = value.get('candidates')
    if not isinstance(cands, list) or len(cands) > MAX_CANDIDATES:
        raise InvalidInput('request.candidates',
                           f'must be a list of at most {MAX_CANDIDATES} host names')
    req['candidates'] = [v.name(f'request.candidates[{i}]', c) for i, c in enumerate(cands)]
    req['filters'] = _subset('request.filters', value.get('filters'), nova_conf.FILTERS)
    req['weighers'] = _subset('request.weighers', value.get('weighers'), nova_conf.WEIGHERS)
    req['dirty_rate_mibps'] = v.shared.number('request.dirty_rate_mibps',
                                              value.get('dirty_rate_mibps', 0.0), 0.0, 1e7)
    req['max_fact_age_seconds'] = v.number('request.max_fact_age_seconds',
                                           value.get('max_fact_age_seconds', 3600), 1.0, 1e9)
    req['request_id'] = v.text('request.request_id', value.get('request_id'), max_len=64)
    return req


def _subset(field: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or len(value) > len(allowed):
        raise InvalidInput(field, f'must be a list of names among {", ".join(allowed)}')
    out = [v.shared.choice(f'{field}[{i}]', item, allowed) for i, item in enumerate(value)]
    if len(set(out)) != len(out):
        raise InvalidInput(field, 'names a plugin twice')
    return out


class NovaDecisions:
    """Decide for Nova, record the decision; host facts for Nova's hosts."""

    def __init__(self, conf, db: db_api.Database, links: Optional[list[dict]] = None,
                 clock=time):
        self.conf = conf
        self.db = db
        self.clock = clock
        self.links = [objects.Link(**link) for link in links or []]
        self._lock = threading.Lock()
        self._managers: dict[tuple, sched.SchedulerManager] = {}
        self._facts = facts_db.FactsCache(db)
        # Decisions are written by one thread after the answer has gone:
        # a commit (an fsync) must not add to nova-scheduler's wait. Reads
        # of the decisions wait for the writes queued before them.
        self._recorder = futures.ThreadPoolExecutor(1, thread_name_prefix='nova-decisions')

    def _scheduler(self, filters: list[str], weighers: list[str]) -> sched.SchedulerManager:
        """One SchedulerManager per (filters, weighers) set, loaded once."""
        key = (tuple(filters), tuple(weighers))
        with self._lock:
            mgr = self._managers.get(key)
            if mgr is None:
                mgr = sched.SchedulerManager(
                    self.conf,
                    filters=sched.load_plugins(sched.FILTER_NAMESPACE, filters, self.conf),
                    weighers=sched.load_plugins(sched.WEIGHER_NAMESPACE, weighers, self.conf))
                self._managers[key] = mgr
            return mgr

    # -- the call from nova-scheduler --------------------------------------------
    def decide(self, request: Any) -> dict:
        """Per candidate: ``[passes, weight, filter, reason]``; see module doc."""
        started = time.monotonic()
        req = check_request(request)
        now = self.clock.time()
        source = req['source']
        names = [n for n in dict.fromkeys(req['candidates']) if n != source]
        wanted = names + ([source] if source else [])
        facts = self._facts.facts(wanted)
        max_age = req['max_fact_age_seconds']

        def fresh(name: str) -> Optional[facts_db.Facts]:
            f = facts.get(name)
            return f if f is not None and now - f.at <= max_age else None

        unknown: dict[str, str] = {}
        known: list[objects.Host] = []
        for name in names:
            f = fresh(name)
            if f is None:
                unknown[name] = _unknown_reason(facts.get(name), now, max_age)
            else:
                known.append(f.host)
        src_facts = fresh(source) if source else None
        if source and src_facts is None:
            # Without fresh facts about the source, no path, NUMA or
            # convergence verdict can be made: every candidate is unknown.
            why = 'source host ' + _unknown_reason(facts.get(source), now, max_age)
            unknown.update({h.name: why for h in known})
            known = []
        result: dict = {'ranked': [], 'rejected': []}
        instance_seen = False
        if known:
            src_host = src_facts.host if src_facts else objects.Host(
                name=NO_SOURCE, link_mbps=max(h.link_mbps for h in known))
            instance, instance_seen = _instance(req, src_host.name, src_facts)
            filters, weighers = req['filters'], req['weighers']
            if src_facts is None:   # no source (a boot): only NUMA health applies
                filters = [f for f in filters if f == 'numa_health']
                weighers = [w for w in weighers if w == 'numa_health']
            scheduler = self._scheduler(filters, weighers)
            hosts = {h.name: h for h in known}
            hosts[src_host.name] = src_host
            inventory = objects.Inventory(hosts=hosts, instances={instance.name: instance})
            topology = topo.Topology.build(hosts.values(), self._links(hosts, facts))
            spec = scheduler.build_spec(
                inventory, objects.MigrationRequest(instance=instance.name), topology, now)
            result = scheduler.select_with_spec(spec, known)
        answer, record = _answer(result, unknown)
        best = result['ranked'][0]['host'] if result['ranked'] else None
        planned = self._planned_move(req['instance_uuid'], names)
        if planned is not None:
            best = _pass_planned(answer, record, planned)
        decision_id = str(uuidlib.uuid4())
        elapsed_ms = (time.monotonic() - started) * 1000.0
        passed = sum(1 for a in answer.values() if a[0])
        self._recorder.submit(
            self._record, id=decision_id, instance_uuid=req['instance_uuid'],
            operation=req['operation'], source=source, request_id=req['request_id'],
            candidates=len(names), passed=passed, best=best,
            request={k: req[k] for k in ('memory_mib', 'vcpus', 'filters', 'weighers',
                                         'dirty_rate_mibps', 'max_fact_age_seconds')}
            | {'instance_reported': instance_seen},
            result=record, elapsed_ms=round(elapsed_ms, 3))
        LOG.info('decision %s for Nova: instance %s (%s from %s), %d candidates, %d pass, '
                 '%d unknown, best %s (%.1f ms)', decision_id[:8], req['instance_uuid'],
                 req['operation'], source, len(names), passed, len(unknown), best, elapsed_ms)
        return {'decision_id': decision_id, 'hosts': answer}

    def _planned_move(self, instance_uuid: str, names: list[str]) -> Optional[dict]:
        """kvmplace's own migration of this guest that Nova is scheduling
        now, if any: with ``[conductor] driver = nova`` the conductor asks
        Nova to live-migrate to the host it chose, and Nova's scheduler then
        asks this filter about that host. The record is 'migrating' by then
        and names the host (kvmplace.conductor.workflow)."""
        try:
            running = self.db.list_migrations(status=MigrationStatus.MIGRATING, limit=100000)
        except db_api.DatabaseError as exc:
            LOG.warning('decision for %s: kvmplace migrations not read: %s', instance_uuid, exc)
            return None
        for mig in running:
            if mig.get('instance_uuid') == instance_uuid and mig.get('dest') in names:
                return {'migration_id': mig['id'], 'host': mig['dest'],
                        'drain_id': mig.get('drain_id')}
        return None

    def _record(self, **fields) -> None:
        try:
            facts_db.record_decision(self.db, **fields)
        except db_api.DatabaseError as exc:
            LOG.warning('decision %s for Nova not recorded: %s', fields['id'][:8], exc)

    def _written(self) -> None:
        """Wait for the decisions queued so far to be written."""
        self._recorder.submit(lambda: None).result()

    def _links(self, hosts: dict[str, objects.Host],
               facts: dict[str, facts_db.Facts]) -> list[objects.Link]:
        """Imported and configured links; a host on none of them hangs off
        the implicit switch by its own link (as without any links)."""
        links = self._facts.links() + self.links
        if not links:
            return []
        ends = {link.a for link in links} | {link.b for link in links}
        return links + [objects.Link(a=name, b=topo.DEFAULT_SWITCH, mbps=host.link_mbps)
                        for name, host in hosts.items() if name not in ends]

    # -- operators ---------------------------------------------------------------
    def import_hosts(self, hosts: Any, links: Any, source_file: Any) -> dict:
        """Record hosts and links from an inventory file (already parsed by
        the CLI; checked again here, it crossed the bus)."""
        if not isinstance(hosts, list) or not hosts or len(hosts) > MAX_CANDIDATES:
            raise InvalidInput('hosts', f'must list 1 to {MAX_CANDIDATES} hosts')
        if not isinstance(links, list) or len(links) > 10 * MAX_CANDIDATES:
            raise InvalidInput('links', 'must be a list of links')
        clean_hosts = []
        for i, host in enumerate(hosts):
            state = v.host_state(host)
            state.pop('instances', None)     # guests in the file are not recorded
            try:
                objects.Host.from_dict(state)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f'hosts[{i}]', str(exc)) from None
            clean_hosts.append(state)
        clean_links = []
        for i, link in enumerate(links):
            if not isinstance(link, dict):
                raise InvalidInput(f'links[{i}]', 'must be {"a", "b", "mbps"}')
            clean_links.append({'a': v.name(f'links[{i}].a', link.get('a')),
                                'b': v.name(f'links[{i}].b', link.get('b')),
                                'mbps': v.number(f'links[{i}].mbps', link.get('mbps'),
                                                 1e-3, 1e7)})
        source = v.text('source_file', source_file, max_len=1024)
        facts_db.import_hosts(self.db, clean_hosts, clean_links, self.clock.time(), source)
        self._facts.forget_imported()
        return {'hosts': len(clean_hosts), 'links': len(clean_links), 'source_file': source}

    def list_facts(self) -> list[dict]:
        """Every host kvmplace has facts on: where they came from, how old."""
        now = self.clock.time()
        out = []
        for name, f in sorted(facts_db.host_facts(self.db, None).items()):
            out.append({'name': name, 'origin': f.origin,
                        'age_seconds': round(now - f.at, 1),
                        'also_imported': f.also_imported,
                        'link_mbps': f.host.link_mbps, 'memory_mib': f.host.memory_mib,
                        'memory_used_mib': f.host.memory_used_mib, 'vcpus': f.host.vcpus,
                        'vcpus_used': f.host.vcpus_used,
                        'numa_health': [round(n.health, 3) for n in f.host.numa]})
        return out

    def list_decisions(self, instance_uuid: Any = None, limit: Any = 50) -> list[dict]:
        uuid = None if instance_uuid is None else v.uuid('instance_uuid', instance_uuid)
        self._written()
        return facts_db.list_decisions(self.db, uuid, v.integer('limit', limit, 1, 10000))

    def get_decision(self, decision_id: Any) -> dict:
        decision_id = v.ident('decision_id', decision_id)
        self._written()
        return facts_db.get_decision(self.db, decision_id)


def _unknown_reason(f: Optional[facts_db.Facts], now: float, max_age: float) -> str:
    if f is None:
        return 'has no facts (no agent report, not imported)'
    return (f'facts are stale ({f.origin}, {now - f.at:.0f} s old > '
            f'max_fact_age_seconds {max_age:g})')


def _instance(req: dict, source: str, src_facts: Optional[facts_db.Facts]
              ) -> tuple[objects.Instance, bool]:
    """The guest as the source's agent reports it (dirty rate, emulator
    node, disks), else as Nova's flavor describes it with the default
    dirty rate. Returns (instance, whether an agent reported it)."""
    uuid = req['instance_uuid']
    for guest in (src_facts.guests if src_facts else []):
        if guest.get('uuid') == uuid or guest.get('name') == uuid:
            data = {k: val for k, val in guest.items()
                    if k in objects.Instance.__dataclass_fields__}
            data.update(name=uuid, host=source, uuid=uuid)
            return objects.Instance.from_dict(data), True
    return objects.Instance(name=uuid, host=source, memory_mib=req['memory_mib'],
                            vcpus=req['vcpus'], dirty_rate_mibps=req['dirty_rate_mibps'],
                            uuid=uuid), False


def _answer(result: dict, unknown: dict[str, str]) -> tuple[dict, dict]:
    """(what Nova gets, what is recorded) from the scheduler's result."""
    answer: dict[str, list] = {}
    ranked = result['ranked']
    for item in ranked:
        answer[item['host']] = [True, item['weight'], None, None]
    for item in result['rejected']:
        answer[item['host']] = [False, 0.0, item['filter'], item['reason']]
    floor = min((item['weight'] for item in ranked), default=0.0)
    for name, why in unknown.items():
        answer[name] = [True, floor, UNKNOWN, why]
    record = {
        'ranked': [item if i < RECORDED_IN_FULL else
                   {'host': item['host'], 'weight': item['weight']}
                   for i, item in enumerate(ranked)],
        'rejected': result['rejected'],
        'unknown': [{'host': n, 'reason': why} for n, why in unknown.items()],
    }
    return answer, record


def _pass_planned(answer: dict, record: dict, planned: dict) -> str:
    """A host kvmplace itself chose for this guest passes, weighted
    first: its plan already ran kvmplace's filters (with the drain's view of
    links and running migrations, which one Nova request does not have), so
    a second verdict here could only contradict kvmplace's own decision -
    Nova's scheduler would answer NoValidHost to kvmplace. The decision
    records the migration and, if the filters would have refused the host
    now, what they said. Returns the host."""
    host = planned['host']
    verdict = answer.get(host)
    if verdict is not None and not verdict[0]:
        record['overridden'] = {'host': host, 'filter': verdict[2], 'reason': verdict[3]}
        LOG.info('kvmplace migration %s planned %s for this guest: passed although '
                 'filter %s says: %s', planned['migration_id'][:8], host, verdict[2],
                 verdict[3])
    top = max((a[1] for a in answer.values() if a[0]), default=0.0)
    answer[host] = [True, max(top, verdict[1] if verdict else 0.0), None, None]
    record['planned'] = planned
    return host


_expected = messaging.expected_exceptions(KvmplaceError)


class NovaEndpoint:
    """RPC methods for nova-scheduler and for the operator's Nova commands.

    API version history:

    * 1.0 - decide, import_hosts, list_facts, list_decisions, get_decision
    """

    target = messaging.Target(namespace=NAMESPACE, version=API_VERSION)

    def __init__(self, decisions: NovaDecisions):
        self._decisions = decisions

    @_expected
    def decide(self, ctxt, request: dict) -> dict:
        return self._decisions.decide(request)

    @_expected
    def import_hosts(self, ctxt, hosts: list, links: list,
                     source_file: Optional[str] = None) -> dict:
        return self._decisions.import_hosts(hosts, links, source_file)

    @_expected
    def list_facts(self, ctxt) -> list[dict]:
        return self._decisions.list_facts()

    @_expected
    def list_decisions(self, ctxt, instance_uuid: Optional[str] = None,
                       limit: int = 50) -> list[dict]:
        return self._decisions.list_decisions(instance_uuid, limit)

    @_expected
    def get_decision(self, ctxt, decision_id: str) -> dict:
        return self._decisions.get_decision(decision_id)
