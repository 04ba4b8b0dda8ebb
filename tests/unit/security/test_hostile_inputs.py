"""A hostile-input corpus for the agent's RPC arguments and the host
reports the conductor stores, with memory and time bounds asserted.

Anything on the message bus can call these, so the cost of a request must
be bounded by a budget, not by what the sender chose (issue 16: a 1 KiB
``cpus`` cost 326 MiB before it was refused; a 6.8 KB report cost 2.3 GB
and 4.3 s and was stored). Each example is one call on the real agent
endpoint (libvirt's test driver behind it) or one report through the
conductor's check; tracemalloc measures what the call allocates beyond its
input, the clock how long it takes.
"""
from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_messaging.rpc.dispatcher import ExpectedException

from kvmplace.agent import manager as agent_manager
from kvmplace.conductor import validate
from kvmplace.exception import InvalidInput, KvmplaceError
from tests.unit.agent.conftest import agent, agent_conf, notifier, numa_file  # noqa: F401

#: What one refused or answered call may allocate beyond its input, and take.
PEAK_MIB = 8.0
SECONDS = 1.0


def _nested(depth: int):
    value: object = 'x'
    for _ in range(depth):
        value = [value]
    return value


def _wide_dict(n: int) -> dict:
    return {f'k{i}': i for i in range(n)}


#: Shapes that cost when expanded, copied, parsed or walked carelessly.
HOSTILE = st.one_of(
    st.builds(lambda n: ','.join(['0-8191'] * n), st.sampled_from([1, 150, 5000])),
    st.builds(lambda n: ','.join(f'{i}-{i + 60000}' for i in range(n)),
              st.sampled_from([1, 20, 400])),
    st.builds(lambda n: '9' * n, st.sampled_from([6, 5000, 100_000])),
    st.builds(lambda n: 'x' * n, st.sampled_from([300, 70_000, 2_000_000])),
    st.builds(lambda n: '\x1b[2J\n' * n, st.sampled_from([1, 1000])),
    st.builds(_nested, st.sampled_from([13, 500, 5000])),
    st.builds(lambda n: [0] * n, st.sampled_from([65, 30_000, 1_000_000])),
    st.builds(_wide_dict, st.sampled_from([9, 30_000])),
    st.builds(lambda n: [{'shared': False, 'path': f'/var/lib/libvirt/images/d{i}'}
                         for i in range(n)], st.sampled_from([65, 5000])),
    st.sampled_from([None, True, -1, 2 ** 63, float('nan'), float('inf'), 1e308, '', '/',
                     'qemu+tcp://collector.invalid/system', 'tcp://10.6.6.6:1',
                     'exec:cat', '../../x', 'test', {'__class__': 'x'}]),
    st.text(max_size=64),
)

#: Each agent RPC method with plausible values for its arguments; a
#: hostile value replaces one or more of them. No argument names the test
#: driver's guest "test": a valid call on it would pin or verify for real.
METHODS = {
    'get_host_state': {},
    'check_destination': {'instance': {'name': 'in-1', 'memory_mib': 16, 'vcpus': 1},
                          'source_cpu_model': None},
    'pre_pin': {'instance': 'no-such', 'node': None},
    'restore_pin': {'instance': 'no-such', 'cpus': '0-3'},
    'migrate': {'migration_id': 'm1', 'instance': 'no-such', 'dest_host': 'cn-b',
                'dest_uri': 'qemu+tcp://10.0.0.2/system', 'migrate_uri': None,
                'dest_cpus': None, 'policy': {}},
    'get_job': {'instance': 'no-such'},
    'abort': {'instance': 'no-such'},
    'post_verify': {'instance': 'no-such', 'uuid': '', 'memory_mib': 1, 'vcpus': 1,
                    'cpus': None},
}


@st.composite
def agent_calls(draw):
    method = draw(st.sampled_from(sorted(m for m in METHODS if METHODS[m])))
    kwargs = dict(METHODS[method])
    for key in draw(st.lists(st.sampled_from(sorted(kwargs)), min_size=1, max_size=3,
                             unique=True)):
        value = draw(HOSTILE)
        if isinstance(value, str) and value == 'test':
            value = 'no-such'
        if key == 'instance' and isinstance(value, dict):
            value = dict(value, name='no-such') if 'name' in value else value
        kwargs[key] = value
    return method, kwargs


