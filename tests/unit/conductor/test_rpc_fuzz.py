"""Fuzzing the conductor's RPC endpoint: bad arguments are refused cleanly.

Anything on the message bus can call the conductor (the CLI, a cloud
scheduler, every agent's casts). Property, for every RPC method of
ConductorManager: called with arguments of any type and value, it answers
or raises InvalidInput / NotFound / KvmplaceError (which oslo.messaging
carries back to the caller with its message) - never another exception,
which would reach the caller as an opaque RemoteError and, for a cast,
be lost in a traceback in the log.

And a second property for the casts an agent sends (report_state,
migration_progress, migration_finished): whatever one of them carried,
the conductor keeps working afterwards - a garbage host report must not
poison every later scheduling decision, a garbage progress or result must
not break the migration it names.

The manager runs on a SQLite file in a temporary directory with the
in-memory agents of fakes.py; migrations started by a fuzzed call run
their (fake, sub-second) workflow in the background.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
import uuid as uuidlib

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from kvmplace import conf as kconf
from kvmplace import objects
from kvmplace.conductor import manager as cm
from kvmplace.status import DrainStatus
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import KvmplaceError
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import _host

#: FUZZ_EXAMPLES=2000 for a longer hunt than the default quick run.
SETTINGS = settings(max_examples=int(os.environ.get('FUZZ_EXAMPLES', 80)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-3, 10)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(['vm1', 'vm2', 'h1', 'h2', 'h9', '', ' ', 'active', 'running',
                              'completed', '0-1', 'abcd', 'vm1\n', '../x', 'a' * 300]))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10) | st.sampled_from(
                            ['name', 'instances', 'numa', 'memory_mib', 'phase', 'status']),
                            inner, max_size=4),
                        max_leaves=12)
VALID_NAMES = ['vm1', 'vm2', 'h1', 'h2', 'h3']
# Mostly plausible values, so that calls get past the first check and into
# the scheduler, the database and the workflow; anything else sometimes.
names = st.sampled_from(VALID_NAMES) | st.sampled_from(VALID_NAMES + ['nope']) | anything
ids = st.uuids().map(str) | st.sampled_from(['abcd', '0000', 'ffff-']) | anything
good_policies = st.fixed_dictionaries({}, optional={
    'max_downtime_ms': st.integers(1, 5000), 'bandwidth_cap_mibps': st.floats(1, 1000),
    'allow_auto_converge': st.booleans(), 'allow_post_copy': st.booleans()})
policies = st.none() | good_policies | good_policies | anything | st.dictionaries(
    st.sampled_from(['max_downtime_ms', 'bandwidth_cap_mibps', 'allow_auto_converge',
                     'allow_post_copy', 'bogus']), anything, max_size=3)
booleans = st.booleans() | st.booleans() | anything


def _paths(value, prefix=()):
    """Every path into a nested dict/list value (for mutation)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


@st.composite
def mutated(draw, base: dict):
    """``base`` with one nested field replaced, deleted, or one added."""
    value = copy.deepcopy(base)
    path = draw(st.sampled_from(list(_paths(value))[1:]))
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(['replace', 'replace', 'delete', 'add']))
    if how == 'replace':
        parent[path[-1]] = draw(anything)
    elif how == 'delete':
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(anything)
    else:
        parent.append(draw(anything))
    return value


def _report(host: str) -> dict:
    """An agent's report as the fake agents make it (their real shape)."""
    cloud = fakes.FakeCloud({'h1': _host(), 'h2': _host()})
    cloud.add_guest('vm1', 'h1')
    cloud.add_guest('vm2', 'h2')
    return fakes.FakeAgents(cloud).get_host_state({}, host)


#: Host reports: real ones with one field wrong, or anything at all.
host_states = mutated(_report('h2')) | mutated(_report('h2')) | anything
PROGRESS = {'migration_id': 'x', 'instance': 'vm2', 'phase': 'iterate', 'remaining_mib': 10.0,
            'processed_mib': 100.0, 'total_mib': 110.0, 'mibps': 50.0,
            'dirty_rate_mibps': 1.0, 'iteration': 2, 'eta_seconds': 0.2,
            'elapsed_seconds': 2.0, 'postcopy': False, 'at': 1.7e9}
