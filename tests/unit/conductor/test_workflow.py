"""The conductor's migration workflow, with in-memory agents (see fakes.py)."""
from __future__ import annotations

import time

import pytest

from kvmplace import conf as kconf
from kvmplace.conductor import manager as cm
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import InvalidInput, KvmplaceError, NotFound
from tests.unit.conductor import fakes


def _host(link=10000, mem=16384, used=0):
    return {'link_mbps': link, 'vcpus': 8, 'vcpus_used': 0, 'memory_mib': mem,
            'memory_used_mib': used, 'cpu_model': None,
            'numa': [{'id': 0, 'cpus': '0-3', 'memory_mib': mem // 2,
                      'free_memory_mib': mem // 2 - used // 2},
                     {'id': 1, 'cpus': '4-7', 'memory_mib': mem // 2,
                      'free_memory_mib': mem // 2 - used // 2}]}


@pytest.fixture
def conf():
    c = kconf.new_conf()
    c.set_override('monitor_interval_seconds', 1, group='conductor')
    return c


@pytest.fixture
def db(tmp_path):
    d = db_api.Database(f'sqlite:///{tmp_path}/k.sqlite')
    d.upgrade()
    return d


def make(conf, db, cloud, agents=None, clock=None, **agent_kwargs):
    """A manager over fake agents (``agents``, or FakeAgents made from
    ``agent_kwargs``) with a FakeClock: back-off and polling pass at once."""
    clock = clock or fakes.FakeClock()
    if agents is None:
        agents = fakes.FakeAgents(cloud, **agent_kwargs)
    agents.clock = clock
    mgr = cm.ConductorManager(conf, db, agents, clock=clock)
    agents.conductor = mgr
    for name in cloud.hosts:
        mgr.report_state({}, agents.get_host_state({}, name))
    agents.calls.clear()
    return mgr, agents


def wait_final(mgr, mid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = mgr.get_migration({}, mid)
        if rec['status'] in db_api.FINAL_STATUSES:
            return rec
        time.sleep(0.05)
    raise AssertionError(f'migration did not finish: {mgr.get_migration({}, mid)}')


@pytest.fixture
def cloud():
    c = fakes.FakeCloud({'h1': _host(), 'h2': _host(link=10000), 'h3': _host(link=1000)})
    c.add_guest('vm1', 'h1')
    return c


def test_migrate_runs_every_step_in_order(conf, db, cloud):
    mgr, agents = make(conf, db, cloud)
    rec = mgr.migrate({}, 'vm1')
    final = wait_final(mgr, rec['id'])
    assert final['status'] == 'completed', final['error']
    assert final['dest'] == 'h2'  # 10 GbE beats 1 GbE
    names = [s['name'] for s in final['steps']]
    for a, b in [('schedule', 'check_destination'), ('check_destination', 'pre_pin'),
                 ('pre_pin', 'migrate'), ('migrate', 'post_verify')]:
        assert names.index(a) < names.index(b)
    assert all(s['finished_at'] for s in final['steps'])
    assert cloud.guests['vm1']['host'] == 'h2'
    assert final['pin']['previous_cpus'] == '0-1'
    assert any(s['name'] == 'progress' for s in final['steps'])


def test_forced_destination_is_used(conf, db, cloud):
    mgr, _ = make(conf, db, cloud)
    final = wait_final(mgr, mgr.migrate({}, 'vm1', dest='h3')['id'])
    assert final['status'] == 'completed'
    assert final['dest'] == 'h3'


def test_refused_precheck_moves_to_next_host(conf, db, cloud):
    mgr, agents = make(conf, db, cloud, refuse=('h2',))
    final = wait_final(mgr, mgr.migrate({}, 'vm1')['id'])
    assert final['status'] == 'completed'
    assert final['dest'] == 'h3'
    assert [a['host'] for a in final['attempts']] == ['h2', 'h3']
    refused = [s for s in final['steps'] if s['name'] == 'check_destination']
    assert refused[0]['status'] == 'refused' and 'refused by test' in refused[0]['message']


def test_destination_refused_when_migrating_moves_to_next_host(conf, db, cloud):
    # The Nova driver's case: check_destination passed, but Nova's
    # scheduler refused the host when asked to migrate (nothing copied).
    mgr, agents = make(conf, db, cloud, refuse_migrate=('h2',))
    final = wait_final(mgr, mgr.migrate({}, 'vm1')['id'])
    assert final['status'] == 'completed', final['error']
    assert final['dest'] == 'h3'
    assert cloud.guests['vm1']['host'] == 'h3'
    assert [(a['host'], a['ok']) for a in final['attempts']] == [('h2', False), ('h3', True)]
    assert final['attempts'][0]['reason'] == 'Nova refused h2: refused by test'
    assert final['attempts'][0]['step'] == 'migrate'
    migrates = [s['status'] for s in final['steps'] if s['name'] == 'migrate']
    assert migrates == ['refused', 'ok']
    # The source pinning was put back before the next host was tried.
    names = [m for m, _ in agents.calls]
    assert names.index('restore_pin') < len(names) - 1 - names[::-1].index('pre_pin')


def test_refused_when_migrating_everywhere_fails_with_reasons(conf, db, cloud):
    mgr, _ = make(conf, db, cloud, refuse_migrate=('h2', 'h3'))
    final = wait_final(mgr, mgr.migrate({}, 'vm1')['id'])
    assert final['status'] == 'failed'
    assert 'h2: Nova refused h2' in final['error'] and 'h3: Nova refused h3' in final['error']
    assert cloud.guests['vm1']['host'] == 'h1'
    assert cloud.pins['vm1'] == '0-1'


def test_every_host_refusing_fails_with_reasons(conf, db, cloud):
    mgr, _ = make(conf, db, cloud, refuse=('h2', 'h3'))
    final = wait_final(mgr, mgr.migrate({}, 'vm1')['id'])
    assert final['status'] == 'failed'
    assert 'h2: refused by test' in final['error'] and 'h3' in final['error']
    assert cloud.guests['vm1']['host'] == 'h1'


def test_failed_migration_rolls_back_and_restores_pin(conf, db, cloud):
    mgr, agents = make(conf, db, cloud, fail_migration=True)
    final = wait_final(mgr, mgr.migrate({}, 'vm1')['id'])
    assert final['status'] == 'failed'
    assert 'injected failure' in final['error']
    assert cloud.guests['vm1']['host'] == 'h1'
    assert cloud.pins['vm1'] == '0-1'
    assert [s['name'] for s in final['steps']][-2:] == ['restore_pin', 'rollback'] or \
        'restore_pin' in [s['name'] for s in final['steps']]


def test_abort_in_the_middle(conf, db, cloud):
    mgr, agents = make(conf, db, cloud, hang=True)
    rec = mgr.migrate({}, 'vm1')
    deadline = time.monotonic() + 10
    while mgr.get_migration({}, rec['id'])['status'] != 'migrating':
        assert time.monotonic() < deadline
        time.sleep(0.02)
    mgr.abort_migration({}, rec['id'][:8])
    final = wait_final(mgr, rec['id'])
    assert final['status'] == 'aborted'
    assert cloud.guests['vm1']['host'] == 'h1'
    assert cloud.pins['vm1'] == '0-1'
    assert ('abort', 'h1') in agents.calls


def test_a_stopping_conductor_leaves_a_running_migration_for_recovery(conf, db, cloud):
    """stop() ends the workflow threads (the process can exit at once) and
    leaves the record 'migrating'; the next conductor resumes it."""
    mgr, agents = make(conf, db, cloud, hang=True)
    rec = mgr.migrate({}, 'vm1')
    deadline = time.monotonic() + 10
    while mgr.get_migration({}, rec['id'])['status'] != 'migrating':
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = list(mgr._pool._threads)
    mgr.stop()
    for thread in workers:
        thread.join(10)
        assert not thread.is_alive(), 'a workflow kept waiting after stop()'
    assert mgr.get_migration({}, rec['id'])['status'] == 'migrating'   # no invented outcome
    # The next conductor (same database and agents) resumes and can abort it.
    again = cm.ConductorManager(conf, db, agents)
    agents.conductor = again
    assert rec['id'] in again.recover()
    again.abort_migration({}, rec['id'])
    final = wait_final(again, rec['id'])
    assert final['status'] == 'aborted' and cloud.guests['vm1']['host'] == 'h1'
    again.stop()


def test_one_migration_per_guest(conf, db, cloud):
    mgr, _ = make(conf, db, cloud, hang=True)
    rec = mgr.migrate({}, 'vm1')
    with pytest.raises(KvmplaceError, match='already migrating'):
        mgr.migrate({}, 'vm1')
    mgr.abort_migration({}, rec['id'])
    wait_final(mgr, rec['id'])


def test_bad_arguments_are_refused_with_field_names(conf, db, cloud):
    mgr, _ = make(conf, db, cloud)
    with pytest.raises(NotFound):
        mgr.migrate({}, 'nope')
    with pytest.raises(InvalidInput, match='instance'):
        mgr.migrate({}, '../etc/passwd')
    with pytest.raises(InvalidInput, match='policy.max_downtime_ms'):
        mgr.migrate({}, 'vm1', policy={'max_downtime_ms': -1})
    with pytest.raises(InvalidInput, match='policy.bogus'):
        mgr.migrate({}, 'vm1', policy={'bogus': 1})
    with pytest.raises(KvmplaceError, match='already runs'):
        mgr.migrate({}, 'vm1', dest='h1')


def test_recovery_finishes_a_migration_that_completed_while_down(conf, db, cloud):
    """A conductor that died mid-migrate finds the guest on the destination."""
    mgr, agents = make(conf, db, cloud)
    rec = db.create_migration('vm1', 'h1', None, {})
    db.update_migration(rec['id'], status='migrating', dest='h2', dest_cpus='1',
                        instance_uuid=cloud.guests['vm1']['uuid'])
    cloud.guests['vm1']['host'] = 'h2'          # it finished while we were gone
    agents.jobs['vm1'] = {'active': False, 'migration_id': rec['id'], 'progress': None,
                          'result': {'status': 'completed', 'error': None}}
    assert mgr.recover() == [rec['id']]
    final = wait_final(mgr, rec['id'])
    assert final['status'] == 'completed'
    assert 'recovered' in [s['name'] for s in final['steps']]


def test_recovery_fails_a_migration_whose_job_vanished(conf, db, cloud):
    conf.set_override('monitor_interval_seconds', 1, group='conductor')
    mgr, agents = make(conf, db, cloud)
    rec = db.create_migration('vm1', 'h1', None, {})
    db.update_migration(rec['id'], status='migrating', dest='h2',
                        pin={'previous_cpus': '0-1', 'cpus': '1'})
    cloud.pins['vm1'] = '1'
    mgr.recover()
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed'
    assert cloud.guests['vm1']['host'] == 'h1'
    assert cloud.pins['vm1'] == '0-1'


def test_link_capacity_limits_concurrency(conf, db):
    """Two 300 MiB/s migrations cannot share a 1 GbE uplink; they queue."""
    conf.set_override('max_concurrent_per_source', 4, group='conductor')
    cloud = fakes.FakeCloud({'h1': _host(link=1000, mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('a', 'h1')
    cloud.add_guest('b', 'h1')
    mgr, agents = make(conf, db, cloud, migrate_seconds=1.0)
    ra = mgr.migrate({}, 'a')
    rb = mgr.migrate({}, 'b')
    fa, fb = wait_final(mgr, ra['id']), wait_final(mgr, rb['id'])
    assert fa['status'] == fb['status'] == 'completed'
    waited = [s for s in fa['steps'] + fb['steps'] if s['name'] == 'admission']
    assert waited and 'link' in (waited[0]['message'] or '')
    # They did not overlap: one started after the other finished migrating.
    first, second = sorted([fa, fb], key=lambda r: r['started_at'])
    assert second['started_at'] >= first['finished_at'][:19] or \
        second['started_at'] >= [s for s in first['steps'] if s['name'] == 'migrate'][0][
            'finished_at']


@pytest.mark.parametrize('reserve_mibps', [None, 30.0])
def test_a_drains_planned_hold_on_the_links_is_what_admission_counts(conf, db, reserve_mibps):
    """Two guests of one drain leave a 1 GbE host together when the plan
    says each holds 30 MiB/s of its 72 (a shared-source pool paced by the
    source's CPUs, planner/schedule.py); with no such hold each counts its
    full estimate and the second queues for the link."""
    cloud = fakes.FakeCloud({'h1': _host(link=1000, mem=65536), 'h2': _host(mem=65536)})
    cloud.add_guest('a', 'h1')
    cloud.add_guest('b', 'h1')
    mgr, agents = make(conf, db, cloud, migrate_seconds=1.0)
    drain = db.create_drain('drain', 'h1', {'initial': {}})
    planned = {'start_seconds': 0.0, 'predicted_seconds': 5.0, 'bandwidth_mibps': 100.0,
               **({'reserve_mibps': reserve_mibps} if reserve_mibps else {})}
    ids = [mgr.start_migration(g, 'h2', {}, drain_id=drain['id'], planned=planned)['id']
           for g in ('a', 'b')]
    finals = [wait_final(mgr, mid) for mid in ids]
    assert [f['status'] for f in finals] == ['completed', 'completed']
    assert all(f['estimate']['planned'] == planned for f in finals)
    waited = [s for f in finals for s in f['steps'] if s['name'] == 'admission']
    if reserve_mibps:
        assert waited == [], waited
    else:
        assert waited and 'link' in (waited[0]['message'] or '')


def test_drain_empties_the_host_and_sets_maintenance(conf, db):
    cloud = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536),
                             'h3': _host(mem=65536, link=1000)})
    for i in range(4):
        cloud.add_guest(f'g{i}', 'h1', memory_mib=2048)
    mgr, agents = make(conf, db, cloud, migrate_seconds=0.3)
    # Agents report every few seconds in real life; here after each move.
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
    assert rec['status'] == 'completed', rec
    assert all(g['host'] != 'h1' for g in cloud.guests.values())
    assert db.get_host('h1')['maintenance'] is True
    migs = rec['migrations']
    assert sorted(m['instance'] for m in migs if m['status'] == 'completed') == \
        ['g0', 'g1', 'g2', 'g3']
    # Nobody was migrated twice.
    assert len(migs) == 4
    with pytest.raises(KvmplaceError, match='nothing to do'):
        mgr.drain({}, 'h1', dry_run=True)


def test_drain_of_unknown_or_draining_host_is_refused(conf, db, cloud):
    mgr, _ = make(conf, db, cloud, hang=True)
    with pytest.raises(NotFound):
        mgr.drain({}, 'nope')
    with pytest.raises(InvalidInput):
        mgr.drain({}, 'bad name!')
    first = mgr.drain({}, 'h1')
    with pytest.raises(KvmplaceError, match='already draining'):
        mgr.drain({}, 'h1')
    for m in mgr.get_drain({}, first['id'])['migrations']:
        mgr.abort_migration({}, m['id'])
    mgr.stop()
