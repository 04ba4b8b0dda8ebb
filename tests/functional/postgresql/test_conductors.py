"""Three real kvmplace-conductor processes on one PostgreSQL database and
one RabbitMQ vhost, killed with SIGKILL (kvmplace.conductor.leases).

The agents are simulated in this process and served over the same
RabbitMQ (one RPC server per host on topic kvmplace-agent): libvirt cannot
run three hosts' worth of guests in a functional test, and what is tested
here is the conductors. They are the in-memory agents of
tests/unit/conductor/fakes.py (one migration job per guest, as the real
agent) behind real RPC. The same scenarios with the lab's real agents and
guests: tests/integration/test_conductors_lab.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from kvmplace import rpc
from kvmplace.conductor import rpcapi
from tests.functional.conftest import broker_url, client_conf, wait_for  # noqa: F401
from tests.unit.conductor import fakes
from tests.unit.conductor.test_leases import RealisticAgents
from tests.unit.conductor.test_workflow import _host

pytestmark = pytest.mark.timeout(300)

TAKEOVER_S = 4
NAMES = ('fc-0', 'fc-1', 'fc-2')


class HostEndpoint:
    """The agent RPC methods of one simulated host."""

    def __init__(self, agents: fakes.FakeAgents, host: str):
        self.agents, self.host = agents, host

    def __getattr__(self, method: str):
        fn = getattr(self.agents, method)
        return lambda ctxt, **kwargs: fn(ctxt, self.host, **kwargs)


class Cluster:
    def __init__(self, tmp, pg_url: str, broker: str, conf, cloud, migrate_seconds: float):
        self.tmp, self.conf, self.cloud = tmp, conf, cloud
        self.api = rpcapi.ConductorAPI(conf=conf, timeout=20)
        self.agents = RealisticAgents(cloud, conductor=self.api, migrate_seconds=migrate_seconds)
        self.agents.gated = True
        self.servers = []
        for host in cloud.hosts:
            server = rpc.get_server(rpc.AGENT_TOPIC, host, [HostEndpoint(self.agents, host)],
                                    conf=conf)
            server.start()
            self.servers.append(server)
        self.config = tmp / 'c.conf'
        self.config.write_text(
            f'[DEFAULT]\ntransport_url = {broker}\n[database]\nconnection = {pg_url}\n'
            f'[conductor]\ntakeover_seconds = {TAKEOVER_S}\nmonitor_interval_seconds = 1\n'
            'rpc_call_timeout_seconds = 5\nnotifications = false\n'
            '[scheduler]\nhost_down_seconds = 30\n')
        self.procs: dict[str, subprocess.Popen] = {}
        self.stop_reports = threading.Event()
        threading.Thread(target=self._report, daemon=True).start()
        for name in NAMES:
            self.start(name)

    def _report(self) -> None:
        while not self.stop_reports.is_set():
            for host in self.cloud.hosts:
                try:
                    self.api.report_state({}, self.agents.get_host_state({}, host))
                except Exception:  # noqa: BLE001 - broker hiccup: next round
                    pass
            self.stop_reports.wait(1.0)

    def start(self, name: str) -> None:
        own = self.tmp / f'{name}.conf'
        own.write_text(f'[conductor]\nhost = {name}\n')
        log = open(self.tmp / f'{name}.log', 'ab')
        self.procs[name] = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), 'kvmplace-conductor'),
             '--config-file', str(self.config), '--config-file', str(own)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def on(self, name: str):
        """RPC directed to one conductor."""
        return self.api.client.prepare(server=name)

    def record(self, mid: str):
        try:
            return self.api.get_migration({}, mid)
        except Exception:  # noqa: BLE001 - the conductor answering died: ask again
            return None

    def final(self, mid: str, timeout: float = 120) -> dict:
        return wait_for(lambda: (lambda r: r if r and r['status'] in (
            'completed', 'failed', 'aborted') else None)(self.record(mid)),
            timeout, f'migration {mid[:8]} to end', 0.2)

    def close(self) -> None:
        self.stop_reports.set()
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in self.servers:
            s.stop()
            s.wait()


@pytest.fixture
def cloud():
    c = fakes.FakeCloud({'h1': _host(mem=65536), 'h2': _host(mem=65536),
                         'h3': _host(mem=65536, link=1000)})
    for i in range(4):
        c.add_guest(f'g{i}', 'h1', memory_mib=2048)
    return c


def _cluster(tmp_path, pg_url, broker_url, client_conf, cloud,  # noqa: F811
             migrate_seconds: float) -> Iterator[Cluster]:
    cl = Cluster(tmp_path, pg_url, broker_url, client_conf, cloud, migrate_seconds)
    try:
        for name in NAMES:
            wait_for(lambda n=name: _answers(cl, n), 90, f'conductor {name} to serve', 0.5)
        wait_for(lambda: len(cl.api.list_hosts({})) == 3, 30, 'the reports', 0.2)
        yield cl
    finally:
        cl.close()


def _answers(cl: Cluster, name: str) -> bool:
    try:
        cl.on(name).call({}, 'list_hosts')
        return True
    except Exception:  # noqa: BLE001 - not serving yet
        return False


@pytest.fixture
def slow(tmp_path, pg_url, broker_url, client_conf, cloud):  # noqa: F811
    yield from _cluster(tmp_path, pg_url, broker_url, client_conf, cloud, 12.0)


def test_kill_9_of_the_owner_mid_migration(slow):
    cl = slow
    rec = cl.on(NAMES[0]).call({}, 'migrate', instance='g0', dest='h2', policy=None)
    wait_for(lambda: 'g0' in cl.agents.jobs, 30, 'the copy to start', 0.1)
    owner = cl.record(rec['id'])['lease']['owner']
    assert owner == NAMES[0]
    cl.kill(owner)
    killed = time.monotonic()
    adopter = wait_for(lambda: (lambda r: r and r['lease']['owner'] != owner and
                                r['lease']['owner'])(cl.record(rec['id'])),
                       TAKEOVER_S * 4, 'another conductor to adopt', 0.1)
    took = time.monotonic() - killed
    assert took <= TAKEOVER_S * 1.25 + 2, took
    cl.start(owner)                         # a conductor starting changes nothing
    final = cl.final(rec['id'])
    assert final['status'] == 'completed', final['error']
    assert final['lease']['owner'] == adopter
    assert cl.cloud.guests['g0']['host'] == 'h2'
    assert cl.cloud.pins['g0'] == final['dest_cpus']
    assert [c for c in cl.agents.calls if c[0] in ('migrate', 'abort')] == [('migrate', 'h1')]
    assert [s['name'] for s in final['steps']].count('recovered') == 1


@pytest.fixture
def quick(tmp_path, pg_url, broker_url, client_conf, cloud):  # noqa: F811
    yield from _cluster(tmp_path, pg_url, broker_url, client_conf, cloud, 3.0)


def test_kill_two_of_three_during_a_drain(quick):
    cl = quick
    drain = cl.on(NAMES[1]).call({}, 'drain', host='h1', dry_run=False)
    wait_for(lambda: cl.agents.jobs, 60, 'the first copy of the drain', 0.1)
    owner = cl.api.get_drain({}, drain['id'])['lease']['owner']
    other = next(n for n in NAMES if n != owner)
    cl.kill(owner)
    cl.kill(other)
    survivor = next(n for n in NAMES if n not in (owner, other))
    final = wait_for(lambda: (lambda d: d if d and d['status'] != 'running' else None)(
        _drain(cl, drain['id'])), 240, 'the drain to end', 0.5)
    assert final['status'] == 'completed', final
    assert final['lease']['owner'] == survivor
    assert not [g for g, v in cl.cloud.guests.items() if v['host'] == 'h1']
    migrates = [c for c in cl.agents.calls if c[0] == 'migrate']
    assert len(migrates) == 4, migrates      # each guest moved once
    assert ('abort', 'h1') not in cl.agents.calls


def _drain(cl: Cluster, drain_id: str):
    try:
        return cl.api.get_drain({}, drain_id)
    except Exception:  # noqa: BLE001 - the conductor answering died
        return None


def test_admission_holds_across_conductors(quick):
    """Two copies over the 1 GbE link of h3, each asked of a different
    conductor at the same moment: the link carries one at a time."""
    cl = quick
    for g in ('g0', 'g1'):
        cl.cloud.guests[g]['host'] = 'h3'
    time.sleep(2.5)                          # the reports say so
    recs: list = [None, None]

    def ask(i: int) -> None:
        recs[i] = cl.on(NAMES[i]).call({}, 'migrate', instance=f'g{i}', dest='h2', policy=None)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finals = [cl.final(r['id']) for r in recs]
    assert [f['status'] for f in finals] == ['completed', 'completed'], finals
    assert {f['conductor'] for f in finals} == {NAMES[0], NAMES[1]}
    first, second = sorted(finals, key=lambda r: r['started_at'])
    first_copy = [s for s in first['steps'] if s['name'] == 'migrate'][0]
    assert second['started_at'] >= first_copy['finished_at'], (first, second)
    waited = [s for s in second['steps'] if s['name'] == 'admission']
    assert waited and 'link' in (waited[0]['message'] or ''), second['steps']


@pytest.fixture
def private_pg():
    from tests.functional.postgresql.private import PrivatePostgres
    pg = PrivatePostgres()
    yield pg
    pg.remove()


@pytest.fixture
def on_private_pg(tmp_path, private_pg, broker_url, client_conf, cloud):  # noqa: F811
    yield from _cluster(tmp_path, private_pg.url, broker_url, client_conf, cloud, 3.0)


def test_postgresql_restart_mid_drain(on_private_pg, private_pg):
    """The database server (a private cluster) stops for a few seconds -
    longer than takeover_seconds - while a drain copies: the drain and its
    migrations still end in the truth, each guest moved once."""
    cl = on_private_pg
    drain = cl.on(NAMES[2]).call({}, 'drain', host='h1', dry_run=False)
    wait_for(lambda: cl.agents.jobs, 60, 'the first copy of the drain', 0.1)
    private_pg.stop()
    time.sleep(TAKEOVER_S + 2)
    private_pg.start()
    final = wait_for(lambda: (lambda d: d if d and d['status'] != 'running' else None)(
        _drain(cl, drain['id'])), 240, 'the drain to end', 0.5)
    assert final['status'] == 'completed', final
    assert not [g for g, v in cl.cloud.guests.items() if v['host'] == 'h1']
    migrates = [c for c in cl.agents.calls if c[0] == 'migrate']
    assert len(migrates) == 4, migrates
    assert ('abort', 'h1') not in cl.agents.calls
    assert all(p.poll() is None for p in cl.procs.values())
