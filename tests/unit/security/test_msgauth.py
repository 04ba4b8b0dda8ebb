"""Message authentication (kvmplace.msgauth, issue 16): who may send what
to which receiver, checked before any endpoint method runs.

The Verifier is tested on the message as the receiver sees it (context
and message dicts after oslo.messaging's JSON); the whole path - signing
client wrapper, AuthDispatcher, refusal reaching the caller - over a real
oslo.messaging RPC server on the in-process fake:// transport.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmplace.conf
from kvmplace import msgauth, rpc
from kvmplace.exception import ConfigError
from tests.unit.agent.test_rpc import _register_messaging_opts

NOW = 1_800_000_000


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    """One key pair per role: the conductor, operator alice, hosts h1, h2."""
    d = tmp_path_factory.mktemp('keys')
    out = {}
    for sub, name in (('', 'conductor'), ('operators', 'alice'), ('hosts', 'h1'),
                      ('hosts', 'h2'), ('operators', 'mallory')):
        private, public = msgauth.create_keypair(str(d / sub), name)
        out[name] = (private, public)
    os.remove(out['mallory'][1])          # mallory's key is trusted nowhere
    return d, out


def _signer(keys, name, role_name, clock=lambda: NOW):
    return msgauth.Signer(role_name, msgauth.load_private_key(keys[1][name][0]), clock)


def _verifier(keys, kind, topic, server='h1', required=True, skew=60, clock=lambda: NOW):
    d, k = keys
    trusted = {'conductor': msgauth.load_public_key(k['conductor'][1], 'x')}
    trusted.update(msgauth.load_key_dir(str(d / 'operators'), 'operator:', 'x'))
    trusted.update(msgauth.load_key_dir(str(d / 'hosts'), 'host:', 'x'))
    return msgauth.Verifier(kind, topic, server, trusted, required, skew,
                            ('report_state', 'migration_progress', 'migration_finished'),
                            clock)


def _wire(signer, topic, server, method, args, version='1.0', namespace=None):
    """(ctxt, message) as the receiver gets them."""
    env = signer.envelope(topic, server, namespace, method, version, args)
    ctxt = json.loads(json.dumps({msgauth.CTXT_KEY: env}))
    message = {'method': method, 'args': msgauth.wire_args(args), 'version': version}
    if namespace is not None:
        message['namespace'] = namespace
    return ctxt, message


MIGRATE = {'migration_id': 'm1', 'instance': 'vm1', 'dest_host': 'h2', 'dest_uri': 'u',
           'migrate_uri': None, 'dest_cpus': '0-3', 'policy': {'max_downtime_ms': 300}}


def test_round_trip_conductor_to_agent(keys):
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, 'h1',
                      'migrate', MIGRATE)
    assert _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC).check(ctxt, msg) == 'conductor'


def test_round_trip_fanout_and_operator_and_report(keys):
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, None,
                      'get_host_state', {})
    assert _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC).check(ctxt, msg) == 'conductor'
    ctxt, msg = _wire(_signer(keys, 'alice', 'operator:alice'), rpc.CONDUCTOR_TOPIC, None,
                      'drain', {'host': 'h1', 'dry_run': False})
    assert _verifier(keys, msgauth.OPERATOR, rpc.CONDUCTOR_TOPIC, 'c1').check(
        ctxt, msg) == 'operator:alice'
    ctxt, msg = _wire(_signer(keys, 'h1', 'host:h1'), rpc.CONDUCTOR_REPORTS_TOPIC, None,
                      'report_state', {'host_state': {'name': 'h1', 'cpus': (0, 1)}})
    assert _verifier(keys, msgauth.REPORTS, rpc.CONDUCTOR_REPORTS_TOPIC, 'c1').check(
        ctxt, msg) == 'host:h1'


def _refused(verifier, ctxt, msg, reason: str):
    with pytest.raises(msgauth.Refused) as err:
        verifier.check(ctxt, msg)
    assert reason in str(err.value), err.value


@given(field=st.sampled_from(['args', 'method', 'version', 'namespace']),
       value=st.one_of(st.text(max_size=20), st.integers(), st.none()))
@settings(max_examples=60, deadline=None)
def test_any_tampering_breaks_the_signature(keys, field, value):
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, 'h1',
                      'migrate', MIGRATE)
    before = dict(msg, args=dict(msg['args']))
    if field == 'args':
        msg['args'] = dict(msg['args'], dest_host=value)
    else:
        msg[field] = value
    if all(msg.get(k) == before.get(k) for k in set(msg) | set(before)):
        return                                       # no change made
    with pytest.raises(msgauth.Refused):
        _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC).check(ctxt, msg)


def test_tampered_envelope_fields_are_refused(keys):
    verifier = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC)
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, 'h2',
                      'migrate', MIGRATE)
    _refused(verifier, ctxt, msg, 'signed for server h2, not h1')
    ctxt['kvmplace_auth']['server'] = 'h1'
    _refused(verifier, ctxt, msg, 'bad signature')       # redirected to h1
    ctxt['kvmplace_auth']['server'] = None
    _refused(verifier, ctxt, msg, 'bad signature')       # made a fanout
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, 'h1',
                      'migrate', MIGRATE)
    ctxt['kvmplace_auth']['ts'] += 1
    _refused(verifier, ctxt, msg, 'bad signature')
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.CONDUCTOR_TOPIC, 'h1',
                      'migrate', MIGRATE)
    _refused(verifier, ctxt, msg, 'bad signature')       # signed for another topic


def test_wrong_roles_are_refused(keys):
    h1 = _signer(keys, 'h1', 'host:h1')
    agent = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC, 'h2')
    _refused(agent, *_wire(h1, rpc.AGENT_TOPIC, 'h2', 'migrate', MIGRATE),
             'host:h1 may not call the agents')
    operator = _verifier(keys, msgauth.OPERATOR, rpc.CONDUCTOR_TOPIC, 'c1')
    _refused(operator, *_wire(h1, rpc.CONDUCTOR_TOPIC, None, 'drain', {'host': 'h2'}),
             'host:h1 may not call the operator topic')
    _refused(operator, *_wire(_signer(keys, 'conductor', 'conductor'), rpc.CONDUCTOR_TOPIC,
                              None, 'drain', {'host': 'h2'}),
             'conductor may not call the operator topic')
    reports = _verifier(keys, msgauth.REPORTS, rpc.CONDUCTOR_REPORTS_TOPIC, 'c1')
    _refused(reports, *_wire(h1, rpc.CONDUCTOR_REPORTS_TOPIC, None, 'report_state',
                             {'host_state': {'name': 'h2'}}),
             'host:h1 may not report the state of host h2')
    _refused(reports, *_wire(_signer(keys, 'alice', 'operator:alice'),
                             rpc.CONDUCTOR_REPORTS_TOPIC, None, 'report_state',
                             {'host_state': {'name': 'h1'}}), 'compute hosts only')
    # A host signing with its own key under another host's name, or a key
    # no receiver trusts:
    _refused(reports, *_wire(_signer(keys, 'h1', 'host:h2'), rpc.CONDUCTOR_REPORTS_TOPIC,
                             None, 'report_state', {'host_state': {'name': 'h2'}}),
             'bad signature')
    _refused(operator, *_wire(_signer(keys, 'mallory', 'operator:mallory'),
                              rpc.CONDUCTOR_TOPIC, None, 'drain', {'host': 'h2'}),
             'unknown signer operator:mallory')


def test_reports_on_the_operator_topic_follow_the_host_rule(keys):
    """[conductor] reports_on_operator_topic: a host may cast its reports
    there, and still only about itself."""
    operator = _verifier(keys, msgauth.OPERATOR, rpc.CONDUCTOR_TOPIC, 'c1')
    h1 = _signer(keys, 'h1', 'host:h1')
    assert operator.check(*_wire(h1, rpc.CONDUCTOR_TOPIC, None, 'report_state',
                                 {'host_state': {'name': 'h1'}})) == 'host:h1'
    _refused(operator, *_wire(h1, rpc.CONDUCTOR_TOPIC, None, 'report_state',
                              {'host_state': {'name': 'h2'}}), 'may not report')


def test_a_replay_is_refused(keys):
    verifier = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC)
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor'), rpc.AGENT_TOPIC, 'h1',
                      'migrate', MIGRATE)
    assert verifier.check(json.loads(json.dumps(ctxt)), msg) == 'conductor'
    _refused(verifier, ctxt, msg, 'nonce already used')


def test_nonces_are_forgotten_after_the_window_and_bounded():
    cache = msgauth.ReplayCache(120, most=3)
    for i in range(3):
        cache.add(('s', str(i)), 0)
    with pytest.raises(msgauth.Refused, match='replay cache full'):
        cache.add(('s', '3'), 100)
    cache.add(('s', '3'), 121)               # the first three expired
    assert len(cache) == 1


@pytest.mark.parametrize('offset, ok', [(-61, False), (-60, True), (59, True), (61, False)])
def test_clock_skew(keys, offset, ok):
    ctxt, msg = _wire(_signer(keys, 'conductor', 'conductor', lambda: NOW + offset),
                      rpc.AGENT_TOPIC, 'h1', 'get_host_state', {})
    verifier = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC)
    if ok:
        assert verifier.check(ctxt, msg) == 'conductor'
    else:
        _refused(verifier, ctxt, msg, 'max_clock_skew_seconds 60')


def test_unsigned_messages_depend_on_required(keys):
    msg = {'method': 'migrate', 'args': MIGRATE}
    assert _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC, required=False).check(
        {}, msg) is None
    _refused(_verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC), {}, msg, 'unsigned message')
    # A signed message is verified even when signatures are not required.
    ctxt, msg = _wire(_signer(keys, 'h1', 'host:h1'), rpc.AGENT_TOPIC, 'h1', 'migrate',
                      MIGRATE)
    _refused(_verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC, required=False), ctxt, msg,
             'may not call the agents')


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                               st.text(max_size=100)),
                     lambda inner: st.lists(inner, max_size=5) |
                     st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=30)
_ENVELOPE = st.fixed_dictionaries({
    'signer': st.one_of(st.sampled_from(['conductor', 'host:h1']), _JSON),
    'server': st.one_of(st.none(), st.just('h1'), _JSON),
    'ts': st.one_of(st.just(NOW), _JSON),
    'nonce': st.one_of(st.just('0' * 32), st.text(max_size=40), _JSON),
    'sig': st.one_of(st.just(base64.b64encode(b'x' * 64).decode()), _JSON)})


@given(env=st.one_of(_JSON, _ENVELOPE))
@settings(max_examples=300, deadline=None)
def test_garbage_envelopes_are_refused_in_one_line(keys, env):
    verifier = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC)
    with pytest.raises(msgauth.Refused) as err:
        verifier.check({msgauth.CTXT_KEY: env}, {'method': 'migrate', 'args': MIGRATE})
    assert '\n' not in str(err.value) and len(str(err.value)) < 200


def test_an_oversized_envelope_costs_nothing(keys):
    """A 20 MB signer, nonce or signature is refused on its length alone."""
    verifier = _verifier(keys, msgauth.AGENT, rpc.AGENT_TOPIC)
    big = 'A' * 20_000_000
    for field in ('signer', 'nonce', 'sig', 'server'):
        env = {'signer': 'conductor', 'server': None, 'ts': NOW, 'nonce': '0' * 32,
               'sig': base64.b64encode(b'x' * 64).decode(), field: big}
        started = time.perf_counter()
        with pytest.raises(msgauth.Refused, match=f'malformed envelope: {field}'):
            verifier.check({msgauth.CTXT_KEY: env}, {'method': 'migrate', 'args': {}})
        assert time.perf_counter() - started < 0.05


# -- keys ------------------------------------------------------------------------

def test_created_keys_are_private_and_never_overwritten(tmp_path):
    private, public = msgauth.create_keypair(str(tmp_path), 'lab-h1')
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert open(public).read().startswith('-----BEGIN PUBLIC KEY-----')
    with pytest.raises(ConfigError, match='exists; not overwritten'):
        msgauth.create_keypair(str(tmp_path), 'lab-h1')


def test_raw_and_base64_public_keys_load(tmp_path, keys):
    from cryptography.hazmat.primitives import serialization
    key = msgauth.load_private_key(keys[1]['conductor'][0]).public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / 'raw.pub').write_bytes(raw)
    (tmp_path / 'b64.pub').write_text(base64.b64encode(raw).decode() + '\n')
    loaded = msgauth.load_key_dir(str(tmp_path), 'host:', 'host_keys_dir')
    assert set(loaded) == {'host:raw', 'host:b64'}


@pytest.mark.parametrize('content', [b'', b'garbage', b'-----BEGIN PUBLIC KEY-----\nxx\n',
                                     b'A' * 100_000])
def test_bad_key_files_are_one_line_errors_naming_the_option(tmp_path, content):
    path = tmp_path / 'k.pub'
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        msgauth.load_public_key(str(path), 'conductor_public_key_file')
    assert str(err.value).startswith(f'[message_auth] conductor_public_key_file: {path}: ')
    assert '\n' not in str(err.value)
    with pytest.raises(ConfigError, match=r'^\[message_auth\] private_key_file: .*missing'):
        msgauth.load_private_key(str(tmp_path / 'missing'))


def test_required_without_trusted_keys_is_a_config_error():
    conf = kvmplace.conf.new_conf()
    conf.set_override('required', True, group='message_auth')
    with pytest.raises(ConfigError, match='conductor_public_key_file: required'):
        msgauth.verifier_for(conf, rpc.AGENT_TOPIC, 'h1')
    with pytest.raises(ConfigError, match='host_keys_dir: required'):
        msgauth.verifier_for(conf, rpc.CONDUCTOR_REPORTS_TOPIC, 'c1')


def test_the_role_follows_the_topic(keys):
    conf = kvmplace.conf.new_conf()
    conf.set_override('private_key_file', keys[1]['alice'][0], group='message_auth')
    conf.set_override('host', 'h1', group='agent')
    assert msgauth.client_signer(conf, rpc.AGENT_TOPIC).name == 'conductor'
    assert msgauth.client_signer(conf, rpc.CONDUCTOR_REPORTS_TOPIC).name == 'host:h1'
    assert msgauth.client_signer(conf, rpc.CONDUCTOR_TOPIC).name == 'operator:alice'


# -- through a real RPC server (fake:// transport) --------------------------------

class Endpoint:
    import oslo_messaging as _m
    target = _m.Target(version='1.1')

    def __init__(self):
        self.calls = []

    def migrate(self, ctxt, **kwargs):
        self.calls.append(('migrate', msgauth.signer_of(ctxt), kwargs))
        return {'started': True}


def _conf(keys, private=None, required=True):
    conf = kvmplace.conf.new_conf()
    _register_messaging_opts(conf)
    conf.set_override('transport_url', 'fake://')
    conf.set_override('required', required, group='message_auth')
    conf.set_override('conductor_public_key_file', keys[1]['conductor'][1],
                      group='message_auth')
    if private:
        conf.set_override('private_key_file', keys[1][private][0], group='message_auth')
    return conf


@pytest.fixture
def agent_server(keys):
    conf = _conf(keys)
    endpoint = Endpoint()
    server = rpc.get_server(rpc.AGENT_TOPIC, 'h1', [endpoint], conf=conf)
    server.start()
    yield conf, endpoint
    server.stop()
    server.wait()
    rpc._TRANSPORTS.pop(id(conf)).cleanup()


def _client(conf, keys, private=None):
    """A client on the server's fake transport (fake:// is per transport)."""
    client_conf = _conf(keys, private)
    rpc._TRANSPORTS[id(client_conf)] = rpc.get_transport(conf)
    return rpc.get_client(rpc.AGENT_TOPIC, '1.0', conf=client_conf, timeout=5).prepare(
        server='h1'), client_conf


