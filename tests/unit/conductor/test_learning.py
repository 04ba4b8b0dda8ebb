"""Learning each path's throughput from finished migrations.

The estimator predicts a path from its nominal rate x link efficiency until
migrations have crossed it; then from what they measured (an exponentially
weighted mean per (source, destination) kept by the conductor).
"""
from __future__ import annotations

import pytest

from kvmplace import estimator
from kvmplace import objects
from kvmplace.planner import drain as drain_plan
from kvmplace.scheduler import manager as sched
from tests.unit.builders import InventoryBuilder
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import _host, conf, db, make, wait_final  # noqa: F401

PARAMS = estimator.ModelParams(link_efficiency=0.95, stream_cap_mibps=230.0,
                               setup_seconds=0.5, switchover_overhead_ms=100)


# --- the arithmetic ------------------------------------------------------------

@pytest.mark.parametrize('dirty', [0.0, 10.0, 40.0])
@pytest.mark.parametrize('mibps', [20.0, 110.0, 230.0])
def test_fit_bandwidth_inverts_the_model(mibps, dirty):
    if dirty >= mibps:
        pytest.skip('does not converge')
    elapsed = estimator.precopy(1024, dirty, mibps, PARAMS).total_seconds
    assert estimator.fit_bandwidth(1024, dirty, elapsed, PARAMS) == pytest.approx(mibps,
                                                                                 rel=1e-3)


def test_fit_bandwidth_is_the_plain_rate_without_dirtying():
    # 1000 MiB in 10.6 s of which 0.5 s setup and 0.1 s switch-over: 100 MiB/s.
    assert estimator.fit_bandwidth(1000, 0, 10.6, PARAMS) == pytest.approx(100.0, rel=1e-3)


@pytest.mark.parametrize('memory, elapsed', [(1024, None), (1024, 0.0),
                                             (8, 3.0),        # too little data
                                             (1024, 0.65)])   # all fixed cost
def test_fit_bandwidth_refuses_runs_that_say_nothing(memory, elapsed):
    assert estimator.fit_bandwidth(memory, 0, elapsed, PARAMS) is None


def test_ewma():
    assert estimator.ewma(None, 80.0, 0.5) == 80.0
    assert estimator.ewma(80.0, 100.0, 0.5) == 90.0
    assert estimator.ewma(80.0, 100.0, 1.0) == 100.0


def test_learned_rate_replaces_the_link_term_only():
    nominal, label = estimator.bandwidth(1000, 1.0, 1.0, PARAMS)
    assert nominal == pytest.approx(objects.mbps_to_mibps(1000) * 0.95)
    assert estimator.bandwidth(1000, 1.0, 1.0, PARAMS, learned_mibps=90.0) == (90.0, 'link')
    # Shared fairly like the nominal term...
    assert estimator.bandwidth(1000, 1.0, 1.0, PARAMS, link_share=0.5,
                               learned_mibps=90.0) == (45.0, 'link')
    # A fast path learns what one stream really carries there...
    assert estimator.bandwidth(10000, 1.0, 1.0, PARAMS, learned_mibps=260.0) == \
        (260.0, 'stream')
    # ...and a slow NUMA node or a policy cap still applies on top.
    assert estimator.bandwidth(10000, 1.0, 0.25, PARAMS, learned_mibps=200.0) == \
        (57.5, 'dest-numa')
    capped = estimator.ModelParams(bandwidth_cap_mibps=50.0)
    assert estimator.bandwidth(10000, 1.0, 1.0, capped, learned_mibps=200.0) == (50.0, 'cap')


def _inventory():
    return (InventoryBuilder()
            .host('src', link_mbps=1000).host('fast', link_mbps=1000)
            .host('other', link_mbps=1000)
            .instance('vm', 'src', memory_mib=1024).build())


def test_estimate_says_when_it_learned():
    inv = _inventory()
    plain = estimator.estimate(inv.instances['vm'], inv.hosts['src'], inv.hosts['fast'],
                               1000, PARAMS)
    learned = estimator.estimate(inv.instances['vm'], inv.hosts['src'], inv.hosts['fast'],
                                 1000, PARAMS, learned_mibps=60.0)
    assert plain.learned is False and plain.to_dict()['learned'] is False
    assert learned.learned is True and learned.to_dict()['learned'] is True
    assert learned.bandwidth_mibps == 60.0
    assert learned.total_seconds == pytest.approx(0.5 + 1024 / 60.0 + 0.1, abs=1e-3)


