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
