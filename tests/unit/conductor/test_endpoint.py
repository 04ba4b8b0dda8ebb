"""The conductor's RPC surface, over oslo.messaging's fake:// transport
with a real RPC server: what a bus client can and cannot call.

Before, the ConductorManager itself was the endpoint, and any public
method was callable by anyone on the bus - a forged ``learn`` call
poisoned the learned path rates. Now only the RPC methods are.
"""
from __future__ import annotations

import logging
import uuid as uuidlib

import oslo_messaging as messaging
import pytest
from oslo_config import cfg
from oslo_messaging.rpc.dispatcher import NoSuchMethod

from kvmplace import exception, rpc
from kvmplace.conductor import endpoint as ep
from tests.functional.conftest import register_messaging_opts
from tests.unit.conductor.test_workflow import (  # noqa: F401 - fixtures
    cloud, conf, db, make, wait_final)


@pytest.fixture
def bus(conf, db, cloud):
    """(client, manager, agents): a real RPC server on fake:// serving a
    ConductorEndpoint, and a client as the CLI or any bus user has."""
    mgr, agents = make(conf, db, cloud)
    rpc_conf = cfg.ConfigOpts()
    register_messaging_opts(rpc_conf)   # oslo.messaging's own options (tracing...)
    transport = messaging.get_rpc_transport(rpc_conf, url='fake:///',
                                            allowed_remote_exmods=rpc.ALLOWED_EXMODS)
    topic = f'kvmplace-conductor-{uuidlib.uuid4().hex[:8]}'
    server = messaging.get_rpc_server(transport, messaging.Target(topic=topic, server='c1'),
                                      [ep.ConductorEndpoint(mgr)])
    server.start()
    client = messaging.get_rpc_client(transport, messaging.Target(topic=topic, version='1.1'),
                                      timeout=10)
    yield client, mgr, agents
    server.stop()
    server.wait()
    mgr.stop()
    transport.cleanup()


def refused(client, method: str, **kwargs) -> None:
    """The call is refused by the dispatcher: no such RPC method (the
    exception class itself, or a RemoteError naming it, depending on
    whether the client may rebuild oslo.messaging's exceptions)."""
    with pytest.raises((NoSuchMethod, messaging.RemoteError)) as err:
        client.call({}, method, **kwargs)
    kind = err.value.exc_type if isinstance(err.value, messaging.RemoteError) \
        else type(err.value).__name__
    assert kind == 'NoSuchMethod', err.value


@pytest.mark.parametrize('method', ['learn', 'notify_final', 'locate', 'start_migration',
                                    'start_workflow', 'recover', 'stop', 'snapshot',
                                    '_drive', '__init__', 'parts'])
def test_internal_methods_are_not_callable_from_the_bus(bus, method):
    client, mgr, agents = bus
    refused(client, method, rec={'id': 'x'})
    assert not mgr.stopping()
    assert client.call({}, 'list_hosts')       # still serving


def test_a_forged_learn_call_does_not_poison_the_path_rates(bus, conf):
    client, mgr, agents = bus
    conf.set_override('learn_path_throughput', True, group='estimator')
    forged = {'id': str(uuidlib.uuid4()), 'source': 'h1', 'dest': 'h2',
              'policy': {}, 'estimate': {'inputs': {'memory_mib': 1024}},
              'result': {'status': 'completed', 'elapsed_seconds': 1000.0,
                         'data_mib': 1024, 'memory_mib': 1024}}
    refused(client, 'learn', rec=forged)
    assert client.call({}, 'list_path_rates') == []


def test_rpc_methods_answer_over_the_bus(bus):
    client, mgr, agents = bus
    hosts = client.call({}, 'list_hosts')
    assert sorted(h['name'] for h in hosts) == ['h1', 'h2', 'h3']
    rec = client.call({}, 'migrate', instance='vm1', dest='h2',
                      policy={'timeout_action': 'abort', 'bandwidth_cap_mibps': 0})
    assert rec['policy'] == {'timeout_action': 'abort', 'bandwidth_cap_mibps': 0.0}
    final = wait_final(mgr, rec['id'])
    assert final['status'] == 'completed'
    # Every policy key reached the agent: the conductor and the agent
    # share one policy schema (kvmplace.validation.POLICY_SCHEMA).
    assert client.call({}, 'get_migration', migration_id=rec['id'])['policy'] == rec['policy']


