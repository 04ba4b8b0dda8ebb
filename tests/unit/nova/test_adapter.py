"""kvmplace.nova.adapter without Nova: one call per request, failure policy.

Nova is not installed in kvmplace's .venv (its pins differ; tests/nova runs
the real thing in .nova-venv). Here the instance-record lookup
(``request_kind``, two Nova database reads) is replaced by its answer, and
the conductor is a real NovaEndpoint behind oslo.messaging's fake://
transport - or absent, for the failure policy.
"""
from __future__ import annotations

import logging
import types
import uuid as uuidlib

import oslo_messaging as messaging
import pytest
from oslo_config import cfg

import kvmplace.conf as kconf_kvmplace
from kvmplace import rpc
from kvmplace.conductor import decisions as dec
from kvmplace.conductor.db import api as db_api
from kvmplace.nova import adapter as adapter_mod
from kvmplace.nova import conf as kconf
from tests.functional.conftest import register_messaging_opts
from tests.unit.conductor.test_decisions import HOSTS, LINKS, UUID

NAMES = ['h2', 'h3', 'h4']


class Spec:
    """What the adapter reads of Nova's RequestSpec (weak-referenceable)."""

    def __init__(self):
        self.instance_uuid = UUID
        self.flavor = types.SimpleNamespace(memory_mb=2048, vcpus=2)


@pytest.fixture
def bus(tmp_path, monkeypatch):
    """(adapter factory, server): a NovaEndpoint on fake:// with imported facts."""
    db = db_api.Database(f'sqlite:///{tmp_path}/d.sqlite')
    db.upgrade()
    decisions = dec.NovaDecisions(kconf_kvmplace.new_conf(), db)
    decisions.import_hosts(HOSTS, LINKS, None)
    conf = cfg.ConfigOpts()
    register_messaging_opts(conf)
    conf([])
    kconf.register_opts(conf)
    transport = messaging.get_rpc_transport(conf, url='fake:///',
                                            allowed_remote_exmods=rpc.ALLOWED_EXMODS)
    topic = f'kvmplace-conductor-{uuidlib.uuid4().hex[:8]}'
    server = messaging.get_rpc_server(transport, messaging.Target(topic=topic, server='c'),
                                      [dec.NovaEndpoint(decisions)])
    server.start()
    kinds = {'value': ('live-migrate', 'h1')}
    monkeypatch.setattr(adapter_mod, 'request_kind', lambda spec: kinds['value'])

    def make(**flags):
        for key, value in flags.items():
            conf.set_override(key, value, group='kvmplace')
        client = messaging.get_rpc_client(transport, messaging.Target(
            topic=topic, namespace=dec.NAMESPACE, version='1.0'))
        return adapter_mod.Adapter(conf, client=client)

    yield make, server, kinds, decisions
    server.stop()
    server.wait()
    transport.cleanup()


def test_one_call_per_request_shared_and_cached(bus):
    make, _, _, decisions = bus
    adapter = make()
    spec = Spec()
    first = adapter.answer(spec, NAMES)
    again = adapter.answer(spec, ['h2', 'h3'])       # the weigher: a subset
    assert again is first and adapter.calls == 1
    assert first.hosts['h4'][2] == 'numa_health'
    adapter.answer(Spec(), NAMES)                     # a new request: a new call
    assert adapter.calls == 2
    assert len(decisions.list_decisions(UUID)) == 2


def test_operations_not_configured_never_call(bus):
    make, _, kinds, _ = bus
    adapter = make()
    kinds['value'] = ('boot', None)
    assert not adapter.answer(Spec(), NAMES).applies
    kinds['value'] = ('migrate', 'h1')
    assert not adapter.answer(Spec(), NAMES).applies
    assert adapter.calls == 0
    adapter = make(operations=['live-migrate', 'migrate'])
    assert adapter.answer(Spec(), NAMES).applies and adapter.calls == 1


