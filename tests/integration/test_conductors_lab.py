"""Three real kvmplace-conductor processes on one PostgreSQL and one RabbitMQ
vhost, driving the lab's real guests (kvmplace.conductor.leases).

The PostgreSQL server is a private cluster this module starts with
``pg_ctl`` on a port and data directory of its own (the shared test server
is never stopped): one test restarts it in the middle of a drain.
Conductors are killed with SIGKILL. Every outcome is checked against
libvirt (where the guest runs) and /proc (its QEMU main thread's CPUs),
with the helpers of test_faults.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.functional.conftest import wait_for
from tests.functional.postgresql.private import PrivatePostgres
from tests.integration.test_agent_lab import shared_lab  # noqa: F401
from tests.integration.test_conductor_lab import Stack, _bin
from tests.integration.test_conductor_lab import running_on as where_all
from tests.integration.test_faults import (SLOW_CAP, _wait_all_up, assert_truthful,  # noqa: F401
                                           fastest_other, final_record, lab_guest,
                                           main_thread_cpus, own_vhost, show)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

TAKEOVER_S = 6
NAMES = ('lab-c0', 'lab-c1', 'lab-c2')


class Conductors(Stack):
    """The lab's agents and three conductors sharing one PostgreSQL."""

    def __init__(self, lab, url: str, tmp, pg: PrivatePostgres):
        self.pg = pg
        self.procs: dict[str, subprocess.Popen] = {}
        super().__init__(lab, url, tmp)

    def start_conductor(self, name: str | None = None) -> None:
        text = self.config.read_text()
        if self.pg.url not in text:
            text = text.replace(f'connection = sqlite:///{self.tmp}/kvmplace.sqlite',
                                f'connection = {self.pg.url}')
            text = text.replace('host = lab-conductor',
                                f'takeover_seconds = {TAKEOVER_S}')
            self.config.write_text(text)
        for n in ([name] if name else NAMES):
            conf = self.tmp / f'{n}.conf'
            conf.write_text(f'[conductor]\nhost = {n}\n')
            argv = [_bin('kvmplace-conductor')]
            for path in [*self.conductor_configs(), str(conf)]:
                argv += ['--config-file', str(path)]
            log = open(self.tmp / f'{n}.log', 'ab')
            self.procs[n] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
        self.conductor = self.procs[NAMES[0]]

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def log(self) -> str:
        return '\n'.join((self.tmp / f'{n}.log').read_text(errors='replace')[-1500:]
                         for n in NAMES if (self.tmp / f'{n}.log').exists())

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for agent in self.agents.values():
            agent.stop()


@pytest.fixture(scope='module')
def private_pg():
    pg = PrivatePostgres()
    yield pg
    pg.remove()


@pytest.fixture
def three(shared_lab, own_vhost, private_pg, tmp_path):  # noqa: F811
    s = Conductors(shared_lab, own_vhost, tmp_path, private_pg)
    s.api_confs = []
    try:
        _wait_all_up(s, shared_lab)
        yield s
    finally:
        s.stop()
        # The test's own RPC clients keep a reply consumer on the vhost;
        # close them before own_vhost deletes it, or their reconnects log
        # "vhost ... not found" for the rest of the session.
        from kvmplace import rpc
        for conf in s.api_confs:
            transport = rpc._TRANSPORTS.pop(id(conf), None)
            if transport is not None:
                transport.cleanup()


def _owner_of(stack, mid: str) -> str | None:
    rec = show(stack, mid)
    return (rec or {}).get('lease', {}).get('owner')


def test_kill_9_of_the_owner_mid_migration_is_adopted(three, shared_lab):  # noqa: F811
    guest = lab_guest(shared_lab, kind='linux', dirty_rate_mibps=0)
    source = where_all(guest)[0]
    dest = fastest_other(shared_lab, source)
    cpus_before = main_thread_cpus(guest)
    rec = three.cli('migrate', guest, '--to', dest, '--bandwidth-cap-mibps', SLOW_CAP)
    wait_for(lambda: (lambda r: r if r and r['status'] == 'migrating' else None)(
        show(three, rec['id'])), 120, 'the copy to start', 0.2)
    owner = _owner_of(three, rec['id'])
    assert owner in NAMES
    three.kill(owner)
    killed = time.monotonic()
    adopter = wait_for(lambda: (lambda o: o if o and o != owner else None)(
        _owner_of(three, rec['id'])), TAKEOVER_S * 3, 'another conductor to adopt', 0.2)
    took = time.monotonic() - killed
    # takeover_seconds, plus the adopter's look interval (a quarter of it),
    # plus how late the test can see it: each look is a CLI process
    # (``migrations show``), up to ~3 s on a loaded 2-core machine.
    assert took <= TAKEOVER_S * 1.25 + 4, took
    # A conductor starting now (the killed one, again) changes nothing.
    three.start_conductor(owner)
    final = final_record(three, rec['id'], timeout=600)
    assert final['lease']['owner'] == adopter, final['lease']
    assert_truthful(final, guest, cpus_before)       # one host, pinning as it should be
    assert final['status'] == 'completed', final
    names = [s['name'] for s in final['steps']]
    assert names.count('recovered') == 1 and 'abort' not in names, names


