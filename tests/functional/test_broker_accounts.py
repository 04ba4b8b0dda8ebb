"""Per-host broker accounts on the real RabbitMQ (issue 16), with what
they stop and what they do not.

A private vhost and a compute host's own account ``cn-b`` with the
RabbitMQ permissions and topic permissions doc/source/user/security.rst
gives (:func:`host_permissions` here is that text). The test's
administrative account plays the conductor's: it serves an agent endpoint
for host ``cn-a`` and the conductor's two real endpoints (operator and
reports, :mod:`kvmplace.conductor.endpoint`) over a manager that only
records. Shown:

* cn-b's account answers the conductor's calls (replies), gets its casts
  and fanouts, and its reports reach the conductor on
  ``kvmplace-conductor-reports``;
* through oslo.messaging, cn-b's account can neither send to cn-a's agent
  nor call (or cast) the conductor's operator methods: RabbitMQ refuses
  the publish (ACCESS_REFUSED, topic permission on the control exchange),
  and the endpoints never run; nor can it fan out to every agent;
* oslo.messaging sends RPC replies through RabbitMQ's default exchange
  (``amq.default``), which delivers to any queue by name and which topic
  permissions do not cover. An account without write access to
  ``amq.default`` is refused there - and then cannot answer a call
  either; so an agent's account keeps it, and *can* put a message in
  cn-a's queue or the conductor's that way. What closes that side door is
  message authentication (kvmplace.msgauth): every receiver here runs
  with ``[message_auth] required = true``, so such a message - unsigned,
  signed with cn-b's own key, or a conductor message meant for cn-b - is
  refused before any endpoint method runs, with one WARNING line, while
  the genuine signed traffic (conductor to agents, cn-b's reports, an
  operator's calls) still flows.
"""
from __future__ import annotations

import json
import pathlib
import shlex
import subprocess
import threading
import uuid as uuid_mod

import kombu
import oslo_messaging as messaging
import pytest

import kvmplace.conf
from kvmplace import msgauth, rpc
from kvmplace.agent import reporter
from kvmplace.conductor import endpoint as conductor_endpoint
from tests.functional.conftest import register_messaging_opts, wait_for

EXCHANGE = 'openstack'          # oslo.messaging's control_exchange default


def host_permissions(host: str, amq_default: bool = True) -> tuple[list[str], list[str]]:
    """(set_permissions regexes, set_topic_permissions regexes) of a
    compute host's account, exactly as security.rst gives them."""
    own = rf'kvmplace-agent|kvmplace-agent\.{host}'
    configure = rf'^(openstack|reply_.*|{own}|kvmplace-agent_fanout.*)$'
    default = r'amq\.default|' if amq_default else ''
    write = rf'^(openstack|{default}reply_.*|{own}|kvmplace-agent_fanout_.*)$'
    read = configure
    return ([configure, write, read],
            [EXCHANGE, r'^kvmplace-conductor-reports$', rf'^kvmplace-agent(\.{host})?$'])


def operator_permissions() -> tuple[list[str], list[str]]:
    """The same for an account that only calls the conductor (an
    operator's CLI, nova-scheduler's filter): no amq.default."""
    return ([r'^(openstack|reply_.*)$', r'^openstack$', r'^reply_.*$'],
            [EXCHANGE, r'^kvmplace-conductor$', r'^$'])


def _documented(account: str) -> tuple[list[str], list[str]]:
    """The permissions security.rst's rabbitmqctl lines give ``account``."""
    text = (pathlib.Path(__file__).parents[2] / 'doc/source/user/security.rst').read_text()
    found: dict[str, list[str]] = {}
    for line in text.replace('\\\n', ' ').splitlines():
        words = shlex.split(line) if line.strip().startswith('rabbitmqctl set_') else []
        if len(words) > 5 and words[4] == account:
            found[words[1]] = words[5:]
    return found.get('set_permissions', []), found.get('set_topic_permissions', [])


def test_the_tested_permissions_are_the_documented_ones():
    assert _documented('cn-b') == host_permissions('cn-b')
    assert _documented('operator') == operator_permissions()


def _ctl(*argv):
    return subprocess.run(['rabbitmqctl', *argv], check=True, capture_output=True,
                          timeout=60, text=True)


