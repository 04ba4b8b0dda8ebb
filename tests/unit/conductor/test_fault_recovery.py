"""The workflow's answers to the faults of tests/integration/test_faults.py,
with in-memory agents (fakes.py), so each decision is pinned down quickly:

- the source agent restarts mid-copy and has forgotten the job, while
  libvirt carries the migration on (what the lab showed): the conductor
  keeps watching and records the true outcome, without aborting it;
- the destination cannot be asked to verify a guest whose copy completed:
  the record stays 'verifying' (no rollback is possible, and 'failed'
  would misstate where the guest runs) and completes once it answers, or
  fails after [conductor] answer_timeout_seconds saying why.
"""
from __future__ import annotations

import threading
import time

from kvmplace.conductor.db import api as db_api
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import (  # noqa: F401 - fixtures
    _host, cloud, conf, db, make, wait_final)


class RestartedSourceAgent(fakes.FakeAgents):
    """Once ``restart()`` is called the source agent is a new process: no
    casts reach the conductor, and get_job only knows what libvirt says
    (a job is active or not), not which migration it is nor its result."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.restarted = threading.Event()

    def restart(self) -> None:
        self.restarted.set()
        self.conductor_backup, self.conductor = self.conductor, None

    def get_job(self, ctxt, host, instance):
        job = super().get_job(ctxt, host, instance)
        if not self.restarted.is_set():
            return job
        return {'active': bool(job.get('active')), 'migration_id': None, 'instance': instance,
                'progress': {}, 'result': None}


def test_a_restarted_source_agent_does_not_make_the_conductor_give_up(conf, db, cloud):
    agents = RestartedSourceAgent(cloud, migrate_seconds=10.0)
    mgr, _ = make(conf, db, cloud, agents=agents)
    rec = mgr.migrate({}, 'vm1', dest='h2')
    deadline = time.monotonic() + 10
    while 'vm1' not in agents.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    agents.restart()
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert cloud.guests['vm1']['host'] == 'h2'
    assert ('abort', 'h1') not in agents.calls          # the copy was left to finish
    assert [s['status'] for s in final['steps'] if s['name'] == 'post_verify'] == ['ok']


class UnreachableDestination(fakes.FakeAgents):
    """post_verify cannot reach the destination until ``back`` is set.

    With ``hold_second_ask`` the second post_verify call waits for
    ``release`` before answering: the workflow's back-off runs on a
    FakeClock (no real time passes), so without this hold its whole
    answer_timeout_seconds budget could pass before the test thread looks
    at the record, and the test would race the workflow."""

    def __init__(self, *args, hold_second_ask: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.back = threading.Event()
        self.second_ask = threading.Event()
        self.release = threading.Event()
        self.hold_second_ask = hold_second_ask
        self.asked = 0

    def post_verify(self, ctxt, host, **kwargs):
        self.asked += 1
        if self.asked == 2 and self.hold_second_ask:
            self.second_ask.set()
            assert self.release.wait(60), 'the test never released the second ask'
        if not self.back.is_set():
            raise TimeoutError(f'{host} does not answer')
        return super().post_verify(ctxt, host, **kwargs)


def _start(conf, db, cloud, timeout_s: int, hold_second_ask: bool = False):
    conf.set_override('answer_timeout_seconds', timeout_s, group='conductor')
    agents = UnreachableDestination(cloud, migrate_seconds=0.2,
                                    hold_second_ask=hold_second_ask)
    mgr, _ = make(conf, db, cloud, agents=agents)
    return mgr, agents, mgr.migrate({}, 'vm1', dest='h2')


def test_verification_waits_for_a_destination_that_comes_back(conf, db, cloud):
    mgr, agents, rec = _start(conf, db, cloud, timeout_s=120, hold_second_ask=True)
    assert agents.second_ask.wait(30), 'post_verify was not asked again'
    now = mgr.get_migration({}, rec['id'])
    assert now['status'] == 'verifying', now            # no rollback, no failure
    failed = [s for s in now['steps'] if s['name'] == 'post_verify' and s['finished_at']]
    assert failed and all(s['status'] == 'failed' for s in failed)
    assert 'does not answer' in failed[0]['message']
    agents.back.set()
    agents.release.set()
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert [s['status'] for s in final['steps'] if s['name'] == 'post_verify'][-1] == 'ok'


def test_verification_gives_up_after_the_timeout_and_says_why(conf, db, cloud):
    mgr, agents, rec = _start(conf, db, cloud, timeout_s=2)
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed'
    assert 'handed over to h2' in final['error'] and 'could not be verified' in final['error']
    assert cloud.guests['vm1']['host'] == 'h2'          # where it really is
    assert final['status'] in db_api.FINAL_STATUSES


class LostReply(fakes.FakeAgents):
    """The migrate request reaches the agent (or not, with ``start=False``)
    but its reply is lost: the caller sees a timeout."""

    def __init__(self, *args, start: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = start

    def migrate(self, ctxt, host, **kwargs):
        if self.start:
            super().migrate(ctxt, host, **kwargs)
        else:
            self._check(host, 'migrate')
        raise TimeoutError('no reply in time')


def _lost_reply(conf, db, cloud, start: bool):
    agents = LostReply(cloud, start=start, migrate_seconds=2.0)
    mgr, _ = make(conf, db, cloud, agents=agents)
    return mgr, agents, mgr.migrate({}, 'vm1', dest='h2')


def test_a_lost_migrate_reply_does_not_abort_the_copy(conf, db, cloud):
    mgr, agents, rec = _lost_reply(conf, db, cloud, start=True)
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert cloud.guests['vm1']['host'] == 'h2'
    assert ('abort', 'h1') not in agents.calls
    assert 'no_answer' in [s['name'] for s in final['steps']]


def test_a_lost_migrate_request_fails_truthfully(conf, db, cloud):
    mgr, agents, rec = _lost_reply(conf, db, cloud, start=False)
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed', final
    assert 'no job' in final['error']
    assert cloud.guests['vm1']['host'] == 'h1'
    assert cloud.pins['vm1'] == '0-1'                   # the pre-pin was undone


class SilentForAWhile(fakes.FakeAgents):
    """The source agent fails its migration, then does not answer at all
    for ``silent_s`` (restarting, broker away)."""

    def __init__(self, *args, silent_s: float = 3.0, **kwargs):
        super().__init__(*args, fail_migration=True, **kwargs)
        self.silent_s = silent_s
        self.silent_until = None

    def _finish(self, migration_id, instance, status, error, elapsed=0.0):
        self.silent_until = self.clock.monotonic() + self.silent_s
        super()._finish(migration_id, instance, status, error, elapsed)

    def _check(self, host, method):
        super()._check(host, method)
        if host == 'h1' and self.silent_until and self.clock.monotonic() < self.silent_until:
            raise TimeoutError(f'{host} does not answer')


def test_a_rollback_waits_for_the_facts(conf, db, cloud):
    agents = SilentForAWhile(cloud, migrate_seconds=0.2)
    mgr, _ = make(conf, db, cloud, agents=agents)
    rec = mgr.migrate({}, 'vm1', dest='h2')
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed'
    # Concluded on the source's answer, not on "seen nowhere".
    assert 'nowhere' not in final['error'] and 'did not answer' not in final['error'], final
    rollback = [s for s in final['steps'] if s['name'] == 'rollback'][0]
    assert rollback['status'] == 'ok' and rollback['data']['where'] == {'h1': 'running'}
    assert cloud.pins['vm1'] == '0-1'


class LostPinReply(fakes.FakeAgents):
    """pre_pin pins, but its reply is lost; then the copy fails."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, fail_migration=True, **kwargs)

    def get_host_state(self, ctxt, host):
        state = super().get_host_state(ctxt, host)
        for guest in state['instances']:
            guest['emulator_cpus'] = self.cloud.pins[guest['name']]
        return state

    def pre_pin(self, ctxt, host, instance, node=None, migration_id=None):
        super().pre_pin(ctxt, host, instance, node)
        raise TimeoutError('no reply in time')