def test_scheduler_uses_the_learned_rate_of_each_path_from_the_source(conf):  # noqa: F811
    inv = _inventory()
    inv.path_rates = {('src', 'fast'): 110.0, ('src', 'other'): 40.0,
                      ('fast', 'src'): 5.0}            # another source's path: ignored
    result = sched.SchedulerManager(conf).select(inv, objects.MigrationRequest(instance='vm'))
    by_host = {r['host']: r['estimate'] for r in result['ranked']}
    assert by_host['fast']['learned'] and by_host['fast']['bandwidth_mibps'] == 110.0
    assert by_host['other']['learned'] and by_host['other']['bandwidth_mibps'] == 40.0
    # Equal nominal links: what the paths really did decides the ranking.
    assert result['ranked'][0]['host'] == 'fast'


def test_drain_plan_uses_learned_rates(conf):  # noqa: F811
    inv = _inventory()
    scheduler = sched.SchedulerManager(conf)
    before = drain_plan.plan(scheduler, inv, 'src')
    inv.path_rates = {('src', 'fast'): 20.0, ('src', 'other'): 20.0}
    after = drain_plan.plan(scheduler, inv, 'src')
    assert after['predicted_makespan_seconds'] > 2 * before['predicted_makespan_seconds']
    assert after['migrations'][0]['bandwidth_mibps'] == 20.0


# --- the database ---------------------------------------------------------------

def test_path_rates_are_a_weighted_mean_per_direction(db):  # noqa: F811
    assert db.path_rates() == {}
    db.record_path_rate('a', 'b', 100.0, 0.5, 'm1')
    row = db.record_path_rate('a', 'b', 60.0, 0.5, 'm2')
    assert row['mibps'] == pytest.approx(80.0) and row['samples'] == 2
    assert row['last_mibps'] == 60.0 and row['last_migration_id'] == 'm2'
    db.record_path_rate('b', 'a', 10.0, 0.5)
    assert db.path_rates() == {('a', 'b'): pytest.approx(80.0), ('b', 'a'): 10.0}
    assert [(r['source'], r['dest']) for r in db.list_path_rates()] == [('a', 'b'), ('b', 'a')]


# --- the conductor ----------------------------------------------------------------

class MeasuringAgents(fakes.FakeAgents):
    """Fake agents whose results carry what a real agent measures."""

    data_mib = 1024.0
    elapsed_seconds = 11.0

    def _finish(self, migration_id, instance, status, error, elapsed=0.0):
        result = {'status': status, 'error': error, 'elapsed_seconds': self.elapsed_seconds,
                  'downtime_ms': 10.0, 'data_mib': self.data_mib, 'postcopy': False}
        self.jobs[instance].update(active=False, result=result)
        if self.conductor:
            self.conductor.migration_progress({}, migration_id, {'phase': 'complete'})
            self.conductor.migration_finished({}, migration_id, result)


def _cloud():
    cloud = fakes.FakeCloud({'h1': _host(link=1000), 'h2': _host(link=1000)})
    cloud.add_guest('vm1', 'h1', memory_mib=1024)
    return cloud


def _make(conf, db, cloud):  # noqa: F811
    agents = MeasuringAgents(cloud, migrate_seconds=0.1)
    from kvmplace.conductor import manager as cm
    mgr = cm.ConductorManager(conf, db, agents)
    agents.conductor = mgr
    for name in cloud.hosts:
        mgr.report_state({}, agents.get_host_state({}, name))
    return mgr, agents


