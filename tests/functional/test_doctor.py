"""``kvmplace doctor`` names each induced fault in one line.

A real kvmplace-conductor runs on a private RabbitMQ vhost; "agents" are
report_state casts sent by the test through the conductor's own RPC client
(so their clocks and liveness can be chosen). Each fault is induced for
real: a closed broker port, a wrong broker password, a missing plugin, an
agent that stopped reporting, an agent whose clock is off, an unreachable
libvirt URI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from kvmplace.conductor import rpcapi
from tests.functional.conftest import wait_for

pytestmark = pytest.mark.timeout(300)


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def doctor(config: str, *extra: str) -> tuple[int, dict, str]:
    out = subprocess.run([_bin('kvmplace'), '--config-file', config, 'doctor', '--timeout', '3',
                          '-f', 'json', *extra], capture_output=True, text=True, timeout=180)
    return out.returncode, json.loads(out.stdout or '{}'), out.stderr


def check(result: dict, name: str) -> dict:
    return next(c for c in result['checks'] if c['check'] == name)


@pytest.fixture(scope='module')
def conductor_config(tmp_path_factory, broker_url):
    tmp = tmp_path_factory.mktemp('doctor')
    config = tmp / 'kvmplace.conf'
    config.write_text(f"""[DEFAULT]
transport_url = {broker_url}

[database]
connection = sqlite:///{tmp}/kvmplace.sqlite

[conductor]
host = doctor-conductor

[scheduler]
host_down_seconds = 5
""")
    log = open(tmp / 'conductor.log', 'wb')
    proc = subprocess.Popen([_bin('kvmplace-conductor'), '--config-file', str(config)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: doctor(str(config))[1].get('checks') and
             check(doctor(str(config))[1], 'conductor')['ok'], 60, 'the conductor', 1.0)
    yield str(config), tmp
    proc.terminate()
    proc.wait(20)
    log.close()


def _report(client_conf, name: str, reported_at: float) -> None:
    api = rpcapi.ConductorAPI(conf=client_conf)
    api.report_state({}, {'name': name, 'link_mbps': 10000, 'vcpus': 2, 'memory_mib': 1024,
                          'numa': [], 'instances': [], 'reported_at': reported_at,
                          'libvirt_uri': 'test:///default'})


def test_healthy_cluster_passes(conductor_config, client_conf):
    config, _ = conductor_config

    def healthy():
        # A live agent reports every few seconds; host_down_seconds is 5.
        _report(client_conf, 'doc-ok', time.time())
        code, result, _ = doctor(config)
        c = next((c for c in result.get('checks', []) if c['check'] == 'agent doc-ok'), None)
        return result if c and c['ok'] else None
    result = wait_for(healthy, 60, 'the report of doc-ok', 0.5)
    for name in ('plugins', 'database', 'broker', 'broker-login', 'conductor'):
        assert check(result, name)['ok'], result


def test_agent_not_reporting_and_clock_skew(conductor_config, client_conf):
    config, _ = conductor_config
    _report(client_conf, 'doc-quiet', time.time())
    _report(client_conf, 'doc-skewed', time.time() + 120)   # its clock runs 2 min ahead
    # doc-quiet never reports again: after host_down_seconds (5) it is down.
    def quiet():
        _report(client_conf, 'doc-skewed', time.time() + 120)
        code, result, _ = doctor(config)
        c = next((c for c in result['checks'] if c['check'] == 'agent doc-quiet'), None)
        return (code, result) if c and not c['ok'] else None
    code, result = wait_for(quiet, 60, 'doc-quiet to be reported down', 1.0)
    assert code == 1
    assert 'not reporting' in check(result, 'agent doc-quiet')['detail']
    skew = check(result, 'clock doc-skewed')
    assert not skew['ok'] and 'clock differs' in skew['detail'] and '+1' in skew['detail']


def test_broker_unreachable(conductor_config, tmp_path):
    config, _ = conductor_config
    bad = tmp_path / 'bad.conf'
    bad.write_text(open(config).read().replace(':5672/', ':5999/'))
    code, result, err = doctor(str(bad))
    assert code == 1 and err == ''
    detail = check(result, 'broker')['detail']
    assert 'broker unreachable' in detail and '5999' in detail
    assert 'conductor' not in [c['check'] for c in result['checks']]


def test_broker_refuses_the_login(conductor_config, tmp_path):
    config, _ = conductor_config
    bad = tmp_path / 'badpass.conf'
    bad.write_text(open(config).read().replace('guest:guest@', 'guest:wrong@'))
    code, result, _ = doctor(str(bad))
    assert code == 1
    assert 'refused the login' in check(result, 'broker-login')['detail']


def test_missing_plugin(conductor_config, tmp_path):
    config, _ = conductor_config
    bad = tmp_path / 'plugin.conf'
    text = open(config).read().replace('[scheduler]\n',
                                       '[scheduler]\nenabled_filters = ram,no_such_filter\n')
    bad.write_text(text)
    code, result, _ = doctor(str(bad))
    assert code == 1
    assert '"no_such_filter" is not installed' in check(result, 'plugins')['detail']


def test_libvirt_unreachable(conductor_config):
    config, _ = conductor_config
    code, result, _ = doctor(config, '--libvirt-uri', 'qemu+tcp://127.0.0.1:1/system')
    assert code == 1
    detail = check(result, 'libvirt qemu+tcp://127.0.0.1:1/system')['detail']
    assert detail.startswith('cannot connect')


def test_table_output_is_one_line_per_check(conductor_config, tmp_path):
    config, _ = conductor_config
    bad = tmp_path / 'bad.conf'
    bad.write_text(open(config).read().replace(':5672/', ':5999/'))
    out = subprocess.run([_bin('kvmplace'), '--config-file', str(bad), 'doctor',
                          '--timeout', '2'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and 'Traceback' not in out.stderr
    assert 'FAIL' in out.stdout and 'broker unreachable' in out.stdout