def test_signed_calls_run_and_forged_ones_do_not(agent_server, keys, caplog):
    conf, endpoint = agent_server
    good, good_conf = _client(conf, keys, 'conductor')
    assert good.call({}, 'migrate', instance='vm1') == {'started': True}
    assert endpoint.calls == [('migrate', 'conductor', {'instance': 'vm1'})]
    caplog.set_level(logging.WARNING, logger='kvmplace.msgauth')
    for private in (None, 'h2'):
        bad, bad_conf = _client(conf, keys, private)
        with pytest.raises(msgauth.MessageAuthFailed) as err:
            bad.call({}, 'migrate', instance='vm1')
        assert str(err.value).startswith('message authentication failed: ')
        bad.cast({}, 'migrate', instance='vm1')
        rpc._TRANSPORTS.pop(id(bad_conf))
    good.call({'kvmplace_signer': 'conductor'}, 'migrate', instance='vm2')
    rpc._TRANSPORTS.pop(id(good_conf))
    assert [c[2]['instance'] for c in endpoint.calls] == ['vm1', 'vm2']
    deadline = time.monotonic() + 5
    while True:           # the last cast may still be on its way
        refusals = [r.getMessage() for r in caplog.records if 'refused' in r.getMessage()]
        if len(refusals) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(refusals) == 4, refusals
    assert [c[2]['instance'] for c in endpoint.calls] == ['vm1', 'vm2']
    assert 'signer (unsigned), method migrate: unsigned message' in refusals[0]
    assert 'signer conductor, method migrate: bad signature' in refusals[2]


