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
import threading
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


class LiveAgents:
    """Report for ``names`` every second from a thread, as live agents do,
    so that a doctor run slowed by a busy machine (its own start-up can
    take longer than host_down_seconds) still finds them up. ``skew_s``
    shifts an agent's clock."""

    def __init__(self, client_conf, skew_s: dict[str, float]):
        self.client_conf, self.skew_s = client_conf, skew_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for name, skew in self.skew_s.items():
                _report(self.client_conf, name, time.time() + skew)
            self.stop.wait(1.0)

    def __enter__(self) -> LiveAgents:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def test_healthy_cluster_passes(conductor_config, client_conf):
    config, _ = conductor_config
    with LiveAgents(client_conf, {'doc-ok': 0.0}):
        result = _wait_healthy(config)
    for name in ('plugins', 'database', 'broker', 'broker-login', 'conductor'):
        assert check(result, name)['ok'], result


def _wait_healthy(config: str) -> dict:
    def healthy():
        code, result, _ = doctor(config)
        c = next((c for c in result.get('checks', []) if c['check'] == 'agent doc-ok'), None)
        return result if c and c['ok'] else None
    return wait_for(healthy, 60, 'the report of doc-ok', 0.5)


def test_agent_not_reporting_and_clock_skew(conductor_config, client_conf):
    config, _ = conductor_config
    _report(client_conf, 'doc-quiet', time.time())
    # doc-quiet never reports again: after host_down_seconds (5) it is down;
    # doc-skewed keeps reporting with a clock 2 min ahead.
    def quiet():
        code, result, _ = doctor(config)
        c = next((c for c in result['checks'] if c['check'] == 'agent doc-quiet'), None)
        return (code, result) if c and not c['ok'] else None
    with LiveAgents(client_conf, {'doc-skewed': 120.0}):
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
