"""The column planner gives exactly the exhaustive planner's plans.

schedule.Scheduler examines a move's candidates as columns when it has the
scheduler's estimates for them (drain does); reference.ExhaustiveScheduler
is the one-candidate-at-a-time loop it replaced. Same cluster, same plan,
byte for byte - including which of many equally fast hosts is taken (the
best ranked), waits for a faster busy link, re-plans with migrations
already running, policies where pre-copy time is not monotone in the rate
(post-copy), and a link reserve.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kvmplace import conf as kconf
from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.planner import drain, schedule
from kvmplace.scheduler import manager
from tests.unit.planner import reference, synth


@pytest.fixture(scope='module')
def sched():
    return manager.SchedulerManager(kconf.new_conf())


class Recording(schedule.Scheduler):
    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Recording.made.append(self)


def plans(monkeypatch, sched, inv, **kwargs) -> tuple[dict, dict]:
    """(column plan, exhaustive plan); fails if a column choice fell back."""
    Recording.made = []
    monkeypatch.setattr(schedule, 'Scheduler', Recording)
    fast = drain.plan(sched, inv, 'src', **kwargs)
    assert Recording.made and all(s.fallbacks == 0 for s in Recording.made)
    if fast['migrations']:
        assert any(c is not None for s in Recording.made for c in s._columns.values()), \
            'the column path was not taken'
    monkeypatch.setattr(schedule, 'Scheduler', reference.ExhaustiveScheduler)
    slow = drain.plan(sched, inv, 'src', **kwargs)
    return fast, slow


def same(a: dict, b: dict) -> None:
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture
def small_columns(monkeypatch):
    """Columns for every move, however few its candidates."""
    monkeypatch.setattr(schedule, 'COLUMN_MIN_CANDIDATES', 1)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10 ** 6), hosts=st.integers(2, 70), guests=st.integers(1, 14),
       rack=st.sampled_from([4, 8, 40]), twins=st.sampled_from([0.0, 0.5, 0.9]),
       reserve=st.sampled_from([0.0, 0.2]),
       policy=st.sampled_from([None, objects.Policy(allow_post_copy=True),
                               objects.Policy(allow_auto_converge=True),
                               objects.Policy(max_downtime_ms=100, bandwidth_cap_mibps=400)]))
def test_same_plans_as_examining_every_candidate(monkeypatch, small_columns, sched, seed, hosts,
                                                guests, rack, twins, reserve, policy):
    inv = synth.rack_cluster(seed, hosts, guests, rack, twins)
    fast, slow = plans(monkeypatch, sched, inv, policy=policy, reserve_fraction=reserve)
    same(fast, slow)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10 ** 6), running=st.integers(1, 4), left=st.floats(0.5, 60))
def test_same_re_plans_with_migrations_running(monkeypatch, small_columns, sched, seed,
                                               running, left):
    """A re-plan mid-drain: the first guests run (holding their links),
    the rest is planned around them."""
    inv = synth.rack_cluster(seed, 40, 10)
    topology = topo.Topology.from_inventory(inv)
    first = drain.plan(sched, inv, 'src', topology)
    going = first['migrations'][:running]
    busy = tuple((m['instance'], [tuple(link) for link in m['links']], m['bandwidth_mibps'],
                  left) for m in going)
    exclude = tuple(m['instance'] for m in going)
    fast, slow = plans(monkeypatch, sched, inv, topology=topology, exclude=exclude, busy=busy)
    same(fast, slow)


def test_default_threshold_on_a_big_cluster(monkeypatch, sched):
    """Without lowering the threshold: 150 destinations, many exact ties."""
    inv = synth.rack_cluster(7, 150, 12, rack=20, twins=0.6)
    fast, slow = plans(monkeypatch, sched, inv)
    same(fast, slow)
    assert len(fast['migrations']) >= 10


def test_a_bound_that_does_not_bind_changes_nothing(sched):
    inv = synth.rack_cluster(11, 60, 10, twins=0.5)
    same(drain.plan(sched, inv, 'src', max_candidates=61),
         drain.plan(sched, inv, 'src', max_candidates=None))


def test_a_binding_bound_offers_the_fastest_hosts_and_places_every_guest(sched):
    inv = synth.rack_cluster(5, 120, 12, twins=0.3)
    topology = topo.Topology.from_inventory(inv)
    exact = drain.plan(sched, inv, 'src', topology, max_candidates=None)
    bounded = drain.plan(sched, inv, 'src', topology, max_candidates=20)
    params = sched.params
    capacity = drain.cap.Capacity(sched.conf, drain.working_copy(inv))
    offered = drain.candidate_hosts(inv, topology, 'src', list(inv.instances.values()), params,
                                    capacity, 20)
    assert offered is not None and len(offered) == 20
    names = {h.name for h in offered}
    assert {m['dest'] for m in bounded['migrations']} <= names
    assert ({m['instance'] for m in bounded['migrations']}
            == {m['instance'] for m in exact['migrations']})
    assert bounded['predicted_makespan_seconds'] <= 1.05 * exact['predicted_makespan_seconds']


def test_a_guest_only_a_left_out_host_can_take_is_still_placed(sched):
    """The one host with room for a 600 GiB guest is on a 1 Gbit/s link, so
    the bound leaves it out; the guest is ranked on every host instead."""
    inv = synth.rack_cluster(3, 30, 4, twins=1.0)
    inv.hosts['h007'].link_mbps = 1000
    inv.hosts['h007'].memory_mib = 2048 * 1024
    for link in inv.links:
        if link.a == 'h007':
            link.mbps = 1000
    inv.instances['g00'].memory_mib = 600 * 1024
    inv.hosts['src'].memory_used_mib += 600 * 1024
    plan = drain.plan(sched, inv, 'src', max_candidates=5)
    by = {m['instance']: m['dest'] for m in plan['migrations']}
    assert by.get('g00') == 'h007', plan['unplaced']
    assert plan['unplaced'] == []