class Agent:
    target = messaging.Target(version='1.1')

    def __init__(self, name: str):
        self.name = name
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def get_host_state(self, ctxt):
        with self.lock:
            self.calls.append('get_host_state')
        return {'name': self.name}

    def migrate(self, ctxt, **kwargs):
        with self.lock:
            self.calls.append('migrate')
        return {'started': True}

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.calls)


class RecordingManager:
    """Stands in for ConductorManager behind the real endpoints: keeps the
    name and arguments of every method the endpoints forward."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)

        def record(ctxt, *args, **kwargs):
            with self.lock:
                self.calls.append((name, args))
            return {'recorded': name}
        return record

    def seen(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.calls]


HOSTS = ('cn-a', 'cn-b', 'cn-c')


@pytest.fixture(scope='module')
def keys(tmp_path_factory) -> pathlib.Path:
    """Message authentication keys: the conductor's, operator
    ``operator``'s and one per compute host (kvmplace.msgauth)."""
    d = tmp_path_factory.mktemp('keys')
    msgauth.create_keypair(str(d), 'conductor')
    msgauth.create_keypair(str(d / 'operators'), 'operator')
    for host in HOSTS:
        msgauth.create_keypair(str(d / 'hosts'), host)
    return d


def _sign_as(conf, keys: pathlib.Path, private: str) -> None:
    """Sign with ``private`` (a key file under ``keys``), trust the
    module's keys, and refuse anything unsigned."""
    for name, value in (('private_key_file', str(keys / private)),
                        ('conductor_public_key_file', str(keys / 'conductor.pub')),
                        ('operator_keys_dir', str(keys / 'operators')),
                        ('host_keys_dir', str(keys / 'hosts')),
                        ('required', True)):
        conf.set_override(name, value, group='message_auth')


def _account_conf(vhost: str, host: str, keys: pathlib.Path, amq_default: bool = True):
    user, password = f'{host}-{uuid_mod.uuid4().hex[:6]}', uuid_mod.uuid4().hex
    _ctl('add_user', user, password)
    perms, topic = operator_permissions() if host == 'operator' else \
        host_permissions(host, amq_default)
    _ctl('set_permissions', '-p', vhost, user, *perms)
    _ctl('set_topic_permissions', '-p', vhost, user, *topic)
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    url = f'rabbit://{user}:{password}@127.0.0.1:5672/{vhost}'
    conf.set_override('transport_url', url)
    if host == 'operator':
        _sign_as(conf, keys, 'operators/operator.key')
    else:
        conf.set_override('host', host, group='agent')
        _sign_as(conf, keys, f'hosts/{host}.key')
    return conf, url, user


def _drop(conf, user):
    transport = rpc._TRANSPORTS.pop(id(conf), None)
    if transport is not None:
        transport.cleanup()
    if user:
        subprocess.run(['rabbitmqctl', 'delete_user', user], capture_output=True, timeout=60)


@pytest.fixture(scope='module')
def operator_conf(broker_url, keys):
    """An operator's side (the administrative broker account): signs as
    ``operator:operator``."""
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    conf.set_override('transport_url', broker_url)
    _sign_as(conf, keys, 'operators/operator.key')
    yield conf
    _drop(conf, None)


@pytest.fixture(scope='module')
def accounts(broker_url, client_conf, keys, operator_conf):
    """client_conf plays the conductor: it signs with the conductor key,
    and its agent cn-a and conductor endpoints require signatures."""
    _sign_as(client_conf, keys, 'conductor.key')
    vhost = broker_url.rsplit('/', 1)[1]
    conf, url, user = _account_conf(vhost, 'cn-b', keys)
    cn_a, cn_b, manager = Agent('cn-a'), Agent('cn-b'), RecordingManager()
    servers = [
        rpc.get_server(rpc.AGENT_TOPIC, 'cn-a', [cn_a], conf=client_conf),
        rpc.get_server(rpc.AGENT_TOPIC, 'cn-b', [cn_b], conf=conf),   # cn-b's own account
        rpc.get_server(rpc.CONDUCTOR_TOPIC, 'c1',
                       [conductor_endpoint.ConductorEndpoint(manager)], conf=client_conf),
        rpc.get_server(rpc.CONDUCTOR_REPORTS_TOPIC, 'c1',
                       [conductor_endpoint.ReportsEndpoint(manager)], conf=client_conf),
    ]
    for server in servers:
        server.start()
    admin = rpc.get_client(rpc.AGENT_TOPIC, '1.1', conf=client_conf, timeout=10)
    for host in ('cn-a', 'cn-b'):
        wait_for(lambda: admin.prepare(server=host).call({}, 'get_host_state'), 30,
                 f'the {host} endpoint to answer the administrative account')
    for agent in (cn_a, cn_b):
        with agent.lock:
            agent.calls.clear()
    yield {'cn_a': cn_a, 'cn_b': cn_b, 'manager': manager, 'conf': conf, 'url': url,
           'user': user, 'vhost': vhost, 'admin': admin, 'client_conf': client_conf,
           'operator_conf': operator_conf, 'keys': keys}
    for server in servers:
        server.stop()
        server.wait()
    _drop(conf, user)