def test_a_lost_pre_pin_reply_leaves_no_stale_pinning(conf, db, cloud):
    agents = LostPinReply(cloud, migrate_seconds=0.2)
    mgr, _ = make(conf, db, cloud, agents=agents)
    for name in cloud.hosts:
        mgr.report_state({}, agents.get_host_state({}, name))
    rec = mgr.migrate({}, 'vm1', dest='h2')
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed'
    assert final['pin'] == {'previous_cpus': '0-1', 'uncertain': True}
    assert cloud.pins['vm1'] == '0-1'                   # restored, though never answered


def test_a_drain_never_moves_a_guest_twice_on_stale_reports(conf, db):
    """Agents report every few seconds (and not at all while the broker is
    away): right after a guest's migration completes, its old host's last
    report still lists it. The drain must not plan it again."""
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536),
                             'h3': _host(mem=65536, link=1000)})
    for i in range(3):
        cloud.add_guest(f'g{i}', 'h1', memory_mib=2048)
    mgr, agents = make(conf, db, cloud, migrate_seconds=0.2)
    drain = mgr.drain({}, 'h1')
    # No report after this point: the stored states stay as they were.
    deadline = time.monotonic() + 60
    while mgr.get_drain({}, drain['id'])['status'] == 'running':
        assert time.monotonic() < deadline, mgr.get_drain({}, drain['id'])
        time.sleep(0.1)
    rec = mgr.get_drain({}, drain['id'])
    assert rec['status'] == 'completed', rec
    assert sorted(m['instance'] for m in rec['migrations']) == ['g0', 'g1', 'g2']
    assert all(m['status'] == 'completed' for m in rec['migrations'])
    assert all(g['host'] != 'h1' for g in cloud.guests.values())
    mgr.stop()


