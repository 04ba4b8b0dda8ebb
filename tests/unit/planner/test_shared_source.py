"""The shared-source pool model (kvmplace.planner.concurrency, issue 17):
migrations out of one source end together, what a plan makes of it, and
what fit() learns of it from records the model itself generated."""
from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from kvmplace import conf as kconf
from kvmplace import estimator
from kvmplace import objects
from kvmplace.planner import concurrency as conc
from kvmplace.planner import drain
from kvmplace.scheduler import manager
from tests.unit.planner import synth

PARAMS = estimator.ModelParams(link_efficiency=0.9, stream_cap_mibps=300.0,
                               setup_seconds=1.0, switchover_overhead_ms=200)
T0 = dt.datetime(2026, 12, 1, 3, 0, 0)
EPS = 1e-6

members = st.lists(st.tuples(st.floats(0.0, 20.0), st.floats(0.1, 30.0)), min_size=1,
                   max_size=6)
contentions = st.floats(0.0, conc.MAX_CONTENTION)


@pytest.fixture(scope='module')
def sched():
    return manager.SchedulerManager(kconf.new_conf())


def _ends(pool, c: float, outside: int = 0) -> list[float]:
    joins, works = [j for j, _ in pool], [w for _, w in pool]
    model = conc.Concurrency(contention=c)
    ends, left = conc.pool_ends(joins, works, 0.0, math.inf,
                                lambda total, longest: model.pool_speed(total, longest, outside))
    assert left == [0.0] * len(pool)
    return ends


@settings(max_examples=200, deadline=None)
@given(pool=members, c=contentions)
def test_members_that_overlap_end_together_and_never_before_alone(pool, c):
    ends = _ends(pool, c)
    for (join, work), end in zip(pool, ends):
        assert end >= join + work - EPS            # never faster than alone
    for (join_a, _), end_a in zip(pool, ends):
        for (join_b, _), end_b in zip(pool, ends):
            if join_a <= join_b < end_a - EPS:      # b joined a's pool
                assert end_b == pytest.approx(end_a, abs=1e-6)


@given(join=st.floats(0.0, 10.0), work=st.floats(0.01, 50.0), c=contentions)
def test_a_pool_of_one_takes_its_solo_time(join, work, c):
    assert _ends([(join, work)], c) == [pytest.approx(join + work)]


@settings(max_examples=200, deadline=None)
@given(pool=members, extra=st.tuples(st.floats(0.0, 20.0), st.floats(0.1, 30.0)),
       c=contentions, outside=st.integers(0, 3))
def test_a_member_more_never_ends_anyone_earlier(pool, extra, c, outside):
    before = _ends(pool, c, outside)
    after = _ends(pool + [extra], c, outside)
    for b, a in zip(before, after):
        assert a >= b - 1e-6


@given(works=st.lists(st.floats(0.1, 30.0), min_size=1, max_size=6), c=contentions)
def test_members_started_together_end_after_longest_plus_contention_x_the_rest(works, c):
    """The closed form the docs state."""
    ends = _ends([(0.0, w) for w in works], c)
    expected = max(works) + c * (sum(works) - max(works))
    assert ends == [pytest.approx(expected, rel=1e-9)] * len(works)


def test_advancing_part_way_leaves_work_in_proportion():
    model = conc.Concurrency(contention=0.5)
    ends, left = conc.pool_ends([0.0, 0.0], [4.0, 2.0], 0.0, 2.5, model.pool_speed)
    assert ends == [math.inf, math.inf]
    # 4 + 0.5 x 2 = 5 s in all: half way, half of each member's work left.
    assert left == [pytest.approx(2.0), pytest.approx(1.0)]


# --- the plan ------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 1.0))
def test_a_plans_overlapping_moves_out_of_the_source_end_together(sched, seed, c):
    inv = synth.drain_cluster(seed, guests=6)
    plan = drain.plan(sched, inv, 'src', concurrency=conc.Concurrency(contention=c,
                                                                      shared_source=True))
    moves = plan['migrations']
    assert len(moves) + len(plan['unplaced']) == 6
    for a in moves:
        end_a = a['start_seconds'] + a['predicted_seconds']
        for b in moves:
            if a['start_seconds'] <= b['start_seconds'] < end_a - 1e-3:
                assert b['start_seconds'] + b['predicted_seconds'] == pytest.approx(
                    end_a, abs=2e-3)