RESULT = {'migration_id': 'x', 'instance': 'vm2', 'dest_host': 'h1', 'status': 'completed',
          'error': None, 'elapsed_seconds': 2.0, 'job_seconds': 1.9, 'downtime_ms': 20,
          'data_mib': 128.0, 'mibps': 64.0, 'iterations': 3, 'postcopy': False,
          'guest': {'name': 'vm2', 'uuid': '00000000-0000-4000-8000-000000000001',
                    'memory_mib': 1024, 'vcpus': 1}}
progresses = mutated(PROGRESS) | st.just(PROGRESS) | anything
results = mutated(RESULT) | st.just(RESULT) | anything

ALLOWED = (KvmplaceError,)   # InvalidInput and NotFound are KvmplaceErrors


@pytest.fixture
def mgr(tmp_path):
    conf = kconf.new_conf()
    conf.set_override('monitor_interval_seconds', 1, group='conductor')
    db = db_api.Database(f'sqlite:///{tmp_path}/fuzz.sqlite')
    db.upgrade()
    cloud = fakes.FakeCloud({'h1': _host(), 'h2': _host(), 'h3': _host(link=1000)})
    cloud.add_guest('vm1', 'h1')
    cloud.add_guest('vm2', 'h2')
    agents = fakes.FakeAgents(cloud, migrate_seconds=0.05)
    manager = cm.ConductorManager(conf, db, agents)
    agents.conductor = manager
    manager.fuzz_agents = agents
    _report_all(manager)
    yield manager
    manager.stop()


def _report_all(manager) -> None:
    for name in manager.fuzz_agents.cloud.hosts:
        manager.report_state({}, manager.fuzz_agents.get_host_state({}, name))


def call(fn, *args, **kwargs):
    """The property: an answer or a KvmplaceError, nothing else."""
    try:
        answer = fn({}, *args, **kwargs)
    except ALLOWED as exc:
        message = str(exc)
        assert message and '\n' not in message.strip(), repr(message)
        event(f'{fn.__name__}: {type(exc).__name__}')
        return exc
    event(f'{fn.__name__}: answered')
    # What the CLI does with every answer: strict JSON.
    json.dumps(objects.plain(answer), allow_nan=False)
    return answer


def still_serves(manager) -> None:
    """The conductor answers the requests that read the whole state."""
    manager.select_destinations({}, 'vm1')
    manager.list_hosts({})
    manager.list_migrations({})
    manager.snapshot()


@SETTINGS
@given(host_state=host_states)
@example(host_state=[1, 2])
@example(host_state='h1')
@example(host_state={'name': 'h1', 'numa': 'abc', 'vcpus': 4, 'memory_mib': 1024})
@example(host_state={'name': 'h9', 'vcpus': 'many', 'memory_mib': 1024})
@example(host_state={'name': 'h9', 'vcpus': 4, 'memory_mib': 1024,
                     'instances': [{'name': 'x', 'memory_mib': 'lots'}]})
@example(host_state={'name': 'h9', 'vcpus': 4, 'memory_mib': math.inf})
def test_report_state_never_poisons_the_state(mgr, host_state):
    call(mgr.report_state, host_state)
    still_serves(mgr)
    _report_all(mgr)


@SETTINGS
@given(progress=progresses, result=results, known=st.booleans())
@example(progress={'phase': {'a': 1}}, result={'status': 'completed', 'error': {'x': 1}},
         known=True)
@example(progress=[['phase', 'x']], result=7, known=True)
@example(progress={'eta_seconds': 'soon'}, result={'status': ['x']}, known=True)
def test_agent_casts_with_garbage(mgr, progress, result, known):
    if known:
        # A record in the middle of its copy (no workflow runs it here).
        rec = mgr.db.create_migration('vm2', 'h2', 'h1', {})
        mgr.db.update_migration(rec['id'], status='migrating', dest='h1')
        mid = rec['id']
    else:
        mid = str(uuidlib.uuid4())
    try:
        call(mgr.migration_progress, mid, progress)
        call(mgr.migration_finished, mid, result)
        call(mgr.migration_progress, progress, progress)
        call(mgr.migration_finished, result, result)
        still_serves(mgr)
        if known:
            call(mgr.get_migration, mid)
            # The drain's re-planning reads the stored progress.
            from kvmplace.conductor import drain as drain_exec
            _, topology = mgr.snapshot()
            drain_exec.DrainExecutor(mgr, 'none')._busy(
                [mgr.db.get_migration(mid, steps=False)], topology)
    finally:
        if known:
            mgr.db.update_migration(mid, status='failed')
            mgr.parts.waiters.forget(mid)