def _refused(url: str, topic: str, method: str, kwargs: dict, call: bool = False,
             **prepare) -> None:
    """Send as the account of ``url`` on a transport of its own (a refused
    publish closes the connection, and a shared transport would then
    report that instead) and check that RabbitMQ refused it."""
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    transport = messaging.get_rpc_transport(conf, url=url)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic=topic,
                                                                      version='1.0'),
                                          timeout=5)
        send = client.prepare(retry=0, **prepare)
        with pytest.raises(Exception) as err:     # noqa: PT011 - the driver's refusal
            (send.call if call else send.cast)({}, method, **kwargs)
        assert 'ACCESS_REFUSED' in str(err.value), err.value
    finally:
        transport.cleanup()


def test_a_host_account_answers_calls_and_gets_casts_and_fanouts(accounts):
    """Replies (through amq.default), casts and fanouts work for the
    documented permissions."""
    admin = accounts['admin']
    assert admin.prepare(server='cn-b').call({}, 'get_host_state') == {'name': 'cn-b'}
    admin.prepare(server='cn-b').cast({}, 'get_host_state')
    admin.prepare(fanout=True).cast({}, 'get_host_state')
    wait_for(lambda: len(accounts['cn_b'].seen()) >= 3, 15, 'call, cast and fanout at cn-b')


def test_a_host_accounts_reports_reach_the_conductor(accounts):
    notifier = reporter.ConductorNotifier(accounts['conf'])
    assert notifier.report_state({'name': 'cn-b'})
    assert notifier.migration_progress('m-1', {'phase': 'iterate'})
    assert notifier.migration_finished('m-1', {'status': 'completed'})
    wait_for(lambda: set(conductor_endpoint.REPORT_METHODS) <= set(
        accounts['manager'].seen()), 15, "cn-b's three casts at the reports endpoint")


def test_a_host_account_cannot_send_to_another_hosts_agent(accounts):
    url, before = accounts['url'], accounts['cn_a'].seen()
    _refused(url, rpc.AGENT_TOPIC, 'get_host_state', {}, server='cn-a')
    _refused(url, rpc.AGENT_TOPIC, 'get_host_state', {}, call=True, server='cn-a')
    _refused(url, rpc.AGENT_TOPIC, 'get_host_state', {}, fanout=True)
    log = _ctl('list_topic_permissions', '-p', accounts['vhost']).stdout
    assert accounts['user'] in log
    assert accounts['cn_a'].seen() == before


@pytest.mark.parametrize('method, kwargs', [
    ('migrate', {'instance': 'vm1', 'dest': 'cn-b'}),
    ('drain', {'host': 'cn-a'}),
    ('abort_migration', {'migration_id': 'm-1'}),
    ('set_maintenance', {'host': 'cn-a', 'on': True}),
])
def test_a_host_account_cannot_call_the_conductors_operator_methods(accounts, method, kwargs):
    _refused(accounts['url'], rpc.CONDUCTOR_TOPIC, method, kwargs, call=True)
    _refused(accounts['url'], rpc.CONDUCTOR_TOPIC, method, kwargs)
    # The same method from the conductor's side of the bus is served:
    # the refusal above is the account's, not a missing endpoint.
    operator = rpc.get_client(rpc.CONDUCTOR_TOPIC, '1.0', conf=accounts['operator_conf'],
                              timeout=10)
    assert operator.call({}, method, **kwargs) == {'recorded': method}
    with accounts['manager'].lock:
        calls = [args for name, args in accounts['manager'].calls if name == method]
    assert len(calls) == 1