def test_one_move_plans_as_its_solo_estimate_plus_the_fixed_costs(sched):
    inv = synth.drain_cluster(3, guests=1, dirty_max=0)
    plain = drain.plan(sched, inv, 'src')
    pooled = conc.Concurrency(record_overhead_seconds=1.5, start_lag_seconds=0.5,
                              contention=0.7, shared_source=True)
    (p,), (c,) = plain['migrations'], drain.plan(sched, inv, 'src',
                                                  concurrency=pooled)['migrations']
    assert c['predicted_seconds'] == pytest.approx(p['predicted_seconds'] + 1.5, abs=1e-3)
    # At a drain's pace, as the per-stream model has it alone.
    paced = dataclasses.replace(pooled, pace=0.6)
    per_stream = dataclasses.replace(paced, shared_source=False)
    assert (drain.plan(sched, inv, 'src', concurrency=paced)['migrations']
            == drain.plan(sched, inv, 'src', concurrency=per_stream)['migrations'])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 2.0))
def test_no_pooled_member_ends_before_it_would_alone(sched, seed, c):
    """No member ends before it would alone on an empty cluster. (A plan
    with pools may end sooner than one without concurrency costs: since
    pool members hold their link at the pool's pace, a guest that the
    per-stream plan keeps waiting for link room can join the pool; at
    c = 0 the others cost nothing.)"""
    inv = synth.drain_cluster(seed, guests=5)
    model = conc.Concurrency(contention=c, shared_source=True)
    pooled = drain.plan(sched, inv, 'src', concurrency=model)
    for move in pooled['migrations']:
        name = move['instance']
        alone = objects.Inventory(
            {h: dataclasses.replace(inv.hosts[h]) for h in ('src', move['dest'])},
            {name: inv.instances[name]}, [])
        alone.hosts['src'].memory_used_mib = inv.instances[name].memory_mib
        alone.hosts['src'].vcpus_used = inv.instances[name].vcpus
        (solo,) = drain.plan(sched, alone, 'src', concurrency=model)['migrations']
        assert solo['dest'] == move['dest']
        assert move['predicted_seconds'] >= solo['predicted_seconds'] - 1e-3


def test_the_model_is_off_by_default_and_on_in_the_lab():
    from kvmplace.lab import services
    assert not conc.Concurrency.from_conf(kconf.new_conf()).shared_source
    lab = [line.strip() for line in services.config_lines({'hosts': []})]
    assert 'drain_shared_source = true' in lab


# --- learning --------------------------------------------------------------------