@SETTINGS
@given(instance=names, dest=st.none() | names, policy=policies,
       force_hosts=st.none() | st.lists(st.sampled_from(VALID_NAMES), max_size=2) | anything,
       ignore_hosts=st.none() | st.lists(st.sampled_from(VALID_NAMES), max_size=2) | anything)
def test_scheduling_requests(mgr, instance, dest, policy, force_hosts, ignore_hosts):
    call(mgr.select_destinations, instance, policy=policy, force_hosts=force_hosts,
         ignore_hosts=ignore_hosts)
    call(mgr.estimate, instance, dest, policy=policy)


@SETTINGS
@given(instance=names, dest=st.none() | names, policy=policies, migration_id=ids)
def test_migration_requests(mgr, instance, dest, policy, migration_id):
    started = call(mgr.migrate, instance, dest=dest, policy=policy)
    call(mgr.get_migration, migration_id)
    call(mgr.abort_migration, migration_id)
    if isinstance(started, dict):
        call(mgr.abort_migration, started['id'])
        call(mgr.get_migration, started['id'][:8])
        _wait_idle(mgr)


@SETTINGS
@given(status=st.none() | anything, instance=st.none() | names,
       limit=st.just(50) | anything)
@example(status=['active'], instance=None, limit=50)
@example(status={'a': 1}, instance=['vm1'], limit=True)
def test_listing_requests(mgr, status, instance, limit):
    call(mgr.list_migrations, status=status, instance=instance, limit=limit)
    call(mgr.list_drains, status=status)
    call(mgr.list_hosts)


@SETTINGS
@given(host=names, on=booleans, reason=st.none() | st.text(max_size=300) | anything,
       dry_run=booleans, threshold=anything | st.floats(0, 1), drain_id=ids)
@example(host='h3', on=True, reason={'why': 1}, dry_run=True, threshold=0.1, drain_id='x')
@example(host='h3', on=[], reason=None, dry_run=[], threshold=0.1, drain_id='x')
def test_host_and_drain_requests(mgr, host, on, reason, dry_run, threshold, drain_id):
    call(mgr.get_host, host)
    call(mgr.set_maintenance, host, on, reason=reason)
    call(mgr.set_maintenance, host, False)
    # A real (not dry-run) drain or rebalance only ever on a host with no
    # guests, so the fuzz never waits on background migrations.
    if dry_run is True or host == 'h3':
        started = call(mgr.drain, host, dry_run=dry_run)
        if isinstance(started, dict) and started.get('id'):
            _stop_drains(mgr)
    call(mgr.rebalance, threshold=threshold, dry_run=True)
    call(mgr.get_drain, drain_id)


@SETTINGS
@given(source=st.none() | names, dest=st.none() | names)
@example(source=None, dest=None)
@example(source='h1', dest={'x': 1})
def test_learned_path_requests(mgr, source, dest):
    mgr.db.record_path_rate('h1', 'h2', 50.0, 0.5)
    call(mgr.list_path_rates)
    call(mgr.forget_path_rates, source=source, dest=dest)
    listed = call(mgr.list_path_rates)
    assert isinstance(listed, list)


def test_every_rpc_method_is_fuzzed():
    """A new RPC method must be added to the fuzz tests above; and the
    endpoints the RPC servers dispatch to have the RPC methods only."""
    from kvmplace.conductor import endpoint as ep

    def exposed(cls):
        return {n for n in dir(cls) if not n.startswith('_') and n != 'target' and
                callable(getattr(cls, n))}
    fuzzed = {'report_state', 'migration_progress', 'migration_finished',
              'select_destinations', 'estimate', 'migrate', 'get_migration',
              'list_migrations', 'abort_migration', 'drain', 'rebalance', 'get_drain',
              'list_drains', 'list_hosts', 'get_host', 'set_maintenance',
              'list_path_rates', 'forget_path_rates'}
    both = exposed(ep.ConductorEndpoint) | exposed(ep.ReportsEndpoint)
    assert both == set(ep.RPC_METHODS) == fuzzed, sorted(both ^ fuzzed)
    assert all(callable(getattr(cm.ConductorManager, n)) for n in ep.RPC_METHODS)


def _wait_idle(manager, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while manager.db.unfinished_migrations():
        assert time.monotonic() < deadline, manager.db.unfinished_migrations()
        time.sleep(0.02)


def _stop_drains(manager) -> None:
    for executor in list(manager._executors.values()):
        executor.stop.set()
    for drain in manager.db.list_drains('running'):
        manager.db.update_drain(drain['id'], status=DrainStatus.FAILED)
    _wait_idle(manager)
