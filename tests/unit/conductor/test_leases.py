"""Several conductors on one database (kvmplace.conductor.leases), in one
process: two ConductorManagers share a SQLite file and in-memory agents
(fakes.py). The agents' casts go to the conductors in turn, as RabbitMQ
hands a topic's casts to its consumers in turn, so a migration's progress
and result often reach the conductor that does not drive it.

The processes, PostgreSQL and RabbitMQ are real in
tests/functional/postgresql/test_leases.py and
tests/integration/test_conductors_lab.py.
"""
from __future__ import annotations

import itertools
import threading
import time

from kvmplace.exception import KvmplaceError
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import (  # noqa: F401 - fixtures
    _host, cloud, conf, db, make, wait_final)


class Topic:
    """Casts to the conductor topic: each goes to the next conductor."""

    def __init__(self, *conductors):
        self.conductors = list(conductors)
        self._next = itertools.cycle(range(len(self.conductors)))
        self.lock = threading.Lock()

    def _pick(self):
        with self.lock:
            return self.conductors[next(self._next) % len(self.conductors)]

    def migration_progress(self, ctxt, migration_id, progress):
        self._pick().migration_progress(ctxt, migration_id, progress)

    def migration_finished(self, ctxt, migration_id, result):
        self._pick().migration_finished(ctxt, migration_id, result)


