"""The conductor's answers for nova-scheduler (kvmplace.conductor.decisions).

Real SQLite database and real scheduler plugins; the Nova side is the
request dict kvmplace.nova.adapter sends. Nova itself runs in tests/nova.
"""
from __future__ import annotations

import uuid as uuidlib

import oslo_messaging as messaging
import pytest
from oslo_config import cfg
from oslo_messaging.rpc.dispatcher import NoSuchMethod, UnsupportedVersion

import kvmplace.conf as kconf
from kvmplace import rpc
from kvmplace.conductor import decisions as dec
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import facts as facts_db
from kvmplace.exception import InvalidInput, NotFound
from tests.functional.conftest import register_messaging_opts

UUID = '6f70656e-7374-6163-6b20-342065766572'


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now


def host(name, link_mbps=10000, health=1.0):
    return {'name': name, 'link_mbps': link_mbps, 'vcpus': 32, 'vcpus_used': 0,
            'memory_mib': 65536, 'memory_used_mib': 0,
            'numa': [{'id': i, 'cpus': f'{16 * i}-{16 * i + 15}', 'memory_mib': 32768,
                      'free_memory_mib': 32768, 'bandwidth_mibps': 27000 * health,
                      'baseline_mibps': 27000} for i in range(2)]}


HOSTS = [host('h1'), host('h2', link_mbps=1000), host('h3'), host('h4', health=0.2)]
LINKS = [{'a': h['name'], 'b': 'tor', 'mbps': h['link_mbps']} for h in HOSTS]


def request(**over):
    req = {'instance_uuid': UUID, 'operation': 'live-migrate', 'source': 'h1',
           'memory_mib': 2048, 'vcpus': 2, 'candidates': ['h2', 'h3', 'h4'],
           'filters': ['numa_health', 'link_speed', 'convergence'],
           'weighers': ['migration_time', 'path_bandwidth', 'numa_health'],
           'dirty_rate_mibps': 10.0, 'max_fact_age_seconds': 600.0, 'request_id': 'req-1'}
    req.update(over)
    return req


@pytest.fixture
def nova(tmp_path):
    conf = kconf.new_conf()
    db = db_api.Database(f'sqlite:///{tmp_path}/d.sqlite')
    db.upgrade()
    clock = Clock()
    d = dec.NovaDecisions(conf, db, clock=clock)
    d.import_hosts(HOSTS, LINKS, 'cloud.json')
    return d, db, clock


def test_ranks_by_path_rejects_degraded_and_records(nova):
    d, _, _ = nova
    answer = d.decide(request())
    hosts = answer['hosts']
    assert hosts['h3'][0] and hosts['h2'][0]
    assert hosts['h3'][1] > hosts['h2'][1]            # 10 GbE beats 1 GbE
    assert hosts['h4'][:3] == [False, 0.0, 'numa_health']
    assert '20%' in hosts['h4'][3]
    rec = d.get_decision(answer['decision_id'][:8])
    assert rec['best'] == 'h3' and rec['passed'] == 2 and rec['candidates'] == 3
    assert [r['host'] for r in rec['result']['ranked']] == ['h3', 'h2']
    assert d.list_decisions(UUID)[0]['id'] == answer['decision_id']


def test_dirty_rate_above_the_path_does_not_converge(nova):
    d, _, _ = nova
    hosts = d.decide(request(dirty_rate_mibps=100.0))['hosts']
    assert hosts['h2'][2] == 'convergence'
    assert hosts['h3'][0]


def test_kvmplaces_own_migration_passes_its_host(nova):
    # With [conductor] driver = nova, kvmplace asks Nova to live-migrate to
    # the host it chose and Nova's scheduler asks this filter about it: the
    # planned host passes, even where the filters say no now (h4 degraded
    # since the plan), and the decision says which migration planned it.
    d, db, _ = nova
    rec = db.create_migration('vm', 'h1', None, {}, instance_uuid=UUID)
    db.update_migration(rec['id'], status='migrating', dest='h4')
    answer = d.decide(request(candidates=['h4']))
    assert answer['hosts']['h4'][0] is True and answer['hosts']['h4'][2] is None
    shown = d.get_decision(answer['decision_id'])
    assert shown['best'] == 'h4'
    assert shown['result']['planned'] == {'migration_id': rec['id'], 'host': 'h4',
                                          'drain_id': None}
    assert shown['result']['overridden']['filter'] == 'numa_health'
    # Another guest's request is judged as ever.
    other = d.decide(request(instance_uuid=str(uuidlib.uuid4()), candidates=['h4']))
    assert other['hosts']['h4'][:3] == [False, 0.0, 'numa_health']
    # Once the migration has ended, its host is judged as ever too.
    db.update_migration(rec['id'], status='completed')
    assert d.decide(request(candidates=['h4']))['hosts']['h4'][0] is False


def test_stale_facts_are_unknown_not_healthy(nova):
    d, db, clock = nova
    clock.now += 700                                   # every import is now too old
    d.import_hosts([host('h1'), host('h3')], [], 'fresh.json')
    hosts = d.decide(request())['hosts']
    assert hosts['h4'][0] and hosts['h4'][2] == 'unknown'    # not judged healthy: unknown
    assert 'stale' in hosts['h4'][3]
    assert hosts['h2'][2] == 'unknown'
    # unknown hosts rank with the lowest weight, below the known one
    assert hosts['h4'][1] <= hosts['h3'][1]


