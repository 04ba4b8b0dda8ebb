"""The conductor's Nova driver: the agents' interface, answered by Nova.

With ``[conductor] driver = nova`` the migration workflow
(kvmplace.conductor.workflow) runs unchanged; its ``agents`` collaborator
is a :class:`NovaDriver`, which answers each agent method the way a Nova
cloud must (OPENSTACK.md: nothing moves a Nova guest behind Nova's back):

- ``check_destination``: Nova's nova-compute service on the host is
  enabled and up, and Placement has room for the flavor; a refusal sends
  the workflow to the next-ranked host, as with the libvirt driver.
- ``migrate``: ``POST /servers/{id}/action`` ``os-migrateLive`` with the
  chosen host and ``block_migration: auto`` at a microversion where the
  host cannot be forced (Nova's scheduler validates it); then a watcher
  thread follows Nova's migration record and casts progress and the
  result to the conductor exactly as an agent does.
- ``get_job`` / ``abort``: Nova's in-progress migrations of the server /
  ``DELETE /servers/{id}/migrations/{id}``.
- ``get_host_state``: the host's state from Nova (where the workflow asks
  "where does the guest run?").
- ``pre_pin``, ``restore_pin`` and ``post_verify``: the kvmplace agent
  beside nova-compute (the guest by its libvirt domain name, which Nova
  reports, matched by instance UUID), after Nova's own check of the server
  for post_verify. A host whose agent does not report: the step is skipped
  and its record says so.

These three are the only calls that reach an agent (and so libvirt) for a
Nova-managed guest; the rest go to Nova's API.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Optional

from kvmplace import estimator
from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor.drivers import novaapi
from kvmplace.conductor.drivers import novainventory as ninv
from kvmplace.conductor.drivers import novaprogress as nprog
from kvmplace.exception import KvmplaceError, NotFound
from kvmplace.status import JobOutcome

LOG = logging.getLogger(__name__)

#: How long migrate() looks for the record Nova's conductor creates.
FIND_MIGRATION_SECONDS = 30.0


#: While Nova does not answer, one warning per this many seconds per
#: migration: the watcher polls every [nova] poll_interval_seconds (0.2 s by
#: default) and logged every failed poll before.
OUTAGE_LOG_INTERVAL_SECONDS = 30.0


class _Outage:
    """Warnings about a migration's watcher not reaching Nova, rate-limited:
    the first failure, a changed reason, then one "still" line per
    OUTAGE_LOG_INTERVAL_SECONDS with the failed polls counted, and one line
    when Nova answers again."""

    def __init__(self, label: str, clock: clock_mod.Clock):
        self.label = label
        self.clock = clock
        self.reason: Optional[str] = None
        self.since = 0.0
        self.logged_at = 0.0
        self.failures = 0

    def failed(self, reason: str) -> None:
        now = self.clock.monotonic()
        self.failures += 1
        if reason != self.reason:
            if self.reason is None:
                self.since = now
            self.reason, self.logged_at, self.failures = reason, now, 1
            LOG.warning('migration %s: %s', self.label, reason)
        elif now - self.logged_at >= OUTAGE_LOG_INTERVAL_SECONDS:
            self.logged_at = now
            LOG.warning('migration %s: still %s (%d failed looks in %.0f s)',
                        self.label, reason, self.failures, now - self.since)

    def ended(self) -> None:
        if self.reason is not None:
            LOG.warning('migration %s: Nova answers again after %.0f s', self.label,
                        self.clock.monotonic() - self.since)
            self.reason = None


@dataclasses.dataclass
class Job:
    """One Nova live migration kvmplace asked for, as an agent remembers a job."""
    migration_id: str
    uuid: str
    instance: str
    source: str
    dest: str
    policy: dict
    before_id: int
    nova_id: Optional[int] = None
    progress: Optional[dict] = None
    result: Optional[dict] = None
    stop_reason: Optional[str] = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class NovaDriver:
    """Answers the agent RPC API (kvmplace.agent.rpcapi.AgentAPI) through Nova."""

    def __init__(self, conf, agents, compute: novaapi.Api, placement: novaapi.Api,
                 clock: clock_mod.Clock = clock_mod.REAL):
        self.conf = conf
        self.agents = agents            # the real AgentAPI: pre_pin/restore_pin/post_verify
        self.compute = compute
        self.placement = placement
        self.clock = clock
        self.sink: Any = None           # the ConductorManager (progress/result casts)
        self.db: Any = None
        self._lock = threading.RLock()
        self._nova: dict[str, dict] = {}            # host -> Nova/Placement facts
        self._agent: dict[str, tuple[dict, float]] = {}  # host -> (agent report, when)
        self._names: dict[str, str] = {}            # server uuid -> kvmplace name
        self._jobs: dict[str, Job] = {}             # server uuid -> job
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.refreshed_at: Optional[float] = None

    # -- life -----------------------------------------------------------------
    def attach(self, manager) -> None:
        """Where progress, results and host states go (the conductor)."""
        self.sink = manager
        self.db = manager.db

    def start(self) -> None:
        """Read the inventory now, then every inventory_interval_seconds."""
        self._thread = threading.Thread(target=self._refresh_loop, name='nova-inventory',
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except KvmplaceError as exc:
                LOG.warning('cloud inventory not refreshed: %s (hosts age meanwhile; '
                            'after [scheduler] host_down_seconds they count as down)', exc)
            except Exception:  # noqa: BLE001 - the loop must go on
                LOG.exception('cloud inventory not refreshed')
            self.clock.wait(self._stop, self.conf.nova.inventory_interval_seconds)

    # -- inventory ------------------------------------------------------------
    def _servers(self, host: Optional[str] = None) -> list[dict]:
        out: list[dict] = []
        marker = None
        while True:
            query = 'all_tenants=1&limit=1000' + (f'&host={host}' if host else '') + \
                (f'&marker={marker}' if marker else '')
            page = ninv.plain_list(self.compute.get(f'/servers/detail?{query}'), 'servers')
            out.extend(page)
            if len(page) < 1000:
                return out
            marker = page[-1]['id']

    def _nodes(self, hypervisors: list[dict]) -> dict[str, list[dict]]:
        by_host: dict[str, list[dict]] = {}
        for hyp in hypervisors:
            host = (hyp.get('service') or {}).get('host')
            if not host:
                continue
            rp = hyp['id']
            inv = self.placement.get(f'/resource_providers/{rp}/inventories', missing_ok=True)
            use = self.placement.get(f'/resource_providers/{rp}/usages', missing_ok=True)
            by_host.setdefault(host, []).append({
                'hypervisor': hyp.get('hypervisor_hostname'), 'uuid': rp,
                'inventories': (inv or {}).get('inventories') or {},
                'usages': (use or {}).get('usages') or {}})
        return by_host

    def refresh(self) -> dict[str, dict]:
        """Read services, hypervisors, servers and Placement; store every
        compute host's merged state. Returns the Nova facts by host."""
        services = ninv.plain_list(self.compute.get('/os-services?binary=nova-compute'),
                                   'services')
        hypervisors = ninv.plain_list(self.compute.get('/os-hypervisors/detail'),
                                      'hypervisors')
        servers = self._servers()
        nodes = self._nodes(hypervisors)
        server_names = ninv.names(servers)
        facts = {}
        for svc in services:
            on_host = [s for s in servers if s.get('OS-EXT-SRV-ATTR:host') == svc['host']]
            facts[svc['host']] = ninv.host_facts(
                svc, nodes.get(svc['host'], []), on_host, server_names,
                self.conf.nova.disabled_reason_prefix, self.conf.nova.default_link_mbps)
        with self._lock:
            self._names = server_names
            self._nova = facts
            self.refreshed_at = self.clock.time()
            for host in facts:
                self._store(host)
        return facts

    def _refresh_host(self, host: str) -> dict:
        """One host's facts, read now (services, its servers, its nodes)."""
        services = ninv.plain_list(self.compute.get(
            f'/os-services?binary=nova-compute&host={host}'), 'services')
        if not services:
            raise NotFound(f'no nova-compute service on "{host}"')
        servers = self._servers(host)
        with self._lock:
            old = self._nova.get(host)
            for s in servers:
                self._names.setdefault(s['id'], s['id'])
            server_names = dict(self._names)
        hyps = ninv.plain_list(self.compute.get('/os-hypervisors/detail'), 'hypervisors')
        nodes = self._nodes([h for h in hyps if (h.get('service') or {}).get('host') == host])
        facts = ninv.host_facts(services[0], nodes.get(host, []), servers, server_names,
                                self.conf.nova.disabled_reason_prefix,
                                self.conf.nova.default_link_mbps)
        with self._lock:
            if old is not None or host not in self._nova:
                self._nova[host] = facts
        return facts

    def _agent_state(self, host: str) -> tuple[Optional[dict], Optional[float]]:
        """The agent's last report from ``host`` if it is fresh, and its age."""
        with self._lock:
            seen = self._agent.get(host)
        if seen is None:
            return None, None
        age = self.clock.time() - seen[1]
        if age > self.conf.scheduler.host_down_seconds:
            return None, age
        return seen[0], age

    def _merged(self, host: str) -> Optional[dict]:
        with self._lock:
            facts = self._nova.get(host)
        if facts is None:
            return None
        agent, age = self._agent_state(host)
        return ninv.merge(facts, agent, age)

    def _store(self, host: str) -> None:
        state = self._merged(host)
        if state is not None and self.db is not None:
            self.db.report_host(host, state, self.clock.time())

    def merge_report(self, state: dict) -> Optional[dict]:
        """An agent's report (agents beside nova-compute cast theirs as in a
        standalone cluster): kept for its NUMA, link and guest facts, and
        the host's stored state becomes Nova's facts with these laid over.
        A host Nova does not know is not a place for Nova guests: None."""
        with self._lock:
            self._agent[state['name']] = (state, self.clock.time())
        merged = self._merged(state['name'])
        if merged is None:
            LOG.debug('report from %s ignored: not a nova-compute host Nova knows',
                      state['name'])
        return merged

    def has_agent(self, host: str) -> bool:
        return self._agent_state(host)[0] is not None

    # -- maintenance ------------------------------------------------------------
    def _service(self, host: str) -> dict:
        services = ninv.plain_list(self.compute.get(
            f'/os-services?binary=nova-compute&host={host}'), 'services')
        if not services:
            raise NotFound(f'no nova-compute service on "{host}"')
        return services[0]

    def set_maintenance(self, host: str, on: bool, reason: Optional[str]) -> dict:
        """Disable nova-compute on ``host`` with kvmplace's reason (Nova then
        schedules nothing new there), or enable it again - only if kvmplace
        disabled it (a service an operator disabled stays disabled)."""
        svc = self._service(host)
        prefix = self.conf.nova.disabled_reason_prefix
        if on:
            body = {'status': 'disabled',
                    'disabled_reason': f'{prefix} {reason or "maintenance"}'[:255]}
        elif svc.get('status') == 'disabled' and not (
                svc.get('disabled_reason') or '').startswith(prefix):
            LOG.warning('nova-compute on %s stays disabled: disabled by someone else (%s)',
                        host, svc.get('disabled_reason'))
            return svc
        else:
            body = {'status': 'enabled'}
        answer = self.compute.request('PUT', f"/os-services/{svc['id']}", body)
        try:
            self._refresh_host(host)
            with self._lock:
                self._store(host)
        except KvmplaceError as exc:
            LOG.warning('state of %s not re-read after maintenance change: %s', host, exc)
        return (answer or {}).get('service') or {}

    # -- the agent interface ----------------------------------------------------
    def _uuid(self, instance: str) -> str:
        with self._lock:
            for uuid, name in self._names.items():
                if name == instance:
                    return uuid
        self.refresh()
        with self._lock:
            for uuid, name in self._names.items():
                if name == instance:
                    return uuid
        raise NotFound(f'no Nova server "{instance}"')

    def _server(self, uuid: str) -> dict:
        answer = self.compute.get(f'/servers/{uuid}', missing_ok=True)
        if not answer:
            raise NotFound(f'Nova server {uuid} not found')
        return answer['server']

    def _domain(self, host: str, instance: str) -> str:
        """The guest's libvirt domain name (what the agent knows it by)."""
        server = self._server(self._uuid(instance))
        return server.get('OS-EXT-SRV-ATTR:instance_name') or instance

    def get_host_state(self, ctxt, host: str) -> dict:
        self._refresh_host(host)
        with self._lock:
            state = self._merged(host)
        assert state is not None
        return state

    def check_destination(self, ctxt, host: str, instance: dict,
                          source_cpu_model: Optional[str]) -> dict:
        """Nova's view of the destination: service enabled and up, and room
        in Placement for the flavor. Nova's scheduler checks the rest when
        it validates the host (CPU compatibility, PCI, affinity...)."""
        try:
            svc = self._service(host)
        except NotFound as exc:
            return {'ok': False, 'reason': str(exc)}
        if svc.get('status') == 'disabled':
            return {'ok': False, 'reason': f'nova-compute on {host} is disabled in Nova '
                    f'({svc.get("disabled_reason") or "no reason given"})'}
        if svc.get('state') != 'up' or svc.get('forced_down'):
            return {'ok': False, 'reason': f'nova-compute on {host} is down in Nova'}
        facts = self._refresh_host(host)
        need_mib = int(instance.get('memory_mib') or 0)
        need_vcpus = int(instance.get('vcpus') or 0)
        free_mib = facts['memory_mib'] - facts['memory_used_mib']
        free_vcpus = facts['vcpus'] - facts['vcpus_used']
        if need_mib > free_mib:
            return {'ok': False, 'reason': f'Placement: {free_mib} MiB free on {host}, '
                    f'{need_mib} needed'}
        if need_vcpus > free_vcpus:
            return {'ok': False, 'reason': f'Placement: {free_vcpus} vCPUs free on {host}, '
                    f'{need_vcpus} needed'}
        return {'ok': True, 'reason': None, 'node': None, 'cpus': None,
                'libvirt_uri': f'nova://{host}', 'migration_uri': None,
                'checked': 'nova-compute enabled and up; room in Placement'}

    def pre_pin(self, ctxt, host: str, instance: str, node: Optional[int] = None,
                migration_id: Optional[str] = None) -> dict:
        if not self.has_agent(host):
            return {'ok': False, 'skipped': True,
                    'reason': f'skipped: no kvmplace agent reports from {host}, so the '
                              'emulator thread was not pre-pinned'}
        return self.agents.pre_pin(ctxt, host, instance=self._domain(host, instance),
                                   node=node, migration_id=migration_id)

    def restore_pin(self, ctxt, host: str, instance: str, cpus: str,
                    migration_id: Optional[str] = None) -> dict:
        if not self.has_agent(host):
            return {'ok': False, 'skipped': True,
                    'reason': f'skipped: no kvmplace agent reports from {host}'}
        return self.agents.restore_pin(ctxt, host, instance=self._domain(host, instance),
                                       cpus=cpus, migration_id=migration_id)

    def post_verify(self, ctxt, host: str, instance: str, uuid: str, memory_mib: int,
                    vcpus: int, cpus: Optional[str]) -> dict:
        """Nova's record first (the server ACTIVE on ``host``, its flavor's
        RAM and vCPUs), then the agent's look at the guest itself. Where the
        destination QEMU's main thread runs is Nova's choice (its domain
        XML), so the agent is not asked to find it on kvmplace's CPUs."""
        uuid = uuid or self._uuid(instance)
        server = self._server(uuid)
        flavor = server.get('flavor') or {}
        problems = []
        if server.get('OS-EXT-SRV-ATTR:host') != host:
            problems.append(f"Nova has the server on {server.get('OS-EXT-SRV-ATTR:host')}")
        if server.get('status') != 'ACTIVE':
            problems.append(f"server status {server.get('status')}")
        if memory_mib and int(flavor.get('ram') or 0) != memory_mib:
            problems.append(f"flavor RAM {flavor.get('ram')} MiB, expected {memory_mib}")
        if vcpus and int(flavor.get('vcpus') or 0) != vcpus:
            problems.append(f"flavor vCPUs {flavor.get('vcpus')}, expected {vcpus}")
        if problems:
            return {'ok': False, 'reason': '; '.join(problems)}
        answer: dict = {'ok': True, 'reason': None,
                        'nova': {'host': host, 'status': server.get('status')}}
        if not self.has_agent(host):
            answer['agent'] = (f'skipped: no kvmplace agent reports from {host}; Nova\'s '
                               'record alone was checked')
            return answer
        seen = self.agents.post_verify(
            ctxt, host, instance=server.get('OS-EXT-SRV-ATTR:instance_name') or instance,
            uuid=uuid, memory_mib=memory_mib, vcpus=vcpus, cpus=None)
        if not seen.get('ok'):
            return {'ok': False, 'reason': f"agent on {host}: {seen.get('reason')}"}
        answer['agent'] = seen
        return answer

    def _live_migrations(self, uuid: str) -> list[dict]:
        return ninv.plain_list(self.compute.get(
            f'/os-migrations?instance_uuid={uuid}&migration_type=live-migration'),
            'migrations')

    def _in_progress(self, uuid: str) -> list[dict]:
        return ninv.plain_list(self.compute.get(f'/servers/{uuid}/migrations'), 'migrations')

    def migrate(self, ctxt, host: str, migration_id: str, instance: str, dest_host: str,
                dest_uri: str, migrate_uri: Optional[str], dest_cpus: Optional[str],
                policy: dict) -> dict:
        """Ask Nova to live-migrate the server to ``dest_host``; follow it."""
        uuid = self._uuid(instance)
        before = max((int(m['id']) for m in self._live_migrations(uuid)), default=0)
        job = Job(migration_id, uuid, instance, host, dest_host, dict(policy or {}), before)
        body = {'os-migrateLive': {'host': dest_host, 'block_migration': 'auto'}}
        try:
            self.compute.request('POST', f'/servers/{uuid}/action', body)
        except novaapi.NovaRefused:
            # A retried POST whose first try did arrive is refused (409: the
            # server is migrating): that migration is ours.
            if self._find(job, wait_s=0.0) is None:
                raise
        except novaapi.NovaUnreachable as exc:
            # Not an answer: the workflow asks get_job, as for a lost agent reply.
            raise ConnectionError(str(exc)) from None
        with self._lock:
            self._jobs[uuid] = job
        threading.Thread(target=self._watch, args=(job,), name=f'nova-mig-{migration_id[:8]}',
                         daemon=True).start()
        return {'started': True}

    def _find(self, job: Job, wait_s: float) -> Optional[dict]:
        """Nova's record of the migration we asked for (the first newer than
        those before), waiting up to ``wait_s`` for Nova's conductor to make it."""
        deadline = self.clock.monotonic() + wait_s
        while True:
            newer = [m for m in self._live_migrations(job.uuid) if int(m['id']) > job.before_id]
            if newer:
                found = min(newer, key=lambda m: int(m['id']))
                job.nova_id = int(found['id'])
                return found
            if self.clock.monotonic() >= deadline or self._stop.is_set():
                return None
            self.clock.sleep(min(0.5, self.conf.nova.poll_interval_seconds))

    def _tracker(self, job: Job) -> nprog.Tracker:
        guest = {}
        if self.db is not None:
            try:
                for g in self.db.get_host(job.source)['state'].get('instances') or []:
                    if g.get('uuid') == job.uuid:
                        guest = g
            except NotFound:
                pass
        memory = float(guest.get('memory_mib') or 0)
        disk = 0.0 if guest.get('shared_storage', True) else \
            float(guest.get('disk_gib') or 0) * 1024.0
        params = estimator.ModelParams.from_conf(self.conf)
        return nprog.Tracker(job.migration_id, job.instance, self.clock.monotonic(), params,
                             nprog.Timeouts.from_conf(self.conf, job.policy, memory, disk),
                             guest.get('dirty_rate_mibps'))

    def _watch(self, job: Job) -> None:
        """Follow Nova's record until it ends; cast progress and the result."""
        tracker = self._tracker(job)
        interval = self.conf.nova.poll_interval_seconds
        outage = _Outage(job.migration_id[:8], self.clock)
        while not self._stop.is_set():
            try:
                if self._step(job, tracker):
                    return
                outage.ended()
            except novaapi.NovaError as exc:
                outage.failed(str(exc))
            except Exception:  # noqa: BLE001 - keep following
                LOG.exception('migration %s: following Nova failed', job.migration_id[:8])
            self.clock.sleep(interval)

    def _step(self, job: Job, tracker: nprog.Tracker) -> bool:
        """One look at Nova; True when the migration has ended."""
        if job.nova_id is None:
            if self._find(job, wait_s=FIND_MIGRATION_SECONDS) is None:
                self._finish(job, {'status': JobOutcome.FAILED, 'error': 'Nova made no migration '
                                   f'record within {FIND_MIGRATION_SECONDS:.0f} s'})
                return True
        running = self.compute.get(f'/servers/{job.uuid}/migrations/{job.nova_id}',
                                   missing_ok=True)
        if running:
            record = running.get('migration') or {}
            progress = tracker.progress(record, self.clock.monotonic(), self.clock.time())
            job.progress = progress
            self.sink.migration_progress({}, job.migration_id, progress)
            due = tracker.due(progress, self.clock.monotonic())
            if due is not None:
                self._act(job, tracker, *due)
            return False
        record = next((m for m in self._live_migrations(job.uuid)
                       if int(m['id']) == job.nova_id), None)
        status = str((record or {}).get('status') or '')
        outcome = nprog.outcome(status)
        if outcome is None:
            return False                # between states (post-migrating...)
        server = self._server(job.uuid)
        where = server.get('OS-EXT-SRV-ATTR:host')
        result: dict[str, Any] = {
            'status': outcome, 'error': None, 'nova_migration_id': job.nova_id,
            'nova_status': status, 'elapsed_seconds': round(
                self.clock.monotonic() - tracker.started_s, 3),
            'guest': {'uuid': job.uuid, 'memory_mib': int((server.get('flavor') or {})
                                                          .get('ram') or 0),
                      'vcpus': int((server.get('flavor') or {}).get('vcpus') or 0)}}
        if tracker.last is not None:
            result['data_mib'] = round(tracker.last[1], 2)
        refused = self._refused(job.uuid) if outcome == JobOutcome.FAILED and \
            status in nprog.NOVA_REFUSED and where == job.source else None
        if outcome == JobOutcome.COMPLETED and where != job.dest:
            result.update(status=JobOutcome.FAILED, error=f'Nova says completed but the server '
                          f'is on {where}, not {job.dest}')
        elif refused is not None:
            result.update(status=JobOutcome.REFUSED,
                          error=f'Nova refused {job.dest}: {refused}')
        elif outcome != JobOutcome.COMPLETED:
            if job.stop_reason:
                result.update(status=JobOutcome.TIMED_OUT, error=job.stop_reason)
            else:
                result['error'] = f'Nova migration {job.nova_id} ended {status}' + \
                    self._why(job.uuid)
        self._finish(job, result)
        return True

    def _refused(self, uuid: str) -> Optional[str]:
        """Why Nova's conductor refused the live migration, if it did.

        Nova's record ends 'error' both when its conductor refuses (the
        scheduler's NoValidHost for the named host, a failed pre-check:
        nothing was copied) and when nova-compute rolls a failed copy back.
        The server's last live-migration action tells them apart: its
        ``conductor_live_migrate_instance`` event ends 'Error' only in the
        first case, and its details carry the reason (microversion 2.84).
        """
        try:
            actions = ninv.plain_list(self.compute.get(
                f'/servers/{uuid}/os-instance-actions'), 'instanceActions')
            action = next((a for a in actions if a.get('action') == 'live-migration'), None)
            if action is None or not action.get('request_id'):
                return None
            detail = self.compute.get(
                f"/servers/{uuid}/os-instance-actions/{action['request_id']}") or {}
        except novaapi.NovaError as exc:
            LOG.warning('server %s: cannot tell why Nova failed its migration: %s', uuid, exc)
            return None
        for event in (detail.get('instanceAction') or {}).get('events') or []:
            if event.get('event') == nprog.NOVA_CONDUCTOR_EVENT and \
                    event.get('result') == 'Error':
                text = str(event.get('details') or action.get('message') or
                           "Nova's conductor refused the host").strip()
                return text.splitlines()[0] if text else "Nova's conductor refused the host"
        return None

    def _why(self, uuid: str) -> str:
        """The message of the server's last live-migration action, if any."""
        try:
            actions = ninv.plain_list(self.compute.get(
                f'/servers/{uuid}/os-instance-actions'), 'instanceActions')
        except novaapi.NovaError:
            return ''
        for action in actions:
            if action.get('action') == 'live-migration':
                return f": {action['message']}" if action.get('message') else ''
        return ''

    def _act(self, job: Job, tracker: nprog.Tracker, action: str, why: str) -> None:
        path = f'/servers/{job.uuid}/migrations/{job.nova_id}'
        if action == 'force-complete':
            LOG.info('migration %s: %s; asking Nova to force-complete (post-copy)',
                     job.migration_id[:8], why)
            self.compute.request('POST', f'{path}/action', {'force_complete': None})
            tracker.forced = True
            return
        LOG.warning('migration %s: %s; asking Nova to abort', job.migration_id[:8], why)
        job.stop_reason = why
        self.compute.request('DELETE', path)

    def _finish(self, job: Job, result: dict) -> None:
        job.result = result
        job.done.set()
        self.sink.migration_finished({}, job.migration_id, result)

    def get_job(self, ctxt, host: str, instance: str) -> dict:
        uuid = self._uuid(instance)
        with self._lock:
            job = self._jobs.get(uuid)
        if job is not None:
            return {'active': not job.done.is_set(), 'migration_id': job.migration_id,
                    'progress': job.progress, 'result': job.result}
        # Not started by this conductor (it restarted): Nova's word only.
        active = bool(self._in_progress(uuid))
        return {'active': active, 'migration_id': None, 'progress': None, 'result': None}

    def abort(self, ctxt, host: str, instance: str) -> dict:
        uuid = self._uuid(instance)
        aborted = False
        reason = None
        for mig in self._in_progress(uuid):
            try:
                self.compute.request('DELETE', f"/servers/{uuid}/migrations/{mig['id']}")
                aborted = True
            except novaapi.NovaRefused as exc:
                reason = str(exc)
        return {'aborted': aborted, 'reason': reason}