def test_a_client_supplied_signer_is_not_believed(keys):
    """The endpoint's view of the signer is the dispatcher's, not the
    context's: an unsigned message claiming to be the conductor's is
    served (required=false) as unsigned."""
    conf = _conf(keys, required=False)
    endpoint = Endpoint()
    server = rpc.get_server(rpc.AGENT_TOPIC, 'h1', [endpoint], conf=conf)
    server.start()
    try:
        client, client_conf = _client(conf, keys)
        client.call({'kvmplace_signer': 'conductor'}, 'migrate')
        rpc._TRANSPORTS.pop(id(client_conf))
        assert endpoint.calls == [('migrate', None, {})]
    finally:
        server.stop()
        server.wait()
        rpc._TRANSPORTS.pop(id(conf)).cleanup()


# -- services refuse to start on a bad key, in one line ---------------------------

@pytest.mark.parametrize('service, options', [
    ('kvmplace.cmd.agent', {'agent': {'libvirt_uri': 'test:///default', 'host': 'h1'},
                            'message_auth': {'private_key_file': '{bad}'}}),
    ('kvmplace.cmd.agent', {'agent': {'libvirt_uri': 'test:///default', 'host': 'h1'},
                            'message_auth': {'conductor_public_key_file': '{bad}'}}),
    ('kvmplace.cmd.conductor', {'database': {'connection': 'sqlite:///{tmp}/c.sqlite'},
                                'message_auth': {'host_keys_dir': '{tmp}/missing'}}),
    ('kvmplace.cmd.conductor', {'database': {'connection': 'sqlite:///{tmp}/c.sqlite'},
                                'message_auth': {'required': 'true'}}),
])
def test_a_service_with_a_bad_key_stops_with_one_line(tmp_path, service, options):
    import subprocess
    import sys
    bad = tmp_path / 'bad.key'
    bad.write_text('not a key\n')
    lines = ['[DEFAULT]', 'transport_url = fake://']
    for section, opts in options.items():
        lines.append(f'[{section}]')
        lines += [f'{k} = {v.format(bad=bad, tmp=tmp_path)}' for k, v in opts.items()]
    config = tmp_path / 'service.conf'
    config.write_text('\n'.join(lines) + '\n')
    proc = subprocess.run([sys.executable, '-W', 'ignore', '-c',
                           f'import sys; from {service} import main; sys.exit(main())',
                           '--config-file', str(config)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if ': error: ' in line]
    assert len(errors) == 1, proc.stderr
    option = next(iter(options['message_auth']))
    assert '[message_auth] ' in errors[0]
    assert (option if option != 'required' else 'host_keys_dir: required') in errors[0]