class CrashOnArrival(fakes.FakeAgents):
    """The destination's post_verify finds ``crashing`` crashed (what
    the agent says when a guest panics right after the switch-over)."""

    crashing = 'g1'

    def post_verify(self, ctxt, host, instance, uuid, memory_mib, vcpus, cpus):
        answer = super().post_verify(ctxt, host, instance, uuid, memory_mib, vcpus, cpus)
        if instance == self.crashing and answer['ok']:
            return {'ok': False, 'reason': 'the guest crashed (kernel panic reported by its '
                    'panic device) while post_verify watched it (1 s)', 'affinity': None}
        return answer


def test_a_drain_whose_guest_crashed_on_arrival_is_not_clean(conf, db):
    """The host ends empty - the crashed guest is on its destination - but
    the drain must say that a guest left it through a failed migration,
    with the agent's reason, instead of 'completed'. Not tried again: it
    is no longer on the host."""
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536),
                             'h3': _host(mem=65536, link=1000)})
    for i in range(3):
        cloud.add_guest(f'g{i}', 'h1', memory_mib=2048)
    # The drain looks at the reports once a second, as with the real clock:
    # the test reports every 0.2 s, so a guest that has left is not seen on
    # h1 by the next look (a faster look would see the stale report).
    mgr, agents = make(conf, db, cloud, agents=CrashOnArrival(cloud, migrate_seconds=0.2),
                       clock=fakes.FakeClock(real_wait_s=1.0))
    drain = mgr.drain({}, 'h1')
    deadline = time.monotonic() + 60
    while True:
        for name in cloud.hosts:
            mgr.report_state({}, agents.get_host_state({}, name))
        rec = mgr.get_drain({}, drain['id'])
        if rec['status'] != 'running':
            break
        assert time.monotonic() < deadline, rec
        time.sleep(0.2)
    assert all(g['host'] != 'h1' for g in cloud.guests.values())
    assert rec['status'] == 'failed', rec
    assert 'h1 is empty, but 1 guests left it through a migration that failed' in rec['error']
    assert 'g1 (post_verify on' in rec['error'] and 'kernel panic' in rec['error']
    broken = rec['plan']['failed_after_leaving']
    assert [b['instance'] for b in broken] == ['g1']
    assert broken[0]['dest'] == cloud.guests['g1']['host']
    assert sorted(rec['plan']['moved']) == ['g0', 'g2']
    assert [m['instance'] for m in rec['migrations']].count('g1') == 1
    mgr.stop()
