"""The agent's RPC endpoint (topic ``kvmplace-agent``, server = host name).

Server side of :mod:`kvmplace.agent.rpcapi`. Each method validates its
arguments first (:mod:`kvmplace.agent.validation`), then acts. Refusals that
are a normal answer (no room) return ``{"ok": False, "reason": ...}``; bad
arguments raise InvalidInput and failures KvmplaceError, which
oslo.messaging re-raises on the caller's side with the reason.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Optional

import libvirt
import oslo_messaging as messaging

from kvmplace import bounds
from kvmplace import objects
from kvmplace import resources
from kvmplace.agent import cpu
from kvmplace.agent import guest as guestmod
from kvmplace.agent import host as host_mod
from kvmplace.agent import migration
from kvmplace.agent import pinning
from kvmplace.agent import storage
from kvmplace.agent import validation as v
from kvmplace.exception import InvalidInput, KvmplaceError

LOG = logging.getLogger(__name__)


def _boundary(fn):
    """Turn libvirt and unexpected errors into KvmplaceError with a reason,
    so the caller gets one clear message instead of a RemoteError dump."""
    @functools.wraps(fn)
    def wrapper(self, ctxt, **kwargs):
        try:
            return fn(self, ctxt, **kwargs)
        except KvmplaceError:
            raise
        except libvirt.libvirtError as exc:
            LOG.warning('%s: libvirt error: %s', fn.__name__, exc)
            raise KvmplaceError(f'{fn.__name__} on {self.conf.agent.host}: libvirt: '
                                f'{exc.get_error_message()}') from None
        except Exception as exc:  # noqa: BLE001 - report, don't leak a traceback
            LOG.exception('%s failed', fn.__name__)
            raise KvmplaceError(f'{fn.__name__} on {self.conf.agent.host} failed: '
                                f'{type(exc).__name__}: {exc}') from None
    return wrapper


class AgentManager:
    """RPC endpoint; every public method is an RPC method (API 1.1)."""

    target = messaging.Target(version='1.1')

    def __init__(self, conf, host: host_mod.HostState, driver: migration.MigrationDriver):
        self.conf = conf
        self.host = host
        self.driver = driver
        self._pin_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------
    def _conn(self):
        return self.host.connection.get()

    def _domain(self, name: str, must_run: bool = True):
        try:
            dom = self._conn().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise InvalidInput('instance', f'no guest named {name!r} on host '
                                               f'{self.conf.agent.host}') from None
            raise
        if must_run and not dom.isActive():
            raise InvalidInput('instance', f'guest {name!r} is not running on host '
                                           f'{self.conf.agent.host}')
        return dom

    def _allowed_cpus(self) -> set[int]:
        """CPUs a pinning may name: this host's topology, within libvirt's
        CPU map (an override file cannot name CPUs the host lacks)."""
        count = host_mod.host_cpu_count(self._conn())
        return {c for c in self.host.topology_cpus() if c < count}

    # -- RPC methods -------------------------------------------------------------
    @_boundary
    def get_host_state(self, ctxt) -> dict:
        return self.host.build()

    @_boundary
    def check_destination(self, ctxt, instance: dict, source_cpu_model: Optional[str]
                          ) -> dict:
        guest = v.guest_dict('instance', instance)
        source_model = v.cpu_model('source_cpu_model', source_cpu_model)
        state = self.host.build()
        answer: dict[str, Any] = {'ok': False, 'reason': None, 'node': None, 'cpus': None,
                                  'libvirt_uri': state['libvirt_uri'],
                                  'migration_uri': (f"tcp://{state['migration_address']}"
                                                    if state['migration_address'] else None),
                                  'host': state['name']}
        reason = self._refusal(state, guest, source_model)
        if reason:
            answer['reason'] = reason
            return answer
        node = pinning.choose_node(state['numa'], guest['memory_mib'])
        if node is not None:
            answer['node'], answer['cpus'] = node['id'], node['cpus']
            answer['node_health'] = node.get('health', 1.0)
        local = [d['path'] for d in guest['disks'] if not d['shared'] and d['path']]
        try:
            if self.conf.agent.precreate_disk_pools and local:
                answer['pools'] = storage.ensure_pools(
                    self._conn(), local, self.conf.agent.image_directories,
                    self.conf.agent.max_storage_pools, guest['uuid'])
            elif local:
                storage.check_paths(self._conn(), local, guest['uuid'])
        except KvmplaceError as exc:
            answer['reason'] = str(exc)
            return answer
        answer['ok'] = True
        return answer

    def _refusal(self, state: dict, guest: dict, source_model: Optional[str]) -> Optional[str]:
        sched = self.conf.scheduler
        if not state['enabled']:
            return f"host {state['name']} is disabled"
        for other in state['instances']:
            same = other['name'] == guest['name'] or (guest['uuid'] and
                                                      other['uuid'] == guest['uuid'])
            if same and not other.get('incoming'):
                return f"a guest {other['name']} ({other['uuid']}) is already defined here"
        free_mib = resources.free_ram_mib(state['memory_mib'], state['memory_used_mib'],
                                          sched.ram_allocation_ratio,
                                          sched.reserved_host_memory_mib)
        if free_mib < guest['memory_mib']:
            return (f"not enough memory: {guest['memory_mib']} MiB needed, "
                    f"{max(0, free_mib):.0f} MiB free")
        free_vcpus = resources.free_vcpus(state['vcpus'], state['vcpus_used'],
                                          sched.cpu_allocation_ratio)
        if free_vcpus < guest['vcpus']:
            return (f"not enough vCPUs: {guest['vcpus']} needed, "
                    f"{max(0, free_vcpus):.0f} free")
        return cpu.refusal(self._conn(), state['cpu_model'], guest, source_model)

    def _not_migrating(self, name: str, migration_id: Optional[str]) -> None:
        """Pinning a guest that is migrating changes the QEMU the copy runs
        in: only that migration's own requests may (API 1.1 carries its id)."""
        mid = v.migration_id('migration_id', migration_id) if migration_id is not None \
            else None
        job = self.driver.get(name)
        if job is not None and job.active and job.migration_id != mid:
            raise InvalidInput('migration_id', f'guest {name!r} is migrating '
                                               f'({job.migration_id}); pinning is refused '
                                               'unless the request is that migration\'s')

    @_boundary
    def pre_pin(self, ctxt, instance: str, node: Optional[int] = None,
                migration_id: Optional[str] = None) -> dict:
        name = v.name('instance', instance)
        self._not_migrating(name, migration_id)
        nodes = self.host.numa_nodes()
        node = v.node_id('node', node, [n['id'] for n in nodes])
        dom = self._domain(name)
        facts = self.host.guest_facts(dom, nodes)
        chosen = (next(n for n in nodes if n['id'] == node) if node is not None
                  else pinning.choose_node(nodes, facts['memory_mib']))
        if chosen is None:
            raise KvmplaceError(f'host {self.conf.agent.host} has no NUMA node to pin to')
        cpus = objects.parse_cpu_list(chosen['cpus'])
        count = host_mod.host_cpu_count(self._conn())
        if cpus[-1] >= count:
            raise KvmplaceError(f"node {chosen['id']}'s CPUs {chosen['cpus']} are beyond "
                                f"libvirt's CPU map ({count} CPUs) on {self.conf.agent.host}")
        with self._pin_lock:
            previous = pinning.current_pin(dom)
            pinning.pin_emulator(dom, cpus, count)
            pid = self.host.pids.pid(dom)
            affinity = pinning.read_back(pid, cpus, self.host.pids.proc_root)
        return {'node': chosen['id'], 'cpus': objects.format_cpu_list(cpus),
                'previous_cpus': previous, 'affinity': affinity, 'qemu_pid': pid,
                'verified': affinity == objects.format_cpu_list(cpus) if pid else None,
                'health': chosen.get('health', 1.0)}

    @_boundary
    def restore_pin(self, ctxt, instance: str, cpus: str,
                    migration_id: Optional[str] = None) -> dict:
        name = v.name('instance', instance)
        self._not_migrating(name, migration_id)
        count = host_mod.host_cpu_count(self._conn())
        cpu_ids = v.cpu_list('cpus', cpus, self._allowed_cpus() | set(range(count)))
        dom = self._domain(name)
        with self._pin_lock:
            pinning.pin_emulator(dom, cpu_ids, count)
            pid = self.host.pids.pid(dom)
            affinity = pinning.read_back(pid, cpu_ids, self.host.pids.proc_root)
        return {'cpus': objects.format_cpu_list(cpu_ids), 'affinity': affinity,
                'qemu_pid': pid}

    @_boundary
    def migrate(self, ctxt, migration_id: str, instance: str, dest_host: str, dest_uri: str,
                migrate_uri: Optional[str], dest_cpus: Optional[str], policy: dict) -> dict:
        mid = v.migration_id('migration_id', migration_id)
        name = v.name('instance', instance)
        dest = v.host('dest_host', dest_host)
        if dest == self.conf.agent.host:
            raise InvalidInput('dest_host', 'is this host: a guest cannot migrate to its '
                                            'own host')
        uri = v.libvirt_uri('dest_uri', dest_uri)
        stream_uri = v.migrate_uri('migrate_uri', migrate_uri)
        if dest_cpus is not None:
            v.cpu_list('dest_cpus', dest_cpus)
        rules = v.policy('policy', policy)
        v.known_peer(self.conf.agent.peers, dest, uri, stream_uri)
        dom = self._domain(name)
        facts = self.host.guest_facts(dom)
        plan = migration.make_plan(self.conf, facts, uri, stream_uri, dest_cpus, rules)
        job = self.driver.start(dom, mid, dest, plan, facts)
        return {'started': True, 'migration_id': job.migration_id,
                'data_mib': round(job.data_mib, 1),
                'completion_timeout_seconds': round(plan.completion_timeout_s, 1),
                'progress_timeout_seconds': plan.progress_timeout_s,
                'local_disks': list(plan.local_disks)}

    @_boundary
    def get_job(self, ctxt, instance: str) -> dict:
        name = v.name('instance', instance)
        job = self.driver.get(name)
        if job is not None:
            return job.view()
        # No job in memory (the agent restarted): ask libvirt.
        active = False
        try:
            stats = self._conn().lookupByName(name).jobStats()
            active = stats.get('type', libvirt.VIR_DOMAIN_JOB_NONE) != \
                libvirt.VIR_DOMAIN_JOB_NONE
        except libvirt.libvirtError:
            pass
        return {'active': active, 'migration_id': None, 'instance': name,
                'progress': {}, 'result': None}

    @_boundary
    def abort(self, ctxt, instance: str) -> dict:
        name = v.name('instance', instance)
        dom = self._domain(name, must_run=False)
        aborted, reason = self.driver.abort(name, dom)
        return {'aborted': aborted, 'reason': reason}

    @_boundary
    def post_verify(self, ctxt, instance: str, uuid: str, memory_mib: int, vcpus: int,
                    cpus: Optional[str]) -> dict:
        name = v.name('instance', instance)
        want_uuid = v.uuid('uuid', uuid, allow_empty=True)
        want_mem = v.integer('memory_mib', memory_mib, 0, v.MAX_MEMORY_MIB)
        want_vcpus = v.integer('vcpus', vcpus, 0, 4096)
        want_cpus = v.cpu_list('cpus', cpus, self._allowed_cpus()) if cpus is not None \
            else None
        here = self.conf.agent.host
        try:
            dom = self._conn().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            return {'ok': False, 'reason': f'guest {name} is not on host {here}',
                    'affinity': None}
        facts = self.host.guest_facts(dom)
        problems = []
        crashed = guestmod.crash_of(dom)
        if crashed:
            problems.append(crashed)
        elif facts['state'] != 'running' or facts.get('incoming'):
            problems.append(f"state is {facts['state']}"
                            f"{' (migration still arriving)' if facts.get('incoming') else ''},"
                            " not running")
        if want_uuid and facts['uuid'].lower() != want_uuid:
            problems.append(f"UUID is {facts['uuid']}, expected {want_uuid}")
        if want_mem and facts['memory_mib'] != want_mem:
            problems.append(f"memory is {facts['memory_mib']} MiB, expected {want_mem}")
        if want_vcpus and facts['vcpus'] != want_vcpus:
            problems.append(f"vCPUs are {facts['vcpus']}, expected {want_vcpus}")
        affinity = facts['qemu_affinity']
        if want_cpus is not None:
            if facts['qemu_pid'] is None:
                problems.append('QEMU main thread not found in /proc')
            elif affinity is None or set(objects.parse_cpu_list(affinity)) != set(want_cpus):
                problems.append(f'main thread runs on CPUs {affinity}, expected '
                                f'{objects.format_cpu_list(want_cpus)}')
        if not problems:
            problems = self._settle(dom)
        return {'ok': not problems, 'reason': '; '.join(problems) or None,
                'affinity': affinity, 'qemu_pid': facts['qemu_pid'], 'uuid': facts['uuid'],
                'state': facts['state'], 'emulator_node': facts['emulator_node']}


    def _settle(self, dom) -> list[str]:
        """Watch a guest that passed post_verify for
        [agent] post_verify_settle_seconds: a crash, a stop or a restart
        (a new domain ID, as on_crash=restart gives) in that time fails the
        verification. Why: damaged memory shows at once, as a panic. The
        domain is looked up again each time: a virDomain keeps the ID it
        was looked up with."""
        settle_s = self.conf.agent.post_verify_settle_seconds
        deadline = time.monotonic() + settle_s
        uuid, first_id = dom.UUID(), dom.ID()
        watched = f'while post_verify watched it ({settle_s:g} s)'
        while time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            try:
                now = self._conn().lookupByUUID(uuid)
                crashed = guestmod.crash_of(now)
                state, _ = now.state()
                now_id = now.ID()
            except libvirt.libvirtError as exc:
                return [f'the guest went away {watched}: {exc}']
            if crashed:
                return [f'{crashed} {watched}']
            if state != libvirt.VIR_DOMAIN_RUNNING:
                return [f'the guest left the running state '
                        f'({guestmod.STATE_NAMES.get(state, state)}) {watched}']
            if now_id != first_id:
                return [f'the guest restarted (domain ID {first_id} -> {now_id}) {watched}']
        return []


RPC_METHODS = ('get_host_state', 'check_destination', 'pre_pin', 'restore_pin', 'migrate',
               'get_job', 'abort', 'post_verify')


class AgentEndpoint:
    """What the RPC server dispatches to: the manager's methods with
    InvalidInput marked as expected, so that oslo.messaging logs a refused
    request at debug level instead of as a server error with a traceback
    (anyone on the bus could otherwise fill the log). The manager itself
    stays plain to call directly."""

    target = messaging.Target(version='1.1')

    def __init__(self, manager: AgentManager):
        self.manager = manager


def _expected(name: str):
    def method(self, ctxt, **kwargs):
        # Sized before anything reads them (kvmplace.bounds): a check that
        # expands or copies first already paid the cost it was to prevent.
        for key, value in kwargs.items():
            bounds.plain(key, value)
        return getattr(self.manager, name)(ctxt, **kwargs)
    method.__name__ = name
    return messaging.expected_exceptions(InvalidInput)(method)


for _name in RPC_METHODS:
    setattr(AgentEndpoint, _name, _expected(_name))