def _forge(url: str, queue: str, method: str, args: dict, ctxt: dict | None = None) -> None:
    """A raw publish through the default exchange to ``queue``, in
    oslo.messaging's message format (a cast; the context's keys as
    ``_context_<key>``)."""
    message = {'method': method, 'args': args, 'version': '1.0', 'namespace': None}
    message.update({f'_context_{key}': value for key, value in (ctxt or {}).items()})
    body = {'oslo.version': '2.0', 'oslo.message': json.dumps(message)}
    with kombu.Connection(url.replace('rabbit://', 'amqp://', 1)) as conn:
        producer = conn.Producer(exchange=kombu.Exchange('', type='direct', passive=True))
        producer.publish(body, routing_key=queue, serializer='json')
        try:
            conn.drain_events(timeout=1)     # an asynchronous channel error arrives here
        except TimeoutError:
            pass


def _signed(keys: pathlib.Path, private: str, signer: str, topic: str, server, method: str,
            args: dict) -> dict:
    """The context of a message signed with ``private`` as ``signer``."""
    key = msgauth.load_private_key(str(keys / private))
    env = msgauth.Signer(signer, key).envelope(topic, server, None, method, '1.0', args)
    return {msgauth.CTXT_KEY: env}


MIGRATE = {'migration_id': '6a1f0c0e-0000-4000-8000-000000000001', 'instance': 'vm1',
           'dest_host': 'cn-b', 'dest_uri': 'qemu+tcp://cn-b/system', 'migrate_uri': None,
           'dest_cpus': None, 'policy': {}}


def test_amq_default_forgeries_are_refused_by_message_authentication(accounts, caplog):
    """The side door of amq.default stays open at the broker - a raw
    publish with a queue's name as routing key, allowed because replies
    need amq.default, lands in cn-a's queue and the conductor's - but
    every receiver refuses what cn-b's account can forge there: nothing
    unsigned, nothing signed with cn-b's own key (a host may not call
    agents or operator methods), no conductor message meant for cn-b.
    No endpoint method runs; each refusal is one WARNING line."""
    keys, url = accounts['keys'], accounts['url']
    cn_a_queue = f'{rpc.AGENT_TOPIC}.cn-a'
    before_a, before_ops = len(accounts['cn_a'].seen()), list(accounts['manager'].seen())
    caplog.set_level('WARNING', logger='kvmplace.msgauth')
    forgeries = [
        (cn_a_queue, 'migrate', MIGRATE, None, 'unsigned message'),
        (cn_a_queue, 'migrate', MIGRATE,
         _signed(keys, 'hosts/cn-b.key', 'host:cn-b', rpc.AGENT_TOPIC, 'cn-a', 'migrate',
                 MIGRATE), 'unknown signer host:cn-b'),   # agents trust the conductor only
        (cn_a_queue, 'migrate', MIGRATE,            # cn-b's key, the conductor's name
         _signed(keys, 'hosts/cn-b.key', 'conductor', rpc.AGENT_TOPIC, 'cn-a', 'migrate',
                 MIGRATE), 'bad signature'),
        (cn_a_queue, 'migrate', MIGRATE,            # a conductor message cn-b received
         _signed(keys, 'conductor.key', 'conductor', rpc.AGENT_TOPIC, 'cn-b', 'migrate',
                 MIGRATE), 'signed for server cn-b, not cn-a'),
        (rpc.CONDUCTOR_TOPIC, 'drain', {'host': 'cn-a'}, None, 'unsigned message'),
        (rpc.CONDUCTOR_TOPIC, 'drain', {'host': 'cn-a'},
         _signed(keys, 'hosts/cn-b.key', 'host:cn-b', rpc.CONDUCTOR_TOPIC, None, 'drain',
                 {'host': 'cn-a'}), 'host:cn-b may not call the operator topic'),
        (rpc.CONDUCTOR_REPORTS_TOPIC, 'report_state', {'host_state': {'name': 'cn-a'}},
         _signed(keys, 'hosts/cn-b.key', 'host:cn-b', rpc.CONDUCTOR_REPORTS_TOPIC, None,
                 'report_state', {'host_state': {'name': 'cn-a'}}),
         'host:cn-b may not report the state of host cn-a'),
    ]
    for queue, method, args, ctxt, _ in forgeries:
        _forge(url, queue, method, args, ctxt)

    def refusals():
        return [r.getMessage() for r in caplog.records
                if r.name == 'kvmplace.msgauth' and 'refused' in r.getMessage()]
    wait_for(lambda: len(refusals()) >= len(forgeries), 15,
             'every forged message to be refused')
    lines = refusals()
    assert len(lines) == len(forgeries), lines
    for _, method, _, _, reason in forgeries:
        assert any(f'method {method}: {reason}' in line for line in lines), (reason, lines)
    assert len(accounts['cn_a'].seen()) == before_a
    assert accounts['manager'].seen() == before_ops
    # The genuine, signed traffic still flows: the conductor to cn-a, an
    # operator to the conductor (cn-b's reports: the test above).
    assert accounts['admin'].prepare(server='cn-a').call({}, 'get_host_state') == \
        {'name': 'cn-a'}
    operator = rpc.get_client(rpc.CONDUCTOR_TOPIC, '1.0', conf=accounts['operator_conf'],
                              timeout=10)
    assert operator.call({}, 'list_drains') == {'recorded': 'list_drains'}