def test_a_finished_migration_teaches_its_path(conf, db):  # noqa: F811
    # The learned figure as it is (no weighing against the nominal one,
    # see test_one_migration_moves_the_prediction_only_part_of_the_way).
    conf.set_override('learning_prior_migrations', 0, group='estimator')
    conf.set_override('setup_seconds', 0.5, group='estimator')
    conf.set_override('switchover_overhead_ms', 500, group='estimator')
    cloud = _cloud()
    mgr, agents = _make(conf, db, cloud)
    before = mgr.estimate({}, 'vm1', 'h2')
    assert before['learned'] is False
    final = wait_final(mgr, mgr.migrate({}, 'vm1', dest='h2')['id'])
    assert final['status'] == 'completed'
    # 1024 MiB (no dirtying) in 11 s minus 1 s of fixed costs: 102.4 MiB/s.
    assert db.path_rates() == {('h1', 'h2'): pytest.approx(102.4, rel=1e-3)}
    learn = [s for s in final['steps'] if s['name'] == 'learn']
    assert learn and learn[0]['data']['observed_mibps'] == pytest.approx(102.4, rel=1e-3)
    assert learn[0]['data']['used_mibps'] == pytest.approx(102.4, rel=1e-3)   # k = 0 here
    assert 'predictions use 102.4 MiB/s' in learn[0]['message']
    assert final['estimate']['inputs'] == {'memory_mib': 1024, 'dirty_rate_mibps': 0.0,
                                           'disk_mib': 0.0}
    # Back the other way: that path has not been measured yet.
    for name in cloud.hosts:
        mgr.report_state({}, agents.get_host_state({}, name))
    assert mgr.estimate({}, 'vm1', 'h1')['learned'] is False
    # A second guest on h1 now gets the learned figure for h1 -> h2.
    cloud.add_guest('vm2', 'h1', memory_mib=1024)
    mgr.report_state({}, agents.get_host_state({}, 'h1'))
    est = mgr.estimate({}, 'vm2', 'h2')
    assert est['learned'] is True and est['bandwidth_mibps'] == pytest.approx(102.4, rel=1e-3)
    assert est['total_seconds'] == pytest.approx(11.0, abs=0.01)   # what h1 -> h2 did
    ranked = mgr.select_destinations({}, 'vm2')['ranked']
    assert ranked[0]['estimate']['learned'] is True


def test_a_capped_migration_teaches_nothing(conf, db):  # noqa: F811
    cloud = _cloud()
    mgr, agents = _make(conf, db, cloud)
    agents.elapsed_seconds = 1024 / 50.0
    final = wait_final(mgr, mgr.migrate({}, 'vm1', dest='h2',
                                        policy={'bandwidth_cap_mibps': 50})['id'])
    assert final['status'] == 'completed'
    assert db.path_rates() == {}
    assert 'learn' not in [s['name'] for s in final['steps']]


def test_learning_can_be_turned_off(conf, db):  # noqa: F811
    conf.set_override('learn_path_throughput', False, group='estimator')
    cloud = _cloud()
    mgr, _ = _make(conf, db, cloud)
    db.record_path_rate('h1', 'h2', 10.0, 0.5)       # learned earlier, now ignored
    assert mgr.estimate({}, 'vm1', 'h2')['learned'] is False
    wait_final(mgr, mgr.migrate({}, 'vm1', dest='h2')['id'])
    assert db.path_rates() == {('h1', 'h2'): 10.0}


def test_results_without_measurements_teach_nothing(conf, db):  # noqa: F811
    cloud = _cloud()
    mgr, agents = make(conf, db, cloud)          # the plain fakes report no data_mib
    final = wait_final(mgr, mgr.migrate({}, 'vm1', dest='h2')['id'])
    assert final['status'] == 'completed'
    assert db.path_rates() == {}