@pytest.mark.parametrize('method, kwargs, exc, field', [
    ('migrate', {'instance': 'bad name!'}, exception.InvalidInput, 'instance'),
    ('migrate', {'instance': 'vm1', 'policy': {'bogus': 1}}, exception.InvalidInput,
     'policy.bogus'),
    ('list_migrations', {'status': 'aborting'}, exception.InvalidInput, 'status'),
    ('list_drains', {'status': 'aborted'}, exception.InvalidInput, 'status'),
    ('get_migration', {'migration_id': 'abcdef12'}, exception.NotFound, None),
    ('get_host', {'host': 'nosuch'}, exception.NotFound, None),
])
def test_expected_errors_reach_the_caller_without_a_server_traceback(
        bus, caplog, method, kwargs, exc, field):
    client, mgr, agents = bus
    caplog.set_level(logging.DEBUG)
    with pytest.raises(exc) as err:
        client.call({}, method, **kwargs)
    if field is not None:
        assert err.value.field == field
    assert '\n' not in str(err.value).strip()
    server_errors = [r for r in caplog.records
                     if r.levelno >= logging.WARNING and r.name.startswith('oslo_messaging')]
    assert server_errors == [], [r.getMessage() for r in server_errors]
    assert not any(r.exc_info for r in caplog.records if r.name.startswith('oslo_messaging'))


def test_the_endpoints_list_exactly_the_rpc_methods():
    """The operator endpoint has no agent cast and the reports endpoint no
    operator method: broker permissions per topic rely on that."""
    def exposed(cls):
        return {n for n in vars(cls) if not n.startswith('_')} - {'target'}
    assert exposed(ep.ConductorEndpoint) == set(ep.OPERATOR_METHODS)
    assert exposed(ep.ReportsEndpoint) == set(ep.REPORT_METHODS)
    assert not set(ep.OPERATOR_METHODS) & set(ep.REPORT_METHODS)
    assert set(ep.RPC_METHODS) == set(ep.OPERATOR_METHODS) | set(ep.REPORT_METHODS)
    assert ep.ConductorEndpoint.target.version == ep.ReportsEndpoint.target.version == '1.1'


@pytest.fixture
def served(conf, db, cloud):
    """The conductor's two RPC servers as kvmplace-conductor builds them
    (service.servers_for), on a fake:// transport of their own."""
    from kvmplace.conductor import service
    mgr, agents = make(conf, db, cloud)
    register_messaging_opts(conf)
    conf.set_override('transport_url', 'fake:///')
    conf.set_override('host', 'c1', group='conductor')

    def start():
        servers = service.servers_for(conf, mgr)
        for server in servers:
            server.start()
        started.extend(servers)
    started: list = []
    yield mgr, agents, start
    for server in started:
        server.stop()
        server.wait()
    mgr.stop()
    transport = rpc._TRANSPORTS.pop(id(conf), None)
    if transport is not None:
        transport.cleanup()


def _client(conf, topic):
    return messaging.get_rpc_client(rpc.get_transport(conf),
                                    messaging.Target(topic=topic, version='1.1'), timeout=10)


def _report_of(agents, name):
    state = dict(agents.get_host_state({}, 'h1'))
    state['name'] = name
    return state


def _known(mgr, name) -> bool:
    try:
        mgr.get_host({}, name)
    except exception.NotFound:
        return False
    return True


@pytest.mark.parametrize('legacy', [True, False])
def test_reports_and_operator_requests_are_served_on_separate_topics(served, conf, legacy):
    """The agents' casts go (through the rpcapi and the agent's notifier)
    to kvmplace-conductor-reports, where no operator method is served;
    the operator topic serves the agents' casts only when
    [conductor] reports_on_operator_topic keeps older agents working."""
    from kvmplace.agent import reporter
    from kvmplace.conductor import rpcapi
    from tests.functional.conftest import wait_for
    mgr, agents, start = served
    conf.set_override('reports_on_operator_topic', legacy, group='conductor')
    start()
    rpcapi.ConductorAPI(conf=conf, timeout=10).report_state({}, _report_of(agents, 'h7'))
    assert reporter.ConductorNotifier(conf).report_state(_report_of(agents, 'h8'))
    wait_for(lambda: _known(mgr, 'h7') and _known(mgr, 'h8'), 10, 'both reports stored')
    reports = _client(conf, rpc.CONDUCTOR_REPORTS_TOPIC)
    for method in ep.OPERATOR_METHODS:
        refused(reports, method)
    operator = _client(conf, rpc.CONDUCTOR_TOPIC)
    assert operator.call({}, 'list_hosts')
    if legacy:
        operator.call({}, 'report_state', host_state=_report_of(agents, 'h9'))
        assert _known(mgr, 'h9')
    else:
        for method in ep.REPORT_METHODS:
            refused(operator, method)
        assert not _known(mgr, 'h9')
