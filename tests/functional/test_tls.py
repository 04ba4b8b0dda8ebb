"""kvmplace-conductor and kvmplace-agent talk over RabbitMQ with TLS.

tools/services.sh gives the local RabbitMQ a TLS listener on 127.0.0.1:5671
with a self-signed CA. Both services (real processes) get a transport on
that port with ``[oslo_messaging_rabbit] ssl``; the CLI reads the host the
agent reported through the conductor, and ``ss`` shows the services'
connections go to 5671, not the plain port.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid as uuid_mod

import pytest

from tests.functional.conftest import AgentProcess, wait_for

CA = '/etc/rabbitmq/kvmplace-tls/ca.pem'
pytestmark = pytest.mark.timeout(240)


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


@pytest.fixture(scope='module')
def tls_url(broker_url):
    if not os.path.exists(CA):
        pytest.skip('no TLS listener (tools/services.sh start makes one)')
    # Same private vhost, TLS port.
    return broker_url.replace(':5672/', ':5671/')


def _config(path, url: str, extra: str = '') -> str:
    path.write_text(f"""[DEFAULT]
transport_url = {url}

[oslo_messaging_rabbit]
ssl = true
ssl_ca_file = {CA}

{extra}
""")
    return str(path)


def _connections_to(pid: int) -> set[int]:
    out = subprocess.run(['ss', '-tnpH'], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        if f'pid={pid},' in line:
            peer = line.split()[4]
            ports.add(int(peer.rsplit(':', 1)[1]))
    return ports


def test_conductor_and_agent_over_tls(tmp_path, tls_url):
    host = f'tls-{uuid_mod.uuid4().hex[:6]}'
    numa = tmp_path / 'numa.json'
    numa.write_text(json.dumps([{'id': 0, 'cpus': '0', 'memory_mib': 1024,
                                 'free_memory_mib': 1024, 'bandwidth_mibps': 9000,
                                 'baseline_mibps': 9000}]))
    conductor_cfg = _config(tmp_path / 'conductor.conf', tls_url, f"""[database]
connection = sqlite:///{tmp_path}/kvmplace.sqlite

[conductor]
host = tls-conductor
""")
    agent_cfg = _config(tmp_path / 'agent.conf', tls_url, f"""[agent]
host = {host}
libvirt_uri = test:///default
numa_topology_file = {numa}
report_interval_seconds = 1
probe_enabled = false
dirty_rate_enabled = false
link_mbps = 10000
""")
    log = open(tmp_path / 'conductor.log', 'wb')
    conductor = subprocess.Popen([_bin('kvmplace-conductor'), '--config-file', conductor_cfg],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    agent = AgentProcess(agent_cfg, str(tmp_path / 'agent.log'))
    try:
        def listed():
            out = subprocess.run([_bin('kvmplace'), '--config-file', conductor_cfg,
                                  '--rpc-timeout', '5', 'hosts', 'list', '-f', 'json'],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                assert conductor.poll() is None, (tmp_path / 'conductor.log').read_text()
                return None
            hosts = json.loads(out.stdout)
            return next((h for h in hosts if h['name'] == host and h['up']), None)
        entry = wait_for(listed, 90, 'the agent host listed through the conductor', 1.0)
        # test:///default runs one guest called "test".
        assert 'test' in entry['instances']
        for proc in (conductor, agent.proc):
            ports = _connections_to(proc.pid)
            assert 5671 in ports and 5672 not in ports, ports
    finally:
        agent.stop()
        conductor.terminate()
        try:
            conductor.wait(20)
        except subprocess.TimeoutExpired:
            conductor.kill()
        log.close()