def test_migrations_sharing_a_host_teach_nothing(conf, db):  # noqa: F811
    conf.set_override('max_concurrent_per_source', 4, group='conductor')
    cloud = fakes.FakeCloud({'h1': _host(link=10000, mem=65536), 'h2': _host(link=10000,
                                                                            mem=65536)})
    cloud.add_guest('a', 'h1', memory_mib=1024)
    cloud.add_guest('b', 'h1', memory_mib=1024)
    mgr, agents = _make(conf, db, cloud)
    agents.migrate_seconds = 0.5
    first = mgr.migrate({}, 'a', dest='h2')
    second = mgr.migrate({}, 'b', dest='h2')
    fa, fb = wait_final(mgr, first['id']), wait_final(mgr, second['id'])
    assert fa['status'] == fb['status'] == 'completed'
    assert db.overlapping_migrations(fa['id']) and db.overlapping_migrations(fb['id'])
    assert db.path_rates() == {}
    # Alone, the next one teaches.
    cloud.add_guest('c', 'h1', memory_mib=1024)
    mgr.report_state({}, agents.get_host_state({}, 'h1'))
    wait_final(mgr, mgr.migrate({}, 'c', dest='h2')['id'])
    assert ('h1', 'h2') in db.path_rates()


# --- age and forgetting -----------------------------------------------------------

def _age(db, source: str, dest: str, seconds: float) -> None:
    """Make a learned row ``seconds`` old (as if no migration had crossed
    the path since)."""
    import datetime as dt

    import sqlalchemy as sa

    from kvmplace.conductor.db import models
    t = models.PathThroughput
    with db.session() as s:
        s.execute(sa.update(t).where(t.source == source, t.dest == dest).values(
            updated_at=models.utcnow() - dt.timedelta(seconds=seconds)))


def test_learned_rates_expire(db):  # noqa: F811
    db.record_path_rate('a', 'b', 100.0, 0.5)
    db.record_path_rate('b', 'a', 40.0, 0.5)
    _age(db, 'a', 'b', 3600)
    assert db.path_rates(max_age_seconds=3599) == {('b', 'a'): 40.0}
    assert db.path_rates(max_age_seconds=3601) == {('a', 'b'): 100.0, ('b', 'a'): 40.0}
    assert db.path_rates(max_age_seconds=0) == {('a', 'b'): 100.0, ('b', 'a'): 40.0}


def test_a_stale_rate_is_not_blended_into_a_new_one(db):  # noqa: F811
    db.record_path_rate('a', 'b', 20.0, 0.5, 'old1')
    db.record_path_rate('a', 'b', 20.0, 0.5, 'old2')
    _age(db, 'a', 'b', 7200)
    # The link was upgraded meanwhile: the new figure stands alone...
    row = db.record_path_rate('a', 'b', 110.0, 0.5, 'new', max_age_seconds=3600)
    assert row['mibps'] == 110.0 and row['samples'] == 1
    # ...and is blended as usual from then on.
    row = db.record_path_rate('a', 'b', 90.0, 0.5, 'new2', max_age_seconds=3600)
    assert row['mibps'] == pytest.approx(100.0) and row['samples'] == 2


def test_the_estimate_stops_using_an_expired_rate(conf, db):  # noqa: F811
    conf.set_override('learned_max_age_seconds', 600, group='estimator')
    mgr, _ = _make(conf, db, _cloud())
    db.record_path_rate('h1', 'h2', 10.0, 0.5)
    assert mgr.estimate({}, 'vm1', 'h2')['learned'] is True
    _age(db, 'h1', 'h2', 601)
    est = mgr.estimate({}, 'vm1', 'h2')
    assert est['learned'] is False and est['bandwidth_mibps'] > 10.0
    listed = mgr.list_path_rates({})
    assert [(p['source'], p['dest'], p['in_use']) for p in listed] == [('h1', 'h2', False)]
    assert 600 < listed[0]['age_seconds'] < 700


def test_list_path_rates_says_what_predictions_use(conf, db):  # noqa: F811
    mgr, _ = _make(conf, db, _cloud())
    assert mgr.list_path_rates({}) == []
    db.record_path_rate('h1', 'h2', 80.0, 0.5, 'm1')
    db.record_path_rate('h1', 'h2', 60.0, 0.5, 'm2')
    [row] = mgr.list_path_rates({})
    assert row['mibps'] == 70.0 and row['last_mibps'] == 60.0 and row['samples'] == 2
    assert row['last_migration_id'] == 'm2' and row['in_use'] is True
    assert 0 <= row['age_seconds'] < 60
    conf.set_override('learn_path_throughput', False, group='estimator')
    assert mgr.list_path_rates({})[0]['in_use'] is False


