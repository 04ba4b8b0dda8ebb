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


def test_the_endpoint_lists_exactly_the_rpc_methods():
    exposed = {n for n in vars(ep.ConductorEndpoint) if not n.startswith('_')} - {'target'}
    assert exposed == set(ep.RPC_METHODS)
    assert ep.ConductorEndpoint.target.version == '1.1'
