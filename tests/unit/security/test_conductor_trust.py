"""Issue 16, the conductor's side: aborts retried until confirmed, a
stopping conductor admits nothing new and stops waiting at once, drains
count every defined guest, host reports named and sized before storage.

In-memory agents (tests/unit/conductor/fakes.py): the findings are in the
conductor's decisions, which need no libvirt to show.
"""
from __future__ import annotations

import threading
import time

import pytest

from kvmplace.conductor import admission as adm
from kvmplace.conductor import drain_blockers
from kvmplace.conductor import validate as v
from kvmplace.exception import InvalidInput
from kvmplace.status import DrainStatus
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import _host, conf, db, make, wait_final  # noqa: F401


def _until(predicate, timeout_s=10.0, what='condition'):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.02)


class AbortFailsAtFirst(fakes.FakeAgents):
    """The source's first aborts fail (libvirt busy, answer lost)."""

    def __init__(self, *args, failures=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = failures
        self.aborts = 0

    def abort(self, ctxt, host, instance):
        self._check(host, 'abort')
        self.aborts += 1
        if self.aborts <= self.failures:
            return {'aborted': False, 'reason': 'job is busy'}
        return super().abort(ctxt, host, instance)


def test_the_conductor_asks_again_until_the_abort_is_confirmed(conf, db):  # noqa: F811
    """Before: abort was sent once; a failed abort left the copy running
    and the workflow waiting for it to end by itself (here: never)."""
    cloud = fakes.FakeCloud({'h1': _host(), 'h2': _host()})
    cloud.add_guest('vm1', 'h1')
    agents = AbortFailsAtFirst(cloud, hang=True, failures=2)
    mgr, agents = make(conf, db, cloud, agents=agents)
    rec = mgr.migrate({}, 'vm1')
    _until(lambda: mgr.get_migration({}, rec['id'])['status'] == 'migrating')
    mgr.abort_migration({}, rec['id'])
    final = wait_final(mgr, rec['id'])
    assert final['status'] == 'aborted', final['error']
    assert agents.aborts == 3             # two refused, the third confirmed
    assert cloud.guests['vm1']['host'] == 'h1'
    mgr.stop()


def test_a_stopping_conductor_starts_nothing_that_waited_for_admission(conf, db):  # noqa: F811
    """Before: stop() let interrupted workflows free their slots, and a
    workflow queued at admission took one and ran pre_pin and migrate."""
    conf.set_override('max_concurrent_total', 1, group='conductor')
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('a', 'h1')
    cloud.add_guest('b', 'h1')
    mgr, agents = make(conf, db, cloud, hang=True)
    ra = mgr.migrate({}, 'a')
    _until(lambda: mgr.get_migration({}, ra['id'])['status'] == 'migrating')
    rb = mgr.migrate({}, 'b')
    _until(lambda: any(s['name'] == 'admission'
                       for s in mgr.get_migration({}, rb['id'])['steps']), what='b queued')
    workers = list(mgr._pool._threads)
    started = time.monotonic()
    mgr.stop()
    for thread in workers:
        thread.join(5)
        assert not thread.is_alive(), 'a workflow kept waiting after stop()'
    assert time.monotonic() - started < 3.0     # promptly, not after a poll or a copy
    b_calls = [c for c in agents.calls if c[0] in ('pre_pin', 'migrate')]
    assert b_calls == [('pre_pin', 'h1'), ('migrate', 'h1')]   # a's only
    assert mgr.get_migration({}, rb['id'])['status'] in ('prechecking', 'pinning')


def test_closed_admission_admits_nothing_and_wakes_waiters():
    gate = adm.Admission(1, 1, 1, lambda link: 1000.0)
    assert gate.try_acquire(adm.Slot('m1', 'a', 'b', (), 10.0)) is None
    answer = {}
    slot = adm.Slot('m2', 'a', 'b', (), 10.0)
    waiter = threading.Thread(target=lambda: answer.setdefault(
        'ok', gate.acquire(slot, cancelled=lambda: False, poll_seconds=60)))
    waiter.start()
    time.sleep(0.05)
    gate.close()
    waiter.join(2)
    assert not waiter.is_alive() and answer['ok'] is False
    gate.release('m1')
    assert gate.try_acquire(adm.Slot('m3', 'a', 'b', (), 10.0)) == 'the conductor is stopping'


def _drain_until_done(mgr, agents, cloud, drain_id, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while True:
        for name in cloud.hosts:
            mgr.report_state({}, agents.get_host_state({}, name))
        rec = mgr.get_drain({}, drain_id)
        if rec['status'] != 'running':
            return rec
        assert time.monotonic() < deadline, rec
        time.sleep(0.1)


@pytest.mark.parametrize('state', ['shutoff', 'crashed', 'pmsuspended'])
def test_a_drain_is_not_completed_while_a_guest_is_still_defined(conf, db, state):  # noqa: F811
    """Before: only running and paused guests counted; a drain ended
    "completed" with a shut-off guest still defined on the host."""
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('live', 'h1')
    cloud.add_guest('sleeper', 'h1')
    cloud.guests['sleeper']['state'] = state
    mgr, agents = make(conf, db, cloud, migrate_seconds=0.2)
    drain = mgr.drain({}, 'h1')
    rec = _drain_until_done(mgr, agents, cloud, drain['id'])
    assert rec['status'] == DrainStatus.BLOCKED, rec
    assert cloud.guests['live']['host'] == 'h2'           # the live one moved
    assert 'sleeper' in rec['error'] and state in rec['error']
    blocked = rec['plan']['blocked']
    assert [b['instance'] for b in blocked] == ['sleeper']
    assert blocked[0]['action'] == drain_blockers.ACTIONS[state]
    mgr.stop()


def test_a_drain_of_a_host_with_nothing_defined_completes(conf, db):  # noqa: F811
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('live', 'h1')
    mgr, agents = make(conf, db, cloud, migrate_seconds=0.2)
    rec = _drain_until_done(mgr, agents, cloud, mgr.drain({}, 'h1')['id'])
    assert rec['status'] == DrainStatus.COMPLETED and rec['plan']['blocked'] == []
    mgr.stop()


def _report(**extra):
    report = {'name': 'cn-1', 'vcpus': 8, 'memory_mib': 4096,
              'numa': [{'id': 0, 'cpus': '0-7'}], 'instances': []}
    report.update(extra)
    return report


@pytest.mark.parametrize('report, field', [
    (_report(name='switch'), 'host_state.name'),
    (_report(instances=[{'name': 'vm\n[ERROR] forged', 'memory_mib': 1}]),
     'host_state.instances[0].name'),
    (_report(instances=[{'name': 'vm\u202eexe', 'memory_mib': 1}]),
     'host_state.instances[0].name'),
    (_report(numa=[{'id': 0, 'cpus': ','.join(['0-8191'] * 4)}]), 'host_state.numa[0].cpus'),
    (_report(numa=[{'id': i, 'cpus': '0'} for i in range(2000)]), 'host_state.numa'),
    (_report(extra='x' * 100_000), 'host_state.extra'),
])
def test_host_reports_are_named_and_sized_before_they_are_stored(report, field):
    with pytest.raises(InvalidInput) as err:
        v.host_state(report)
    assert str(err.value).startswith(field + ':')


def test_a_refused_report_is_not_stored(conf, db):  # noqa: F811
    cloud = fakes.FakeCloud({'h1': _host()})
    mgr, _ = make(conf, db, cloud)
    mgr.report_state({}, _report(name='switch'))
    assert 'switch' not in [h['name'] for h in mgr.list_hosts({})]
    mgr.stop()


def test_a_host_may_only_report_on_migrations_leaving_it(tmp_path, caplog):
    """Message authentication (kvmplace.msgauth) tells the manager which
    host signed a migration cast: only the migration's source counts, so
    a compromised host cannot finish (or fake the progress of) another
    host's migration. An unsigned cast (required = false) is as before."""
    import uuid as uuidlib

    from kvmplace import conf as kconf
    from kvmplace.conductor import manager as cm
    from kvmplace.conductor.db import api as db_api
    from tests.unit.conductor import fakes
    conf = kconf.new_conf()
    db = db_api.Database(f'sqlite:///{tmp_path}/d.sqlite')
    db.upgrade()
    manager = cm.ConductorManager(conf, db, fakes.FakeAgents(fakes.FakeCloud({})))
    try:
        rec = db.create_migration('vm2', 'h2', 'h1', {}, instance_uuid=str(uuidlib.uuid4()))
        db.update_migration(rec['id'], status='migrating', dest='h1')
        caplog.set_level('WARNING', logger='kvmplace.conductor.manager')
        found = manager._agent_cast({'kvmplace_signer': 'host:h1'}, 'migration_finished',
                                    rec['id'], lambda p: p, {'status': 'completed'})
        assert found is None
        assert 'signed by host:h1, not by its source h2' in caplog.text
        for ctxt in ({'kvmplace_signer': 'host:h2'}, {}):
            found = manager._agent_cast(ctxt, 'migration_finished', rec['id'],
                                        lambda p: p, {'status': 'completed'})
            assert found is not None and found[0]['id'] == rec['id']
    finally:
        manager.stop()