def test_an_unsigned_call_gets_the_refusal_as_its_answer(accounts):
    """Even on the administrative account: the caller of an unsigned call
    gets MessageAuthFailed, and the endpoint never runs."""
    before = len(accounts['cn_a'].seen())
    unsigned = messaging.get_rpc_client(rpc.get_transport(accounts['client_conf']),
                                        messaging.Target(topic=rpc.AGENT_TOPIC,
                                                         version='1.0', server='cn-a'),
                                        timeout=10)
    with pytest.raises(msgauth.MessageAuthFailed, match='unsigned message'):
        unsigned.call({}, 'get_host_state')
    assert len(accounts['cn_a'].seen()) == before


def test_without_amq_default_the_forgery_is_refused_and_so_are_replies(accounts):
    """Why the documented permissions keep amq.default: RabbitMQ checks a
    publish to the default exchange as write access to ``amq.default``, so
    an account without it is refused there - but oslo.messaging's agent
    answers a call by publishing the reply to that same exchange, so the
    caller never gets it. Casts still arrive."""
    conf, url, user = _account_conf(accounts['vhost'], 'cn-c', accounts['keys'],
                                    amq_default=False)
    cn_c = Agent('cn-c')
    server = rpc.get_server(rpc.AGENT_TOPIC, 'cn-c', [cn_c], conf=conf)
    server.start()
    try:
        with pytest.raises(Exception) as err:     # noqa: PT011 - kombu's refusal
            _forge(url, f'{rpc.AGENT_TOPIC}.cn-a', 'get_host_state', {})
        assert 'ACCESS_REFUSED' in str(err.value) and 'amq.default' in str(err.value)
        admin = rpc.get_client(rpc.AGENT_TOPIC, '1.1', conf=accounts['client_conf'],
                               timeout=5)
        wait_for(lambda: (admin.prepare(server='cn-c').cast({}, 'get_host_state'),
                          cn_c.seen())[1], 15, 'a cast to reach cn-c')
        before = len(cn_c.seen())
        with pytest.raises(messaging.MessagingTimeout):
            admin.prepare(server='cn-c').call({}, 'get_host_state')
        wait_for(lambda: len(cn_c.seen()) > before, 5,
                 'the call to run at cn-c (its reply is what was refused)')
    finally:
        server.stop()
        server.wait()
        _drop(conf, user)


def test_an_operator_account_calls_the_conductor_without_amq_default(accounts):
    """An account that only calls needs no amq.default: its replies come
    from the conductor's account. It may not report host states."""
    conf, url, user = _account_conf(accounts['vhost'], 'operator', accounts['keys'])
    try:
        client = rpc.get_client(rpc.CONDUCTOR_TOPIC, '1.0', conf=conf, timeout=10)
        assert client.call({}, 'list_hosts') == {'recorded': 'list_hosts'}
        with pytest.raises(Exception) as err:     # noqa: PT011 - kombu's refusal
            _forge(url, f'{rpc.AGENT_TOPIC}.cn-a', 'get_host_state', {})
        assert 'ACCESS_REFUSED' in str(err.value)
        _refused(url, rpc.CONDUCTOR_REPORTS_TOPIC, 'report_state', {'host_state': {}})
    finally:
        _drop(conf, user)