@pytest.mark.parametrize('policy,closed', [('fail-open', False), ('fail-closed', True)])
def test_conductor_gone_one_warning_and_the_policy(bus, caplog, policy, closed):
    make, server, _, _ = bus
    server.stop()
    server.wait()
    adapter = make(failure_policy=policy, timeout_seconds=0.2)
    caplog.set_level(logging.WARNING, logger='kvmplace.nova.adapter')
    spec = Spec()
    answer = adapter.answer(spec, NAMES)
    adapter.answer(spec, NAMES)                      # the weigher: no second call
    assert answer.failed and 'did not answer within 0.2 s' in answer.failed
    assert adapter.fail_closed() is closed
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and f'failure_policy {policy}' in lines[0] and UUID in lines[0]
    assert not any(r.exc_info for r in caplog.records)
    assert adapter.calls == 1


def test_remote_refusal_is_a_failure_not_a_crash(bus, caplog):
    make, _, _, _ = bus
    adapter = make()
    spec = Spec()
    spec.flavor = types.SimpleNamespace(memory_mb=0, vcpus=2)   # refused by the conductor
    answer = adapter.answer(spec, NAMES)
    assert answer.failed and 'request.memory_mib' in answer.failed


def test_conf_lists_its_options_without_nova():
    (group, opts), = kconf.list_opts()
    names = {o.name for o in opts}
    assert group.name == 'kvmplace'
    assert {'transport_url', 'timeout_seconds', 'failure_policy', 'operations', 'filters',
            'weighers', 'weight_multiplier', 'default_dirty_rate_mibps',
            'max_fact_age_seconds'} <= names
    assert set(kconf.FILTERS) <= set(dec.nova_conf.FILTERS)


def test_the_conductor_requiring_signatures_answers_the_signed_adapter_only(
        tmp_path, caplog):
    """nova.conf [kvmplace] message_auth_private_key_file: the adapter
    signs as operator "<key file name>"; a conductor with [message_auth]
    required = true answers it, and an unsigned adapter gets the refusal,
    which the failure policy turns into one warning line."""
    from oslo_messaging.rpc import server as rpc_server

    from kvmplace import msgauth
    private, _ = msgauth.create_keypair(str(tmp_path / 'operators'), 'nova-scheduler')
    db = db_api.Database(f'sqlite:///{tmp_path}/d.sqlite')
    db.upgrade()
    decisions = dec.NovaDecisions(kconf_kvmplace.new_conf(), db)
    decisions.import_hosts(HOSTS, LINKS, None)
    conf = cfg.ConfigOpts()
    register_messaging_opts(conf)
    conf([])
    kconf.register_opts(conf)
    transport = messaging.get_rpc_transport(conf, url='fake:///',
                                            allowed_remote_exmods=rpc.ALLOWED_EXMODS)
    topic = f'kvmplace-conductor-{uuidlib.uuid4().hex[:8]}'
    verifier = msgauth.Verifier(msgauth.OPERATOR, topic, 'c', msgauth.load_key_dir(
        str(tmp_path / 'operators'), msgauth.OPERATOR_PREFIX, 'operator_keys_dir'), True)
    server = rpc_server.RPCServer(transport, messaging.Target(topic=topic, server='c'),
                                  msgauth.AuthDispatcher([dec.NovaEndpoint(decisions)],
                                                         verifier))
    server.start()
    try:
        def adapter(key):
            client = messaging.get_rpc_client(transport, messaging.Target(
                topic=topic, namespace=dec.NAMESPACE, version='1.0'))
            return adapter_mod.Adapter(conf, client=adapter_mod._signed(client, key))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(adapter_mod, 'request_kind', lambda spec: ('live-migrate', 'h1'))
            signed = adapter(private).answer(Spec(), NAMES)
            assert not signed.failed and signed.hosts['h4'][2] == 'numa_health'
            caplog.set_level(logging.WARNING, logger='kvmplace.nova.adapter')
            unsigned = adapter(None).answer(Spec(), NAMES)
        assert 'message authentication failed: unsigned message' in unsigned.failed
        assert len(decisions.list_decisions(UUID)) == 1
        assert [r.getMessage() for r in caplog.records
                if r.name == 'kvmplace.nova.adapter'][0].count('fail-open') == 1
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