def _call(fn):
    try:
        return fn()
    except (InvalidInput, KvmplaceError) as exc:
        return exc
    except ExpectedException as exc:        # the endpoint's expected_exceptions
        assert isinstance(exc.exc_info[1], KvmplaceError), exc.exc_info[1]
        return exc.exc_info[1]


def _measure(fn):
    """(outcome, peak MiB allocated during the call, seconds): the time of
    an untraced call (tracemalloc slows allocation several times), the
    memory of a second, traced one."""
    started = time.perf_counter()
    outcome = _call(fn)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        _call(fn)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return outcome, peak / 2 ** 20, elapsed


@pytest.fixture
def endpoint(agent):  # noqa: F811
    agent.conf.set_override('post_verify_settle_seconds', 0.0, 'agent')
    return agent_manager.AgentEndpoint(agent.manager)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(call=agent_calls())
def test_hostile_agent_arguments_cost_a_bounded_amount(endpoint, call):
    method, kwargs = call
    outcome, peak_mib, seconds = _measure(lambda: getattr(endpoint, method)({}, **kwargs))
    assert peak_mib < PEAK_MIB, (method, peak_mib, outcome)
    assert seconds < SECONDS, (method, seconds, outcome)
    # Nothing hostile is ever carried out: refused, or an answer saying no.
    if not isinstance(outcome, Exception):
        assert method in ('check_destination', 'get_job', 'abort', 'post_verify'), outcome


def _report() -> dict:
    return {'name': 'cn-1', 'vcpus': 8, 'memory_mib': 4096, 'link_mbps': 10000,
            'numa': [{'id': 0, 'cpus': '0-3', 'memory_mib': 2048},
                     {'id': 1, 'cpus': '4-7', 'memory_mib': 2048}],
            'instances': [{'name': 'vm1', 'memory_mib': 512, 'vcpus': 1,
                           'disks': [{'path': '/var/lib/libvirt/images/vm1.qcow2'}]}]}


REPORT_SPOTS = (('name',), ('numa',), ('numa', 0), ('numa', 0, 'cpus'), ('instances',),
                ('instances', 0), ('instances', 0, 'name'), ('instances', 0, 'disks'),
                ('cpu_model',), ('extra',))


@st.composite
def reports(draw):
    report = _report()
    for spot in draw(st.lists(st.sampled_from(REPORT_SPOTS), min_size=1, max_size=3)):
        value = draw(HOSTILE)
        try:
            target = report
            for key in spot[:-1]:
                target = target[key]
            target[spot[-1]] = value
        except (TypeError, KeyError, IndexError):
            continue                    # an earlier spot replaced what held it
    if draw(st.booleans()):     # many nodes, each with a wide CPU list
        report['numa'] = [{'id': i, 'cpus': ','.join(['0-8191'] * 8)}
                          for i in range(draw(st.sampled_from([2, 64, 1100])))]
    return report


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(report=reports())
def test_hostile_host_reports_cost_a_bounded_amount(report):
    outcome, peak_mib, seconds = _measure(lambda: validate.host_state(report))
    assert peak_mib < PEAK_MIB, (peak_mib, outcome)
    assert seconds < SECONDS, (seconds, outcome)


def test_the_reviews_two_findings_within_the_bounds():
    """The 1 KiB cpus argument and the 6.8 KB report of the issue."""
    cpus = ','.join(f'{i}-{i + 65535}' for i in range(120))[:1024].rsplit(',', 1)[0]
    from kvmplace.agent import validation
    outcome, peak, seconds = _measure(lambda: validation.cpu_list('cpus', cpus))
    assert isinstance(outcome, InvalidInput) and peak < 0.1 and seconds < 0.05
    report = _report()
    report['numa'] = [{'id': i, 'cpus': ','.join(['0-8191'] * 20)} for i in range(50)]
    outcome, peak, seconds = _measure(lambda: validate.host_state(report))
    assert isinstance(outcome, InvalidInput) and peak < 1 and seconds < 0.05
    assert str(outcome).startswith('host_state.numa[0].cpus:')
