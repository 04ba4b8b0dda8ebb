"""The concurrency model: what a migration costs among others, learned
from finished drains, and the drain plan's use of it."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from kvmplace import conf as kconf
from kvmplace import estimator
from kvmplace.planner import concurrency as conc
from kvmplace.planner import drain
from kvmplace.scheduler import manager
from tests.unit.planner import synth

PARAMS = estimator.ModelParams(link_efficiency=0.9, stream_cap_mibps=300.0,
                               setup_seconds=1.0, switchover_overhead_ms=200)
T0 = dt.datetime(2026, 12, 1, 3, 0, 0)


@pytest.fixture(scope='module')
def sched():
    return manager.SchedulerManager(kconf.new_conf())


def _iso(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def synthetic_drain(truth: conc.Concurrency, guests: int, memory_mib: float = 512.0,
                    solo_mibps: float = 100.0, pre_seconds: float = 0.2,
                    at: float = 0.0) -> tuple[dict, list[dict]]:
    """The records of a drain whose guests (all alike) run side by side out
    of one source, timed exactly as ``truth`` says."""
    slowed = solo_mibps * truth.slowdown(guests)
    job = estimator.precopy(memory_mib, 0.0, slowed, PARAMS).total_seconds
    post = truth.record_overhead_seconds - pre_seconds
    records = []
    for i in range(guests):
        created = at + truth.start_lag_seconds
        started = created + pre_seconds
        finished = started + job + post
        records.append({
            'id': f'm{i}', 'status': 'completed', 'source': 'src', 'dest': f'd{i}',
            'created_at': _iso(created), 'started_at': _iso(started),
            'finished_at': _iso(finished), 'policy': {},
            'estimate': {'bandwidth_mibps': solo_mibps,
                         'inputs': {'memory_mib': memory_mib, 'dirty_rate_mibps': 0.0}},
            'result': {'status': 'completed', 'elapsed_seconds': job}})
    end = max(r['finished_at'] for r in records)
    ended = (dt.datetime.fromisoformat(end) - T0).total_seconds() + truth.start_lag_seconds
    return {'id': 'd', 'created_at': _iso(at), 'finished_at': _iso(ended)}, records


@settings(max_examples=60, deadline=None)
@given(contention=st.floats(0.0, 2.0), overhead=st.floats(0.3, 5.0),
       lag=st.floats(0.0, 3.0), guests=st.integers(2, 5))
def test_fit_recovers_what_made_the_records(contention, overhead, lag, guests):
    truth = conc.Concurrency(record_overhead_seconds=overhead, contention=contention,
                             start_lag_seconds=lag)
    drains = [synthetic_drain(truth, 1, at=0.0), synthetic_drain(truth, guests, at=100.0)]
    learned = conc.fit(drains, PARAMS, prior_samples=0)
    assert learned.record_overhead_seconds == pytest.approx(overhead, abs=1e-3)
    assert learned.start_lag_seconds == pytest.approx(lag, abs=1e-3)
    assert learned.contention == pytest.approx(contention, rel=1e-3, abs=1e-3)
    assert learned.verify_seconds == pytest.approx(overhead - 0.2, abs=1e-3)


def test_few_samples_are_shrunk_towards_the_prior():
    truth = conc.Concurrency(record_overhead_seconds=2.0, contention=0.5, start_lag_seconds=1.0)
    prior = conc.Concurrency(record_overhead_seconds=0.0, contention=0.0, start_lag_seconds=0.0)
    drains = [synthetic_drain(truth, 3)]
    learned = conc.fit(drains, PARAMS, prior, prior_samples=3)
    # Three migrations against three of prior: half way.
    assert learned.record_overhead_seconds == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < learned.contention < 0.5
    assert conc.fit([], PARAMS, prior, 3) == conc.Concurrency(samples=0)


def test_a_drain_with_a_failed_move_teaches_nothing():
    truth = conc.Concurrency(record_overhead_seconds=2.0, contention=0.5, start_lag_seconds=1.0)
    record, migrations = synthetic_drain(truth, 3)
    migrations[1]['status'] = 'failed'
    assert conc.fit([(record, migrations)], PARAMS, prior_samples=0).samples == 0


@given(c=st.floats(0.0, 3.0), n=st.integers(0, 50))
def test_slowdown_is_a_factor_that_falls_with_company(c, n):
    model = conc.Concurrency(contention=c)
    assert 0.0 < model.slowdown(n + 1) <= model.slowdown(n) <= 1.0
    assert model.slowdown(1) == 1.0


def test_no_concurrency_plans_as_before(sched):
    inv = synth.drain_cluster(7, guests=6)
    plain = drain.plan(sched, inv, 'src')
    explicit = drain.plan(sched, inv, 'src', concurrency=conc.NONE)
    assert plain['migrations'] == explicit['migrations']
    assert plain['predicted_makespan_seconds'] == explicit['predicted_makespan_seconds']


def test_fixed_costs_lengthen_each_migration_and_the_drain(sched):
    inv = synth.drain_cluster(3, guests=1, dirty_max=0)
    plain = drain.plan(sched, inv, 'src')
    model = conc.Concurrency(record_overhead_seconds=1.5, start_lag_seconds=0.5)
    costly = drain.plan(sched, inv, 'src', concurrency=model)
    (p,), (c,) = plain['migrations'], costly['migrations']
    assert c['start_seconds'] == pytest.approx(p['start_seconds'] + 0.5, abs=1e-3)
    assert c['predicted_seconds'] == pytest.approx(p['predicted_seconds'] + 1.5, abs=1e-3)
    # Lag before the record, overhead in it, one more look to notice the end.
    assert costly['predicted_makespan_seconds'] == pytest.approx(
        plain['predicted_makespan_seconds'] + 2.5, abs=1e-3)


def test_contention_slows_parallel_migrations_only(sched):
    inv = synth.drain_cluster(5, guests=6, dirty_max=0)
    plain = drain.plan(sched, inv, 'src')
    assert max(sum(1 for o in plain['migrations'] if o['start_seconds'] <= m['start_seconds']
                   < o['start_seconds'] + o['predicted_seconds'])
               for m in plain['migrations']) > 1, 'the scenario must run moves in parallel'
    slowed = drain.plan(sched, inv, 'src', concurrency=conc.Concurrency(contention=0.5))
    assert slowed['predicted_makespan_seconds'] > plain['predicted_makespan_seconds']
    one = synth.drain_cluster(5, guests=1, dirty_max=0)
    assert (drain.plan(sched, one, 'src', concurrency=conc.Concurrency(contention=0.5))
            ['migrations'] == drain.plan(sched, one, 'src')['migrations'])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 2.0), overhead=st.floats(0.0, 3.0))
def test_costs_never_shorten_a_plan(sched, seed, c, overhead):
    inv = synth.drain_cluster(seed, guests=5)
    plain = drain.plan(sched, inv, 'src')
    model = conc.Concurrency(record_overhead_seconds=overhead, contention=c)
    costly = drain.plan(sched, inv, 'src', concurrency=model)
    assert costly['predicted_makespan_seconds'] >= plain['predicted_makespan_seconds'] - 1e-6
    assert {m['instance'] for m in costly['migrations']} == \
        {m['instance'] for m in plain['migrations']}


# --- from the conductor's database, and back to the operator ---------------------

def _store(db, truth: conc.Concurrency, guests: int, at: float) -> str:
    """Write a completed drain as the conductor would have recorded it,
    with the timestamps of synthetic_drain (a real SQLite database)."""
    import sqlalchemy as sa

    from kvmplace.conductor.db import models
    record, migrations = synthetic_drain(truth, guests, at=at)
    drain = db.create_drain('drain', f'src-{at:.0f}', {'initial': {}})
    with db.session() as s:
        s.execute(sa.update(models.DrainRecord).where(models.DrainRecord.id == drain['id'])
                  .values(status='completed',
                          created_at=dt.datetime.fromisoformat(record['created_at']),
                          finished_at=dt.datetime.fromisoformat(record['finished_at'])))
    for m in migrations:
        rec = db.create_migration(f"{m['id']}-{at:.0f}", 'src', m['dest'], {},
                                  drain_id=drain['id'])
        with db.session() as s:
            s.execute(sa.update(models.MigrationRecord)
                      .where(models.MigrationRecord.id == rec['id'])
                      .values(status='completed', dest=m['dest'], estimate=m['estimate'],
                              result=m['result'],
                              **{k: dt.datetime.fromisoformat(m[k])
                                 for k in ('created_at', 'started_at', 'finished_at')}))
    return drain['id']


def test_the_conductor_learns_from_its_finished_drains(tmp_path):
    from kvmplace.conductor import learning
    from kvmplace.conductor.db import api as db_api
    db = db_api.Database(f'sqlite:///{tmp_path}/k.sqlite')
    db.upgrade()
    conf = kconf.new_conf()
    conf.set_override('learning_prior_migrations', 0.0, group='estimator')
    learner = learning.ConcurrencyLearner(conf, db, lambda: PARAMS)
    assert learner.current() == conc.Concurrency.from_conf(conf)     # nothing yet
    truth = conc.Concurrency(record_overhead_seconds=1.5, contention=0.4,
                             start_lag_seconds=0.6)
    _store(db, truth, 1, at=0.0)
    _store(db, truth, 3, at=100.0)
    learned = learner.current()
    assert learned.samples == 4
    assert learned.record_overhead_seconds == pytest.approx(1.5, abs=0.01)
    assert learned.start_lag_seconds == pytest.approx(0.6, abs=0.01)
    assert learned.contention == pytest.approx(0.4, abs=0.01)
    conf.set_override('learn_concurrency', False, group='estimator')
    assert learner.current() == conc.Concurrency.from_conf(conf)


def _drain_record(predicted: list[float], measured: list[float], learned: int) -> dict:
    migrations, plan = [], []
    for i, (p, m) in enumerate(zip(predicted, measured)):
        plan.append({'instance': f'vm{i}', 'dest': 'd', 'start_seconds': 0.0,
                     'predicted_seconds': p})
        migrations.append({'id': f'm{i}', 'instance': f'vm{i}', 'status': 'completed',
                           'created_at': _iso(0.0), 'finished_at': _iso(m),
                           'estimate': {'total_seconds': p / 2},
                           'result': {'elapsed_seconds': m - 1.0}})
    return {'kind': 'drain', 'status': 'completed', 'id': 'x', 'created_at': _iso(0.0),
            'finished_at': _iso(max(measured) + 0.5), 'migrations': migrations,
            'plan': {'initial': {'migrations': plan,
                                 'predicted_makespan_seconds': max(predicted) + 0.5,
                                 'concurrency': {'samples': learned}}}}


def test_a_finished_drain_says_whether_its_plan_held():
    from kvmplace.cli import plan as cli_plan
    good = cli_plan.prediction_check(_drain_record([10.0, 8.0], [10.5, 7.6], 5))
    assert good['agree'] and 'why' not in good
    assert good['makespan_error'] == pytest.approx((10.5 - 11.0) / 11.0, abs=1e-3)
    assert any('agree within 15%' in line
               for line in cli_plan.record_notes(_drain_record([10.0], [10.5], 5)))
    first = cli_plan.prediction_check(_drain_record([5.0, 5.0], [10.0, 9.0], 0))
    assert not first['agree'] and 'no finished drain' in first['why']
    later = cli_plan.prediction_check(_drain_record([5.0, 5.0], [10.0, 9.0], 4))
    assert not later['agree'] and 'solo pace' in later['why']
    running = dict(_drain_record([5.0], [5.0], 1), status='running')
    assert cli_plan.prediction_check(running) is None


def test_the_drain_table_shows_the_figures_the_check_compares():
    """The demo's table once showed each record's solo estimate (2.3 s)
    beside libvirt's job time, while the note under it compared the drain
    plan's 4.9 s with the record's 5.7 s (issue 17): one table, one
    meaning - the plan's prediction and the record's measured time."""
    from kvmplace.cli import plan as cli_plan
    record = _drain_record([10.0, 8.0], [10.5, 7.6], 5)
    columns, rows = cli_plan.record_rows(record)
    check = cli_plan.prediction_check(record)
    for row, move in zip(rows, check['migrations']):
        cells = {k: getattr(v, 'machine_readable', lambda v=v: v)() for k, v in zip(columns, row)}
        assert cells['predicted_seconds'] == move['predicted_seconds']
        assert cells['measured_seconds'] == pytest.approx(move['measured_seconds'])
        assert cells['copy_seconds'] == move['job_seconds']
    # A migration the plan did not list (a retry, a rebalance) shows its
    # own estimate.
    del record['plan']
    _, rows = cli_plan.record_rows(record)
    assert dict(zip(columns, rows[0]))['predicted_seconds'].machine_readable() == 5.0


def test_the_drains_pace_is_learned_from_lone_migrations_and_slows_the_plan(sched):
    truth = conc.Concurrency(record_overhead_seconds=1.0, contention=0.0)
    record, migrations = synthetic_drain(truth, 1)
    migrations[0]['estimate']['bandwidth_mibps'] = 200.0   # it ran at half its estimate
    learned = conc.fit([(record, migrations)], PARAMS, prior_samples=0)
    assert learned.pace == pytest.approx(0.5, rel=1e-3)
    inv = synth.drain_cluster(3, guests=1, dirty_max=0)
    plain = drain.plan(sched, inv, 'src')
    slow = drain.plan(sched, inv, 'src', concurrency=conc.Concurrency(pace=0.5))
    assert slow['predicted_makespan_seconds'] > 1.5 * plain['predicted_makespan_seconds']