def _drain_done(api, drain_id: str):
    try:
        d = api.get_drain({}, drain_id)
    except Exception:  # noqa: BLE001 - broker or database away: ask again
        return None
    return d if d['status'] != 'running' else None


def _drain_with(three, shared_lab, api, during) -> dict:
    """Drain the host with the most guests, call ``during(drain)`` once its
    first copy runs, and return the finished drain record."""
    from kvmplace.lab import measure
    counts: dict[str, int] = {}
    for g in shared_lab['guests']:
        host = measure.where(g['name'])
        counts[host] = counts.get(host, 0) + 1
    host = max(counts, key=counts.get)
    drain = three.cli('drain', host)
    try:
        wait_for(lambda: any(m['status'] == 'migrating'
                             for m in (api.get_drain({}, drain['id'])['migrations'] or [])),
                 180, 'the first copy of the drain', 0.5)
        during(drain)
        final = wait_for(lambda: _drain_done(api, drain['id']), 900, 'the drain to end', 2.0)
        assert final['status'] == 'completed', final
        for g in shared_lab['guests']:
            assert len(where_all(g['name'])) == 1, g
        assert not [g for g in shared_lab['guests'] if measure.where(g['name']) == host]
        return final
    finally:
        three.cli('hosts', 'maintenance', host, 'off', check=False)


def test_kill_two_of_three_during_a_drain(three, shared_lab):  # noqa: F811
    api = _api(three)

    def kill_two(drain: dict) -> None:
        owner = api.get_drain({}, drain['id'])['lease']['owner']
        others = [n for n in NAMES if n != owner]
        three.kill(owner)
        three.kill(others[0])
    final = _drain_with(three, shared_lab, api, kill_two)
    assert final['lease']['owner'] == three.alive()[0]


def test_postgresql_restart_mid_drain(three, shared_lab, private_pg):  # noqa: F811
    api = _api(three)

    def restart(drain: dict) -> None:
        private_pg.stop()
        time.sleep(3)
        private_pg.start()
    _drain_with(three, shared_lab, api, restart)
    assert len(three.alive()) == 3


def test_admission_holds_across_conductors(three, shared_lab):  # noqa: F811
    """Two guests leave the slowest host at once, each asked of a different
    conductor (directed RPC): its link carries one copy at a time."""
    from kvmplace.lab import measure
    slow = min(shared_lab['hosts'], key=lambda h: h['link_mbps'])['name']
    # Guests that converge over a 200 Mbit/s link (a guest dirtying
    # 40 MiB/s would not: kvmplace refuses to send it there).
    guests = [g['name'] for g in shared_lab['guests']
              if not g.get('dirty_rate_mibps') and not g.get('disk_mib')][:2]
    assert len(guests) == 2, shared_lab['guests']
    api = _api(three)
    for g in guests:                       # both on the slow host first
        if measure.where(g) != slow:
            rec = three.cli('migrate', g, '--to', slow)
            moved = final_record(three, rec['id'], 600)
            assert moved['status'] == 'completed', moved
    dest = fastest_other(shared_lab, slow)
    recs = [api.client.prepare(server=NAMES[i]).call({}, 'migrate', instance=g, dest=dest,
                                                     policy=None)
            for i, g in enumerate(guests)]
    finals = [final_record(three, r['id'], 900) for r in recs]
    assert [f['status'] for f in finals] == ['completed', 'completed'], finals
    assert {f['conductor'] for f in finals} == {NAMES[0], NAMES[1]}
    first, second = sorted(finals, key=lambda r: r['started_at'])
    first_copy = [s for s in first['steps'] if s['name'] == 'migrate'][0]
    assert second['started_at'] >= first_copy['finished_at'], (first, second)
    assert any(s['name'] == 'admission' for s in second['steps'])


def _api(three):
    import kvmplace.conf
    from kvmplace.conductor import rpcapi
    from tests.functional.conftest import register_messaging_opts, use_lab_keys
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    use_lab_keys(conf, 'operator')          # the lab's conductors require signatures
    url = [line for line in three.config.read_text().splitlines()
           if line.startswith('transport_url')][0].split('=', 1)[1].strip()
    conf.set_override('transport_url', url)
    three.api_confs.append(conf)
    return rpcapi.ConductorAPI(conf=conf, timeout=20)