def _iso(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def pool_drain(truth: conc.Concurrency, memories: list[float], offsets: list[float],
               at: float, solo_mibps: float = 100.0, pre_seconds: float = 0.2
               ) -> tuple[dict, list[dict]]:
    """The records of a drain whose guests leave one source ``offsets``
    apart, their jobs timed by the pool model with ``truth``."""
    works = [estimator.precopy(m, 0.0, solo_mibps * truth.pace, PARAMS).total_seconds
             for m in memories]
    created = [at + truth.start_lag_seconds + o for o in offsets]
    joins = [c + pre_seconds for c in created]
    ends, _ = conc.pool_ends(joins, works, min(joins), math.inf, truth.pool_speed)
    post = truth.record_overhead_seconds - pre_seconds
    records = []
    for i, (memory, c, join, end) in enumerate(zip(memories, created, joins, ends)):
        records.append({
            'id': f'm{i}', 'status': 'completed', 'source': 'src', 'dest': f'd{i}',
            'created_at': _iso(c), 'started_at': _iso(join), 'finished_at': _iso(end + post),
            'policy': {},
            'estimate': {'bandwidth_mibps': solo_mibps,
                         'inputs': {'memory_mib': memory, 'dirty_rate_mibps': 0.0}},
            'result': {'status': 'completed', 'elapsed_seconds': end - join}})
    last = max(end for end in ends) + post + truth.start_lag_seconds
    return {'id': f'd{at}', 'created_at': _iso(at), 'finished_at': _iso(last)}, records


@settings(max_examples=60, deadline=None)
@given(c=st.floats(0.0, 2.0), pace=st.floats(0.3, 1.5), overhead=st.floats(0.3, 4.0),
       lag=st.floats(0.0, 2.0),
       memories=st.lists(st.sampled_from([256.0, 384.0, 512.0, 1024.0, 2048.0]),
                         min_size=2, max_size=5),
       spread=st.floats(0.0, 0.5))
def test_fit_recovers_the_pool_it_was_timed_by(c, pace, overhead, lag, memories, spread):
    truth = conc.Concurrency(record_overhead_seconds=overhead, contention=c,
                             start_lag_seconds=lag, pace=pace, shared_source=True)
    offsets = [i * spread for i in range(len(memories))]
    drains = [pool_drain(truth, [512.0], [0.0], at=0.0),
              pool_drain(truth, memories, offsets, at=1000.0)]
    prior = conc.Concurrency(shared_source=True)
    learned = conc.fit(drains, PARAMS, prior, prior_samples=0)
    assert learned.shared_source
    assert learned.pace == pytest.approx(pace, rel=1e-3)
    assert learned.contention == pytest.approx(c, rel=1e-3, abs=1e-3)
    assert learned.record_overhead_seconds == pytest.approx(overhead, abs=1e-3)
    assert learned.start_lag_seconds == pytest.approx(lag, abs=1e-3)


def test_few_pools_are_shrunk_towards_the_prior():
    truth = conc.Concurrency(record_overhead_seconds=1.0, contention=0.6, pace=1.0,
                             shared_source=True)
    prior = conc.Concurrency(contention=0.0, shared_source=True)
    drains = [pool_drain(truth, [512.0], [0.0], at=0.0),
              pool_drain(truth, [512.0, 256.0, 1024.0], [0.0, 0.0, 0.0], at=1000.0)]
    learned = conc.fit(drains, PARAMS, prior, prior_samples=3)
    # One pool (of three members) against three of prior: a quarter way.
    assert learned.contention == pytest.approx(0.15, abs=1e-3)


@settings(max_examples=30, deadline=None)
@given(c=st.floats(0.05, 2.0), members=st.integers(2, 6), prior_c=st.floats(0.0, 1.0))
def test_a_pool_is_one_witness_of_contention_whatever_its_size(c, members, prior_c):
    """A pool's members end together: its one end is what it measured, so
    a pool of six weighs against the prior as a pool of two does."""
    truth = conc.Concurrency(record_overhead_seconds=1.0, contention=c, pace=1.0,
                             shared_source=True)
    prior = conc.Concurrency(contention=prior_c, pace=1.0, shared_source=True)

    def learned(count: int) -> float:
        drains = [pool_drain(truth, [512.0], [0.0], at=0.0),
                  pool_drain(truth, [512.0] * count, [0.0] * count, at=1000.0)]
        return conc.fit(drains, PARAMS, prior, prior_samples=3).contention
    assert learned(members) == pytest.approx(learned(2), abs=1e-6)
    assert learned(members) == pytest.approx((c + 3 * prior_c) / 4, rel=1e-3, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(jobs=st.lists(st.tuples(st.floats(0.0, 30.0), st.floats(0.01, 60.0),
                               st.floats(0.0, 5.0), st.sampled_from([128.0, 512.0, 4096.0])),
                     min_size=1, max_size=6),
       prior_c=contentions, prior_samples=st.floats(0.0, 5.0))
def test_whatever_the_records_say_the_learned_figures_stay_in_bounds(jobs, prior_c,
                                                                     prior_samples):
    records = []
    for i, (start, job, tail, memory) in enumerate(jobs):
        records.append({
            'id': f'm{i}', 'status': 'completed', 'source': 'src', 'dest': f'd{i}',
            'created_at': _iso(start), 'started_at': _iso(start + 0.1),
            'finished_at': _iso(start + 0.1 + job + tail), 'policy': {},
            'estimate': {'bandwidth_mibps': 100.0,
                         'inputs': {'memory_mib': memory, 'dirty_rate_mibps': 1.0}},
            'result': {'status': 'completed', 'elapsed_seconds': job}})
    end = max(start + 0.1 + job + tail for start, job, tail, _ in jobs)
    assume(end < 1e5)
    drains = [({'id': 'd', 'created_at': _iso(0.0), 'finished_at': _iso(end + 0.3)}, records)]
    prior = conc.Concurrency(contention=prior_c, shared_source=True, pace=1.0)
    learned = conc.fit(drains, PARAMS, prior, prior_samples)
    assert 0.0 <= learned.contention <= conc.MAX_CONTENTION
    assert conc.MIN_PACE <= learned.pace <= 1.0 / conc.MIN_PACE
    for value in (learned.record_overhead_seconds, learned.start_lag_seconds,
                  learned.verify_seconds):
        assert 0.0 <= value <= conc.MAX_FIXED_SECONDS


# --- links held by a pool's members ---------------------------------------------

def _lab_drain() -> objects.Inventory:
    """The drain benchmark's shape (doc/source/benchmarks/drain.rst): five
    small guests on a 10 Gbit/s host, four empty 1 Gbit/s destinations."""
    from kvmplace import objects
    hosts = {'src': synth.host('src', 10000)}
    for i in range(4):
        hosts[f'd{i}'] = synth.host(f'd{i}', 1000)
    insts = {f'g{i}': objects.Instance(f'g{i}', 'src', mem, 1, rate, 0)
             for i, (mem, rate) in enumerate([(384, 5), (256, 10), (256, 0), (256, 8),
                                              (256, 2)])}
    hosts['src'].memory_used_mib = sum(i.memory_mib for i in insts.values())
    return objects.Inventory(hosts, insts, [])


def test_a_pool_shares_a_link_the_per_stream_model_keeps_for_one(sched):
    """Four destinations, five guests: the per-stream model holds each
    1 Gbit/s link at a stream's full rate, so the fifth guest waits for a
    link; a pool paced by its source's CPUs holds less, and all five start
    at once (what the lab showed to end soonest: 12 s against 15 s)."""
    inv = _lab_drain()
    paced = conc.Concurrency(contention=0.15, pace=0.6, record_overhead_seconds=1.7,
                             start_lag_seconds=0.2)
    per_stream = drain.plan(sched, inv, 'src', concurrency=paced)
    starts = sorted(m['start_seconds'] for m in per_stream['migrations'])
    assert starts[:4] == [0.2] * 4 and starts[4] > 1.0
    pooled = drain.plan(sched, inv, 'src',
                        concurrency=dataclasses.replace(paced, shared_source=True))
    assert [m['start_seconds'] for m in pooled['migrations']] == [0.2] * 5
    assert pooled['predicted_makespan_seconds'] < per_stream['predicted_makespan_seconds']
    by_dest: dict = {}
    for m in pooled['migrations']:
        assert 0 < m['reserve_mibps'] <= m['bandwidth_mibps'] + 1e-6
        by_dest.setdefault(m['dest'], []).append(m['reserve_mibps'])
    assert max(len(v) for v in by_dest.values()) == 2
    link = 1000 / 8 * 10 ** 6 / 2 ** 20 * PARAMS_LINK_EFFICIENCY
    assert all(sum(v) <= link + 1e-3 for v in by_dest.values())


PARAMS_LINK_EFFICIENCY = kconf.new_conf().estimator.link_efficiency


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 1.5), pace=st.floats(0.3, 1.0))
def test_what_a_pool_holds_at_its_start_never_oversubscribes_a_link(sched, seed, c, pace):
    inv = synth.drain_cluster(seed, guests=8, dests=3)
    plan = drain.plan(sched, inv, 'src', concurrency=conc.Concurrency(
        contention=c, pace=pace, shared_source=True))
    from kvmplace import resources, topology as topo
    topology = topo.Topology.from_inventory(inv)
    for m in plan['migrations']:
        assert 0 < m['reserve_mibps'] <= m['bandwidth_mibps'] + 1e-6
        t = m['start_seconds']
        for link in m['links']:
            held = sum(o['reserve_mibps'] for o in plan['migrations']
                       if o['start_seconds'] <= t < o['start_seconds'] + o['predicted_seconds']
                       and link in o['links'])
            cap = resources.link_mibps(topology.capacity_mbps(tuple(link)),
                                       kconf.new_conf().estimator.link_efficiency)
            assert held <= cap + 1e-3