def test_forget_path_rates_by_source_dest_or_all(conf, db):  # noqa: F811
    mgr, _ = _make(conf, db, _cloud())
    for src, dst in [('h1', 'h2'), ('h2', 'h1'), ('h1', 'h3'), ('h3', 'h2')]:
        db.record_path_rate(src, dst, 50.0, 0.5)
    gone = mgr.forget_path_rates({}, source='h1', dest='h2')['forgotten']
    assert gone == [{'source': 'h1', 'dest': 'h2', 'mibps': 50.0}]
    gone = mgr.forget_path_rates({}, dest='h2')['forgotten']
    assert [(g['source'], g['dest']) for g in gone] == [('h3', 'h2')]
    assert mgr.forget_path_rates({}, source='nope') == {'forgotten': []}
    assert set(db.path_rates()) == {('h2', 'h1'), ('h1', 'h3')}
    assert len(mgr.forget_path_rates({})['forgotten']) == 2
    assert db.path_rates() == {}
    # The next estimate is the nominal one again.
    assert mgr.estimate({}, 'vm1', 'h2')['learned'] is False


@pytest.mark.parametrize('kwargs, field', [({'source': ''}, 'source'),
                                           ({'dest': ['h1']}, 'dest'),
                                           ({'source': 'h1', 'dest': 'a' * 300}, 'dest')])
def test_forget_path_rates_refuses_bad_names(conf, db, kwargs, field):  # noqa: F811
    from kvmplace.exception import InvalidInput
    mgr, _ = _make(conf, db, _cloud())
    db.record_path_rate('h1', 'h2', 50.0, 0.5)
    with pytest.raises(InvalidInput) as err:
        mgr.forget_path_rates({}, **kwargs)
    assert err.value.field == field
    assert db.path_rates() == {('h1', 'h2'): 50.0}          # nothing lost


# --- how far one migration moves the prediction ----------------------------------

def test_trusted_mibps_weighs_the_evidence():
    from kvmplace.conductor import learning
    assert learning.trusted_mibps(50.0, 1, 110.0, 3) == pytest.approx(95.0)
    assert learning.trusted_mibps(50.0, 3, 110.0, 3) == pytest.approx(80.0)
    assert learning.trusted_mibps(50.0, 1000, 110.0, 3) == pytest.approx(50.18, abs=0.01)
    assert learning.trusted_mibps(50.0, 1, 110.0, 0) == 50.0        # trust at once
    assert learning.trusted_mibps(50.0, 0, 110.0, 3) == 110.0       # no evidence
    assert learning.trusted_mibps(50.0, 2, 0.0, 3) == 50.0          # nothing to weigh


def test_nominal_is_the_link_or_the_stream_cap():
    from kvmplace.conductor import learning
    params = estimator.ModelParams(link_efficiency=0.9, stream_cap_mibps=300.0)
    assert learning.nominal_mibps(1000, params) == pytest.approx(
        objects.mbps_to_mibps(1000) * 0.9)
    assert learning.nominal_mibps(10000, params) == 300.0


def test_one_migration_moves_the_prediction_only_part_of_the_way(conf, db):  # noqa: F811
    conf.set_override('learning_prior_migrations', 3, group='estimator')
    mgr, _ = _make(conf, db, _cloud())
    nominal = mgr.estimate({}, 'vm1', 'h2')['bandwidth_mibps']
    db.record_path_rate('h1', 'h2', nominal / 2, 1.0)
    one = mgr.estimate({}, 'vm1', 'h2')
    assert one['learned'] is True
    assert one['bandwidth_mibps'] == pytest.approx((nominal / 2 + 3 * nominal) / 4, rel=1e-3)
    for _ in range(5):
        db.record_path_rate('h1', 'h2', nominal / 2, 1.0)
    six = mgr.estimate({}, 'vm1', 'h2')['bandwidth_mibps']
    assert six == pytest.approx((6 * nominal / 2 + 3 * nominal) / 9, rel=1e-3)
    [row] = mgr.list_path_rates({})
    assert row['used_mibps'] == pytest.approx(six, rel=1e-3)
    assert row['mibps'] == pytest.approx(nominal / 2, rel=1e-3)
