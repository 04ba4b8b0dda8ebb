"""The agent behind a real oslo.messaging RPC server (in-process fake://
transport): method names and arguments of rpcapi.AgentAPI reach the
endpoint, and InvalidInput comes back to the caller as InvalidInput."""
from __future__ import annotations

import importlib

import pytest

from kvmplace import rpc
from kvmplace.agent import manager, rpcapi
from kvmplace.exception import InvalidInput
from tests.unit.agent.conftest import TEST_GUEST


_MESSAGING_OPTS = [
    ('oslo_messaging.transport', '_transport_opts', None),
    ('oslo_messaging.rpc.client', '_client_opts', None),
    ('oslo_messaging.rpc.dispatcher', '_dispatcher_opts', None),
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics', 'oslo_messaging_metrics'),
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing', 'oslo_messaging_tracing'),
]


def _register_messaging_opts(conf) -> None:
    """What oslo.messaging's ConfFixture does (it needs the ``fixtures``
    package): some of its options are registered only on the global CONF
    (LAB.md), and a private ConfigOpts needs them too."""
    for module, attr, group in _MESSAGING_OPTS:
        conf.register_opts(getattr(importlib.import_module(module), attr), group=group)


@pytest.fixture
def served(agent, agent_conf):
    _register_messaging_opts(agent_conf)
    agent_conf.set_override('transport_url', 'fake://')
    server = rpc.get_server(rpc.AGENT_TOPIC, 'unit-host',
                            [manager.AgentEndpoint(agent.manager)], conf=agent_conf)
    server.start()
    api = rpcapi.AgentAPI(conf=agent_conf, timeout=10)
    yield api
    server.stop()
    server.wait()
    rpc._TRANSPORTS.pop(id(agent_conf)).cleanup()


def test_get_host_state_over_rpc(served):
    state = served.get_host_state({}, 'unit-host')
    assert state['name'] == 'unit-host'
    assert any(g['name'] == TEST_GUEST for g in state['instances'])


def test_pin_round_trip_over_rpc(served, test_dom):
    pin = served.pre_pin({}, 'unit-host', instance=TEST_GUEST, node=0)
    assert pin['cpus'] == '0-3'
    back = served.restore_pin({}, 'unit-host', instance=TEST_GUEST, cpus=pin['previous_cpus'])
    assert back['cpus'] == pin['previous_cpus']


def test_bad_arguments_come_back_as_invalid_input(served):
    with pytest.raises(InvalidInput) as err:
        served.pre_pin({}, 'unit-host', instance='no such guest', node=None)
    assert 'instance' in str(err.value)
    with pytest.raises(InvalidInput, match='dest_uri'):
        served.migrate({}, 'unit-host', migration_id='m1', instance=TEST_GUEST,
                       dest_host='h2', dest_uri='http://evil/', migrate_uri=None,
                       dest_cpus=None, policy={})


def test_every_contract_method_exists_on_the_endpoint(agent):
    endpoint = manager.AgentEndpoint(agent.manager)
    for name in ('get_host_state', 'check_destination', 'pre_pin', 'restore_pin', 'migrate',
                 'get_job', 'abort', 'post_verify'):
        assert callable(getattr(agent.manager, name)), name
        assert callable(getattr(endpoint, name)), name
        assert hasattr(rpcapi.AgentAPI, name), name


def test_the_migration_id_travels_over_rpc_as_api_1_1(served, agent, test_dom):
    """pre_pin/restore_pin with a migration_id (API 1.1): accepted for that
    migration while the guest migrates; without one, refused."""
    from tests.unit.security.test_agent_trust import migrating
    job = migrating(agent, 'mig-9')
    try:
        with pytest.raises(InvalidInput, match='migration_id'):
            served.pre_pin({}, 'unit-host', instance=TEST_GUEST, node=0)
        pin = served.pre_pin({}, 'unit-host', instance=TEST_GUEST, node=0,
                             migration_id='mig-9')
        back = served.restore_pin({}, 'unit-host', instance=TEST_GUEST,
                                  cpus=pin['previous_cpus'], migration_id='mig-9')
        assert back['cpus'] == pin['previous_cpus']
    finally:
        job.done.set()
