"""An in-memory agent for conductor unit tests.

It implements the agent RPC contract (kvmplace/agent/rpcapi.py) over plain
Python calls, so the workflow's decisions (retries, rollback, recovery) can
be tested in one process without libvirt. The real agent is tested against
libvirt and RabbitMQ in tests/functional and tests/integration.
"""
from __future__ import annotations

import threading
import time

from kvmplace.conductor.clock import Clock


class FakeCloud:
    """Guests on hosts, shared by every FakeAgent of one test."""

    def __init__(self, hosts: dict[str, dict]):
        self.hosts = hosts          # name -> host fields (Host.to_dict shape)
        self.guests: dict[str, dict] = {}   # guest name -> {"host", "memory_mib", ...}
        self.pins: dict[str, str] = {}
        self.lock = threading.Lock()

    def add_guest(self, name, host, memory_mib=1024, vcpus=1, dirty_rate_mibps=0.0):
        self.guests[name] = {'name': name, 'host': host, 'memory_mib': memory_mib,
                             'vcpus': vcpus, 'dirty_rate_mibps': dirty_rate_mibps,
                             'uuid': f'00000000-0000-4000-8000-{len(self.guests):012d}',
                             'state': 'running', 'emulator_node': 0}
        self.pins[name] = '0-1'


class FakeAgents:
    """Answers AgentAPI calls for every host of a FakeCloud."""

    def __init__(self, cloud: FakeCloud, conductor=None, migrate_seconds: float = 0.3,
                 refuse: tuple = (), fail_migration: bool = False, hang: bool = False,
                 dead_hosts: tuple = (), refuse_migrate: tuple = ()):
        self.cloud = cloud
        self.conductor = conductor
        self.migrate_seconds = migrate_seconds
        self.refuse = set(refuse)
        self.fail_migration = fail_migration
        self.hang = hang
        self.dead = set(dead_hosts)
        #: destinations whose migrate ends 'refused' at once, nothing copied
        #: (the Nova driver when Nova's scheduler refuses the host)
        self.refuse_migrate = set(refuse_migrate)
        self.calls: list[tuple] = []
        #: the conductor's clock (tests.unit.conductor.test_workflow.make sets it)
        self.clock: Clock = Clock()
        self.jobs: dict[str, dict] = {}
        self._stop: dict[str, threading.Event] = {}

    def _check(self, host, method):
        self.calls.append((method, host))
        if host in self.dead:
            raise TimeoutError(f'{host} does not answer')

    def get_host_state(self, ctxt, host):
        self._check(host, 'get_host_state')
        state = dict(self.cloud.hosts[host])
        state['name'] = host
        state['instances'] = [dict(g) for g in self.cloud.guests.values() if g['host'] == host]
        state['libvirt_uri'] = f'qemu+tcp://{host}/system'
        return state

    def check_destination(self, ctxt, host, instance, source_cpu_model):
        self._check(host, 'check_destination')
        if host in self.refuse:
            return {'ok': False, 'reason': 'refused by test'}
        return {'ok': True, 'reason': None, 'node': 1, 'cpus': '1',
                'libvirt_uri': f'qemu+tcp://{host}/system', 'migration_uri': f'tcp://{host}'}

    def pre_pin(self, ctxt, host, instance, node=None, migration_id=None):
        self._check(host, 'pre_pin')
        previous = self.cloud.pins[instance]
        self.cloud.pins[instance] = '1'
        return {'node': 1, 'cpus': '1', 'previous_cpus': previous, 'affinity': '1'}

    def restore_pin(self, ctxt, host, instance, cpus, migration_id=None):
        self._check(host, 'restore_pin')
        self.cloud.pins[instance] = cpus
        return {'cpus': cpus, 'affinity': cpus}

    def migrate(self, ctxt, host, migration_id, instance, dest_host, dest_uri, migrate_uri,
                dest_cpus, policy):
        self._check(host, 'migrate')
        stop = threading.Event()
        self._stop[instance] = stop
        self.jobs[instance] = {'active': True, 'migration_id': migration_id,
                               'progress': None, 'result': None}

        def run():
            start = time.monotonic()
            if dest_host in self.refuse_migrate:
                return self._finish(migration_id, instance, 'refused',
                                    f'Nova refused {dest_host}: refused by test')
            steps = 5
            for i in range(steps):
                if stop.wait(self.migrate_seconds / steps):
                    return self._finish(migration_id, instance, 'aborted', 'aborted by request')
                progress = {'phase': f'iterate {i}', 'remaining_mib': 100 - 20 * i,
                            'mibps': 100.0, 'eta_seconds': 1.0}
                self.jobs[instance]['progress'] = progress
                if self.conductor:
                    self.conductor.migration_progress({}, migration_id, progress)
            while self.hang and not stop.wait(0.05):
                pass
            if self.hang:
                return self._finish(migration_id, instance, 'aborted', 'aborted by request')
            if self.fail_migration:
                return self._finish(migration_id, instance, 'failed', 'injected failure')
            with self.cloud.lock:
                self.cloud.guests[instance]['host'] = dest_host
                self.cloud.pins[instance] = dest_cpus or '0-1'
            self._finish(migration_id, instance, 'completed', None,
                         elapsed=time.monotonic() - start)

        threading.Thread(target=run, daemon=True).start()
        return {'started': True}

    def _finish(self, migration_id, instance, status, error, elapsed=0.0):
        result = {'status': status, 'error': error, 'elapsed_seconds': elapsed,
                  'downtime_ms': 10.0}
        self.jobs[instance].update(active=False, result=result)
        if self.conductor:
            self.conductor.migration_finished({}, migration_id, result)

    def get_job(self, ctxt, host, instance):
        self._check(host, 'get_job')
        return self.jobs.get(instance, {'active': False, 'migration_id': None,
                                        'progress': None, 'result': None})

    def abort(self, ctxt, host, instance):
        self._check(host, 'abort')
        stop = self._stop.get(instance)
        if stop is None:
            return {'aborted': False}
        stop.set()
        return {'aborted': True}

    def post_verify(self, ctxt, host, instance, uuid, memory_mib, vcpus, cpus):
        self._check(host, 'post_verify')
        guest = self.cloud.guests[instance]
        if guest['host'] != host:
            return {'ok': False, 'reason': f'{instance} is not on {host}'}
        return {'ok': True, 'reason': None, 'affinity': self.cloud.pins[instance]}


class FakeClock(Clock):
    """Monotonic time that jumps: sleeps and timed-out waits advance it at
    once, so the workflow's back-off (seconds to minutes of retries) and
    polling take milliseconds. A wait still yields for a moment of real
    time (``real_wait_s``), long enough for the fake agents' threads to
    cast; wall-clock time (``time()``) stays real (report ages)."""

    def __init__(self, real_wait_s: float = 0.005):
        self.offset_s = 0.0
        self.slept_s = 0.0
        self.real_wait_s = real_wait_s
        self._lock = threading.Lock()

    def _advance(self, seconds: float) -> None:
        with self._lock:
            self.offset_s += max(0.0, seconds)
            self.slept_s += max(0.0, seconds)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)
        time.sleep(0)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.wait(min(seconds, self.real_wait_s)):
            return True
        self._advance(seconds)
        return event.is_set()
