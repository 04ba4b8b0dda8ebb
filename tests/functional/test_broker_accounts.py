"""Per-host broker accounts on the real RabbitMQ (issue 16), with what
they stop and what they do not.

A private vhost and a compute host's own account ``cn-b`` with RabbitMQ
permissions and topic permissions as doc/source/user/security.rst gives
them. An agent endpoint for host ``cn-a`` is served with the test's
administrative account. Shown:

* through oslo.messaging, cn-b's account cannot send to cn-a's agent: the
  broker refuses the publish (topic permission on the control exchange),
  and cn-a's endpoint never runs;
* the limitation, tested so that it is not forgotten: oslo.messaging
  sends RPC replies through RabbitMQ's default exchange (amq.default),
  so an account that can answer calls needs write access to it, and the
  default exchange delivers to any queue by name - cn-b's account *can*
  reach cn-a's queue that way. Topic permissions do not apply to it.
"""
from __future__ import annotations

import json
import subprocess
import threading
import uuid as uuid_mod

import kombu
import oslo_messaging as messaging
import pytest

import kvmplace.conf
from kvmplace import rpc
from tests.functional.conftest import register_messaging_opts, wait_for

EXCHANGE = 'openstack'          # oslo.messaging's control_exchange default


def _ctl(*argv):
    return subprocess.run(['rabbitmqctl', *argv], check=True, capture_output=True,
                          timeout=60, text=True)


class Agent:
    target = messaging.Target(version='1.1')

    def __init__(self):
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def get_host_state(self, ctxt):
        with self.lock:
            self.calls.append('get_host_state')
        return {'name': 'cn-a'}


@pytest.fixture(scope='module')
def accounts(broker_url, client_conf):
    vhost = broker_url.rsplit('/', 1)[1]
    user, password = f'cn-b-{uuid_mod.uuid4().hex[:6]}', uuid_mod.uuid4().hex
    _ctl('add_user', user, password)
    # As security.rst: the host may declare and read its own reply queues,
    # publish on the control exchange only with the conductor's routing
    # key, and must write amq.default to answer calls (replies).
    own = r'kvmplace-agent|kvmplace-agent\.cn-b|kvmplace-agent_fanout.*'
    _ctl('set_permissions', '-p', vhost, user, rf'^(openstack|reply_.*|{own})$',
         rf'^(openstack|amq\.default|reply_.*|{own})$', rf'^(openstack|reply_.*|{own})$')
    _ctl('set_topic_permissions', '-p', vhost, user, EXCHANGE, r'^kvmplace-conductor$',
         r'^kvmplace-agent(\.cn-b)?$')
    endpoint = Agent()
    server = rpc.get_server(rpc.AGENT_TOPIC, 'cn-a', [endpoint], conf=client_conf)
    server.start()
    admin = rpc.get_client(rpc.AGENT_TOPIC, '1.1', conf=client_conf, timeout=10)
    wait_for(lambda: admin.prepare(server='cn-a').call({}, 'get_host_state'), 30,
             'the cn-a endpoint to answer the administrative account')
    with endpoint.lock:
        endpoint.calls.clear()
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    url = f'rabbit://{user}:{password}@127.0.0.1:5672/{vhost}'
    conf.set_override('transport_url', url)
    yield {'endpoint': endpoint, 'conf': conf, 'url': url, 'user': user}
    server.stop()
    server.wait()
    transport = rpc._TRANSPORTS.pop(id(conf), None)
    if transport is not None:
        transport.cleanup()
    subprocess.run(['rabbitmqctl', 'delete_user', user], capture_output=True, timeout=60)


def test_a_host_account_cannot_send_to_another_hosts_agent(accounts):
    client = rpc.get_client(rpc.AGENT_TOPIC, '1.1', conf=accounts['conf'], timeout=5)
    with pytest.raises(Exception) as err:     # noqa: PT011 - the driver's refusal
        client.prepare(server='cn-a', retry=0).cast({}, 'get_host_state')
    assert 'ACCESS_REFUSED' in str(err.value) or 'access' in str(err.value).lower(), \
        err.value
    # What the broker says, in its own words:
    log = subprocess.run(['rabbitmqctl', 'list_topic_permissions', '-p',
                          accounts['url'].rsplit('/', 1)[1]], capture_output=True, text=True,
                         timeout=60).stdout
    assert accounts['user'] in log
    with accounts['endpoint'].lock:
        assert accounts['endpoint'].calls == []


def test_known_limitation_amq_default_reaches_any_queue(accounts):
    """Not a feature: the documented limitation. A raw publish to the
    default exchange with the queue's name as routing key, allowed because
    replies need amq.default, runs cn-a's endpoint."""
    body = {'oslo.version': '2.0', 'oslo.message': json.dumps(
        {'method': 'get_host_state', 'args': {}, 'version': '1.1', 'namespace': None})}
    with kombu.Connection(accounts['url'].replace('rabbit://', 'amqp://', 1)) as conn:
        producer = conn.Producer(exchange=kombu.Exchange('', type='direct', passive=True))
        producer.publish(body, routing_key=f'{rpc.AGENT_TOPIC}.cn-a', serializer='json')
    wait_for(lambda: accounts['endpoint'].calls, 15,
             'the forged message to reach cn-a (the amq.default limitation)')
