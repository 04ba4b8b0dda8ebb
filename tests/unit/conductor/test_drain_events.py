"""The drain executor re-plans on events, not on every look.

A re-plan is a whole drain plan; made every poll (one second) it cost a
plan per second per drain. Now the executor looks every poll but plans
only when a migration of the drain starts, ends or fails, the guests on
the host change, a host's report changes, a start failed - or when the
last plan is older than REPLAN_MAX_SECONDS.
"""
from __future__ import annotations

import pytest

from kvmplace import conf as kconf
from kvmplace import topology as topo
from kvmplace.conductor import drain as drain_exec
from kvmplace.conductor import learning
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import KvmplaceError
from kvmplace.planner import drain as drain_plan
from kvmplace.scheduler import manager
from tests.unit.planner import synth


class Ctx:
    """What the executor uses of the conductor: a database, a snapshot of
    the cluster, the scheduler and a way to start migrations."""

    def __init__(self, db, inventory):
        self.db = db
        self.conf = kconf.new_conf()
        self.scheduler = manager.SchedulerManager(self.conf)
        self.inventory = inventory
        self.refuse = False
        self.concurrency = learning.ConcurrencyLearner(self.conf, db,
                                                       lambda: self.scheduler.params)

    def snapshot(self):
        return self.inventory, topo.Topology.from_inventory(self.inventory)

    def start_migration(self, instance, dest, policy, drain_id=None, planned=None):
        if self.refuse:
            raise KvmplaceError('agent away')
        source = self.inventory.instances[instance].host
        return self.db.create_migration(instance, source, dest, policy, drain_id=drain_id,
                                        planned=planned)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    db = db_api.Database(f'sqlite:///{tmp_path / "k.sqlite"}')
    db.upgrade()
    ctx = Ctx(db, synth.drain_cluster(4, guests=6, src_link=1000))
    record = db.create_drain('drain', 'src', {'initial': {}})
    calls = []
    real = drain_plan.plan

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(drain_plan, 'plan', counting)
    executor = drain_exec.DrainExecutor(ctx, record['id'])
    return ctx, db, record, executor, calls


def tick(db, record, executor):
    return executor._tick(db.get_drain(record['id']))


def test_re_plans_only_when_something_happened(setup, monkeypatch):
    ctx, db, record, executor, calls = setup
    tick(db, record, executor)                      # plans, starts the first guest(s)
    assert len(calls) == 1
    started = db.list_migrations(drain_id=record['id'])
    assert started
    for _ in range(10):                             # each start is an event
        before = len(db.list_migrations(drain_id=record['id']))
        tick(db, record, executor)
        if len(db.list_migrations(drain_id=record['id'])) == before:
            break
    n = len(calls)
    for _ in range(5):                              # nothing happens: no plan
        tick(db, record, executor)
    assert len(calls) == n
    db.update_migration(started[0]['id'], status='failed', error='boom')   # an event
    tick(db, record, executor)
    assert len(calls) == n + 1
    tick(db, record, executor)
    n = len(calls)
    ctx.inventory.hosts['d0'].memory_used_mib += 1024   # a host's report changed
    tick(db, record, executor)
    assert len(calls) == n + 1
    tick(db, record, executor)
    assert len(calls) == n + 1
    monkeypatch.setattr(drain_exec, 'REPLAN_MAX_SECONDS', 0.0)   # and now and then
    tick(db, record, executor)
    assert len(calls) == n + 2


def test_a_failed_start_is_retried_at_the_next_look(setup):
    ctx, db, record, executor, calls = setup
    ctx.refuse = True
    tick(db, record, executor)
    tick(db, record, executor)
    assert len(calls) == 2
    assert db.list_migrations(drain_id=record['id']) == []
    ctx.refuse = False
    tick(db, record, executor)
    assert db.list_migrations(drain_id=record['id'])


def test_a_learned_start_lag_still_starts_the_first_guests(setup, monkeypatch):
    """The plan puts records one start lag after the decision; the executor
    must take that lag as "now", as the plan prints it rounded (it once
    waited for ever for a start at 0, then for one at 0.18 > 0.17951)."""
    from kvmplace.planner import concurrency as conc
    ctx, db, record, executor, calls = setup
    learned = conc.Concurrency(record_overhead_seconds=1.2, contention=0.3,
                               start_lag_seconds=0.17951, pace=0.8, samples=5)
    monkeypatch.setattr(ctx.concurrency, 'current', lambda: learned)
    tick(db, record, executor)
    assert db.list_migrations(drain_id=record['id'])
    plan = db.get_drain(record['id'])['plan']
    assert plan['current']['concurrency']['start_lag_seconds'] == 0.18
    assert plan['predicted_end_at'] > plan['replanned_at']