def test_unknown_source_makes_every_candidate_unknown(nova):
    d, _, _ = nova
    hosts = d.decide(request(source='nowhere'))['hosts']
    assert all(v[0] and v[2] == 'unknown' for v in hosts.values())
    assert 'source host has no facts' in hosts['h3'][3]


def test_agent_report_overrides_import(nova):
    d, db, clock = nova
    db.report_host('h4', host('h4', health=1.0), clock.now)
    hosts = d.decide(request())['hosts']
    assert hosts['h4'][0] and hosts['h4'][2] is None
    facts = {f['name']: f for f in d.list_facts()}
    assert facts['h4']['origin'] == 'agent' and facts['h4']['also_imported']
    assert facts['h3']['origin'] == 'import'


def test_guest_reported_by_agent_gives_its_dirty_rate(nova):
    d, db, clock = nova
    src = host('h1')
    src['instances'] = [{'name': 'instance-0001', 'uuid': UUID, 'memory_mib': 2048,
                         'vcpus': 2, 'dirty_rate_mibps': 100.0}]
    db.report_host('h1', src, clock.now)
    hosts = d.decide(request(dirty_rate_mibps=0.0))['hosts']
    assert hosts['h2'][2] == 'convergence'             # the agent's 100 MiB/s, not 0


@pytest.mark.parametrize('field,value', [
    ('instance_uuid', 'vm1'), ('operation', 'reboot'), ('memory_mib', 0),
    ('candidates', 'h2'), ('candidates', ['h2'] * (dec.MAX_CANDIDATES + 1)),
    ('filters', ['ram']), ('weighers', ['free_ram']), ('dirty_rate_mibps', -1),
    ('filters', ['numa_health', 'numa_health'])])
def test_bad_request_names_the_field(nova, field, value):
    d, _, _ = nova
    with pytest.raises(InvalidInput) as err:
        d.decide(request(**{field: value}))
    assert err.value.field.startswith(f'request.{field}')


def test_import_refuses_bad_hosts(nova):
    d, _, _ = nova
    with pytest.raises(InvalidInput, match='host_state.memory_mib'):
        d.import_hosts([{'name': 'x', 'vcpus': 1, 'memory_mib': 'lots'}], [], None)
    with pytest.raises(NotFound):
        d.get_decision('0123456789')


def test_endpoint_serves_only_its_methods_in_its_namespace(nova):
    d, _, _ = nova
    public = {n for n in dir(dec.NovaEndpoint) if not n.startswith('_')} - {'target'}
    assert public == set(dec.RPC_METHODS)
    rpc_conf = cfg.ConfigOpts()
    register_messaging_opts(rpc_conf)
    transport = messaging.get_rpc_transport(rpc_conf, url='fake:///',
                                            allowed_remote_exmods=rpc.ALLOWED_EXMODS)
    topic = f'kvmplace-conductor-{uuidlib.uuid4().hex[:8]}'
    server = messaging.get_rpc_server(transport, messaging.Target(topic=topic, server='c1'),
                                      [dec.NovaEndpoint(d)])
    server.start()
    try:
        client = messaging.get_rpc_client(
            transport, messaging.Target(topic=topic, namespace=dec.NAMESPACE, version='1.0'),
            timeout=10)
        answer = client.call({}, 'decide', request=request())
        assert answer['hosts']['h4'][2] == 'numa_health'
        with pytest.raises(InvalidInput):
            client.call({}, 'decide', request=request(memory_mib=-5))
        with pytest.raises(NoSuchMethod):
            client.call({}, '_scheduler', filters=[], weighers=[])
        plain = messaging.get_rpc_client(transport, messaging.Target(topic=topic), timeout=10)
        with pytest.raises((NoSuchMethod, UnsupportedVersion)):   # outside its namespace
            plain.call({}, 'decide', request=request())
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_cached_facts_follow_new_reports_and_imports(nova):
    """Facts are parsed once and kept; a new report or import replaces them."""
    d, db, clock = nova
    assert d.decide(request())['hosts']['h4'][2] == 'numa_health'
    db.report_host('h4', host('h4', health=1.0), clock.now + 1)
    assert d.decide(request())['hosts']['h4'][2] is None
    db.report_host('h4', host('h4', health=0.2), clock.now + 2)
    assert d.decide(request())['hosts']['h4'][2] == 'numa_health'
    d.import_hosts([host('h2', link_mbps=10000)], [{'a': 'h2', 'b': 'tor', 'mbps': 10000}],
                   'upgrade.json')
    hosts = d.decide(request(dirty_rate_mibps=100.0))['hosts']
    assert hosts['h2'][0]                              # now on 10 GbE: converges


def test_hosts_list_says_where_facts_come_from(nova):
    d, db, clock = nova
    db.report_host('h4', host('h4', health=1.0), clock.now - 5)
    db.report_host('h9', host('h9'), clock.now - 2)
    rows = {r['name']: r for r in facts_db.with_origins(
        db, [{'name': 'h4', 'seconds_since_report': 5.0},
             {'name': 'h9', 'seconds_since_report': 2.0}], clock.now + 10)}
    assert rows['h4']['facts'] == 'agent (overrides import)'
    assert rows['h9']['facts'] == 'agent' and rows['h9']['facts_age_seconds'] == 2.0
    assert rows['h2']['facts'] == 'import' and rows['h2']['facts_age_seconds'] == 10.0
    assert rows['h2']['link_mbps'] == 1000 and rows['h2']['up'] is None