class RealisticAgents(fakes.FakeAgents):
    """Like the real agent: a guest has one migration job at a time (a
    second migrate is refused), and ``gate`` holds the first
    check_destination (the migration stays 'prechecking') until released."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.at_gate = threading.Event()
        self.gate = threading.Event()
        self.gated = False

    def check_destination(self, ctxt, host, instance, source_cpu_model):
        if not self.gated:
            self.gated = True
            self.at_gate.set()
            assert self.gate.wait(30), 'the test never opened the gate'
        return super().check_destination(ctxt, host, instance, source_cpu_model)

    def migrate(self, ctxt, host, migration_id, instance, **kwargs):
        job = self.jobs.get(instance)
        if job and job['active']:
            raise KvmplaceError(f'{instance} already has a migration job running')
        return super().migrate(ctxt, host, migration_id, instance, **kwargs)


def _two(conf, db, cloud, agents):
    conf.set_override('host', 'cond-a', group='conductor')
    a, _ = make(conf, db, cloud, agents=agents)
    conf.set_override('host', 'cond-b', group='conductor')
    b, _ = make(conf, db, cloud, agents=agents, clock=a.clock)
    agents.conductor = Topic(a, b)
    return a, b


def test_two_conductors_do_not_fight(conf, db, cloud):
    """The issue's reproduction: conductor B starts while A's migration is
    prechecking. Before leases B resumed A's record ("starting over"), its
    migrate was refused, and its rollback aborted A's running copy: the
    record ended failed, the guest on its source, pinning restored twice.
    Now B leaves A's record alone, and A's migration ends in the truth."""
    agents = RealisticAgents(cloud, migrate_seconds=0.5)
    conf.set_override('host', 'cond-a', group='conductor')
    a, _ = make(conf, db, cloud, agents=agents)
    agents.conductor = a
    rec = a.migrate({}, 'vm1', dest='h2')
    assert agents.at_gate.wait(10)
    assert a.get_migration({}, rec['id'])['status'] == 'prechecking'
    conf.set_override('host', 'cond-b', group='conductor')
    b, _ = make(conf, db, cloud, agents=agents, clock=a.clock)
    agents.conductor = Topic(a, b)
    adopted = b.recover()                   # what B does at its start
    agents.gate.set()
    final = wait_final(a, rec['id'])
    assert final['status'] == 'completed', final['error']
    assert cloud.guests['vm1']['host'] == 'h2'
    assert [c for c in agents.calls if c[0] in ('migrate', 'abort', 'restore_pin')] == \
        [('migrate', 'h1')]
    assert adopted == []
    assert final['lease_owner'] == 'cond-a'
    assert not [s for s in final['steps'] if s['name'] == 'recovered']


def test_progress_and_result_reach_the_owner_through_any_conductor(conf, db, cloud):
    """Half the casts land on B; A (the owner) still completes - the
    result B received is read from the record, not lost."""
    agents = RealisticAgents(cloud, migrate_seconds=0.5)
    agents.gated = True
    a, b = _two(conf, db, cloud, agents)    # casts: A, B, A, B, A, then the result on B
    results = []
    a_finish, b_finish = a.migration_finished, b.migration_finished
    a.migration_finished = lambda *x: (results.append('a'), a_finish(*x))
    b.migration_finished = lambda *x: (results.append('b'), b_finish(*x))
    rec = a.migrate({}, 'vm1', dest='h2')
    final = wait_final(a, rec['id'])
    assert final['status'] == 'completed', final['error']
    assert results == ['b']                 # 5 progress casts, then the result on B
    assert final['result']['status'] == 'completed'
    assert cloud.guests['vm1']['host'] == 'h2'


def test_a_dead_owners_migration_is_adopted_after_its_lease_expires(conf, db, cloud):
    conf.set_override('takeover_seconds', 2, group='conductor')
    agents = RealisticAgents(cloud, migrate_seconds=4.0)
    agents.gated = True
    a, b = _two(conf, db, cloud, agents)
    rec = a.migrate({}, 'vm1', dest='h2')
    deadline = time.monotonic() + 10
    while 'vm1' not in agents.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    a.stop()                                # A dies: nobody renews its lease
    agents.conductor = b
    assert b.recover() == []                # not expired yet: A's
    deadline = time.monotonic() + 10
    while not (adopted := b.recover()):
        assert time.monotonic() < deadline, 'never adopted'
        time.sleep(0.1)
    took = time.monotonic() - (deadline - 10)
    assert adopted == [rec['id']]
    final = wait_final(b, rec['id'])
    assert took <= 2 + 0.5
    assert final['status'] == 'completed', final['error']
    assert final['lease_owner'] == 'cond-b'
    assert cloud.guests['vm1']['host'] == 'h2'
    assert [c for c in agents.calls if c[0] in ('migrate', 'abort')] == [('migrate', 'h1')]
    assert [s['name'] for s in final['steps'] if s['name'] == 'recovered'] == ['recovered']


def test_a_conductor_that_lost_its_lease_touches_nothing(conf, db, cloud):
    """A paused owner (its lease expired, B adopted) finds out at its next
    look and walks away: no abort, no unpinning, no second outcome."""
    conf.set_override('takeover_seconds', 2, group='conductor')
    agents = RealisticAgents(cloud, migrate_seconds=4.0)
    agents.gated = True
    a, b = _two(conf, db, cloud, agents)
    rec = a.migrate({}, 'vm1', dest='h2')
    deadline = time.monotonic() + 10
    while 'vm1' not in agents.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    db.update_migration(rec['id'], lease_expires=0.0)   # as if A had paused
    assert b.recover() == [rec['id']]
    final = wait_final(b, rec['id'])
    assert final['status'] == 'completed', final['error']
    assert final['lease_owner'] == 'cond-b'
    assert [c for c in agents.calls if c[0] in ('migrate', 'abort', 'restore_pin')] == \
        [('migrate', 'h1')]
    assert a._running[rec['id']].result(10)['lease_owner'] == 'cond-b'


def test_admission_holds_across_conductors(conf, db):
    """Two 300 MiB/s migrations cannot share a 1 GbE uplink, started
    through different conductors: the second waits for the first."""
    conf.set_override('max_concurrent_per_source', 4, group='conductor')
    cloud = fakes.FakeCloud({'h1': _host(link=1000, mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('a', 'h1')
    cloud.add_guest('b', 'h1')
    agents = RealisticAgents(cloud, migrate_seconds=1.0)
    agents.gated = True
    ca, cb = _two(conf, db, cloud, agents)
    ra = ca.migrate({}, 'a')
    rb = cb.migrate({}, 'b')
    fa, fb = wait_final(ca, ra['id']), wait_final(cb, rb['id'])
    assert fa['status'] == fb['status'] == 'completed'
    waited = [s for s in fa['steps'] + fb['steps'] if s['name'] == 'admission']
    assert waited and 'link' in (waited[0]['message'] or '')
    first, second = sorted([fa, fb], key=lambda r: r['started_at'])
    first_copy = [s for s in first['steps'] if s['name'] == 'migrate'][0]
    assert second['started_at'] >= first_copy['finished_at']


def test_one_rebalance_at_a_time_across_conductors(conf, db, cloud):
    a_db_rec = db.create_drain('rebalance', None, {'moves': []}, lease_owner='cond-a',
                               lease_expires=time.time() + 60)
    try:
        db.create_drain('rebalance', None, {'moves': []}, lease_owner='cond-b',
                        lease_expires=time.time() + 60)
    except KvmplaceError as exc:
        assert a_db_rec['id'] in str(exc) and 'already running' in str(exc)
    else:
        raise AssertionError('a second running rebalance was recorded')
