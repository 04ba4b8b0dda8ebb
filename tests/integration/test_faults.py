"""Faults on the lab: real processes, real libvirt, real RabbitMQ.

Each test breaks something while a migration or a drain runs - an agent
killed with SIGKILL, the broker restarted, a destination's libvirtd
killed, the database's disk full or read-only - and then checks what the
conductor recorded against the truth, read from libvirt and /proc, never
from kvmplace itself:

- the guest runs on exactly one host (libvirt's view), and exactly one
  QEMU process exists for it;
- the record is in its true final state: ``completed`` if and only if
  the guest runs on the destination;
- no stale pinning: the guest's QEMU main thread runs on the CPUs it had
  before, or, when it moved, on the CPUs the destination planned (and
  post_verify read back).

The stack is the one of test_conductor_lab.py (conductor and agents as
processes on a private RabbitMQ vhost with their own SQLite database).
Migrations that must be caught mid-copy are slowed down with a policy
bandwidth cap, so they last long enough whatever the lab's links are.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time

import pytest

from tests.functional.conftest import AgentProcess, broker_url, wait_for  # noqa: F401
from tests.integration.test_agent_lab import shared_lab  # noqa: F401
from tests.integration.test_conductor_lab import FINAL, Stack, _bin, running_on, where

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

#: MiB/s: a 256 MiB guest with 128 MiB of live data copies for ~20-30 s.
SLOW_CAP = '8'
#: Seconds RabbitMQ stays stopped (plus the time stop_app/start_app take).
BROKER_DOWN_S = 5


# -- helpers ------------------------------------------------------------------

def qemu_pids(guest: str) -> list[int]:
    """Every QEMU process running ``guest`` on this machine (all lab hosts)."""
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/cmdline', 'rb') as fh:
                cmd = fh.read().split(b'\0')
        except OSError:
            continue
        if cmd and b'qemu-system' in cmd[0] and f'guest={guest},'.encode() in b' '.join(cmd):
            pids.append(int(name))
    return pids


def main_thread_cpus(guest: str) -> str:
    from kvmplace.agent import procfs
    pids = qemu_pids(guest)
    assert len(pids) == 1, f'{guest}: QEMU processes {pids}, expected exactly one'
    return procfs.thread_affinity(pids[0])


def assert_truthful(rec: dict, guest: str, cpus_before: str | None) -> None:
    """The three invariants of the module docstring."""
    hosts = running_on(guest)
    assert len(hosts) == 1, f'{guest} runs on {hosts}: {rec}'
    if rec['status'] == 'completed':
        assert hosts == [rec['dest']], (hosts, rec)
        if rec.get('dest_cpus'):
            assert main_thread_cpus(guest) == rec['dest_cpus'], rec
    else:
        assert hosts == [rec['source']], (hosts, rec)
        if cpus_before is not None:
            assert main_thread_cpus(guest) == cpus_before, rec   # pinning restored


def lab_guest(lab, **want) -> str:
    """A guest of the lab with these recorded properties."""
    for g in lab['guests']:
        if all(g.get(k) == v for k, v in want.items()):
            return g['name']
    pytest.skip(f'the lab has no guest with {want}')


def fastest_other(lab, host: str) -> str:
    return max((h for h in lab['hosts'] if h['name'] != host),
               key=lambda h: h['link_mbps'])['name']


def show(stack, mid: str) -> dict | None:
    """The record, or None while the CLI cannot get it (broker down...)."""
    try:
        rec = stack.cli('migrations', 'show', mid, check=False, timeout=60)
    except (json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
        print(f'{time.strftime("%T")} migrations show {mid[:8]}: no answer: {exc}')
        return None
    if isinstance(rec, dict) and rec.get('id'):
        return rec
    print(f'{time.strftime("%T")} migrations show {mid[:8]}: no record: {rec}')
    return None


def final_record(stack, mid: str, timeout: float = 240) -> dict:
    return wait_for(lambda: (lambda r: r if r and r['status'] in FINAL else None)(
        show(stack, mid)), timeout, f'migration {mid[:8]} to end', 1.0)


def copying(stack, mid: str, min_mib: float = 4.0):
    """The record says the copy is under way (and has moved some data)."""
    rec = show(stack, mid)
    if rec is None:
        return None
    assert rec['status'] not in FINAL, rec
    prog = rec.get('progress') or {}
    return rec if rec['status'] == 'migrating' and \
        (prog.get('processed_mib') or 0) >= min_mib else None


def libvirt_job_remaining(host: str, guest: str) -> float | None:
    """MiB left of the guest's migration job on ``host`` (libvirt's view),
    None when no job runs."""
    import libvirt

    from kvmplace.lab import manager
    conn = manager.connect(host)
    try:
        stats = conn.lookupByName(guest).jobStats()
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()
    if stats.get('type', libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
        return None
    return stats.get('memory_remaining', 0) / 2 ** 20


def restart_agent(stack, host: str) -> None:
    """Start the host's agent again (same configuration and log); return
    once it serves RPC."""
    from kvmplace.lab import services
    log = stack.tmp / f'agent-{host}.log'
    seen = log.stat().st_size if log.exists() else 0
    agent = AgentProcess(
        [services.CONFIG_FILE, services.agent_config_file(host), str(stack.config)], str(log))
    stack.agents[host] = agent

    def serving():
        if agent.proc.poll() is not None:
            pytest.fail(f'the agent of {host} exited:\n{agent.log()[seen:][-3000:]}')
        return 'serving on topic' in agent.log()[seen:]
    wait_for(serving, 60, f'the agent of {host} to serve again', 0.2)


def one_error_line(proc: subprocess.CompletedProcess, prefix: str) -> str:
    assert proc.returncode != 0, proc
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    return lines[0]


@pytest.fixture(scope='module')
def stack(shared_lab, broker_url, tmp_path_factory):  # noqa: F811
    s = Stack(shared_lab, broker_url, tmp_path_factory.mktemp('faults'))
    try:
        _wait_all_up(s, shared_lab)
        yield s
    finally:
        s.stop()


def _wait_all_up(s, lab, timeout: float = 120) -> None:
    def all_up():
        try:
            hosts = s.cli('hosts', 'list', check=False, timeout=60)
        except json.JSONDecodeError:
            return None
        names = {h['name'] for h in hosts or [] if h['up']}
        return names >= {h['name'] for h in lab['hosts']}
    wait_for(all_up, timeout, 'every lab host reporting through the conductor', 1.0)


# -- 1. the source agent killed mid-copy --------------------------------------

def test_kill_9_of_the_source_agent_mid_migration(stack, shared_lab):  # noqa: F811
    """SIGKILL the source agent in the middle of the copy, then restart it.

    What really happens (checked below, from libvirt): the migration is
    peer-to-peer, driven by the source's libvirtd, so it goes on without
    the agent that started it. The restarted agent remembers nothing; it
    can only say that libvirt runs a job on the guest. The conductor hears
    nothing (no progress, no result cast), polls get_job/locate, keeps
    watching that job (one migration per guest: it is this one) and
    records what libvirt did - here the copy completes, so the record
    ends 'completed', verified on the destination.
    """
    guest = lab_guest(shared_lab, kind='linux', dirty_rate_mibps=0)
    source = where(guest)
    dest = fastest_other(shared_lab, source)
    cpus_before = main_thread_cpus(guest)
    rec = stack.cli('migrate', guest, '--to', dest, '--bandwidth-cap-mibps', SLOW_CAP)
    wait_for(lambda: copying(stack, rec['id']), 60, 'the copy to start', 0.2)
    agent = stack.agents[source].proc
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(10)
    left = libvirt_job_remaining(source, guest)
    assert left is not None, 'the copy died with the agent'
    # libvirtd carries on alone: the job keeps moving without any agent.
    wait_for(lambda: (lambda now: now is None or now < left - 16)(
        libvirt_job_remaining(source, guest)), 30, 'libvirt to go on copying', 0.5)
    restart_agent(stack, source)
    # The new agent starts while the copy still runs: all it can know of
    # the job is what libvirt says.
    assert libvirt_job_remaining(source, guest) is not None, 'the copy ended too soon'
    final = final_record(stack, rec['id'])
    assert_truthful(final, guest, cpus_before)
    assert final['status'] == 'completed', final        # what libvirt did
    names = [s['name'] for s in final['steps']]
    assert 'abort' not in names and 'rollback' not in names, names
    assert [s['status'] for s in final['steps'] if s['name'] == 'post_verify'][-1] == 'ok'


# -- 2. the broker restarted during a drain -----------------------------------

def _rabbitmqctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(['rabbitmqctl', *args], check=True, capture_output=True, timeout=timeout)


@pytest.fixture(scope='module')
def conductor_api(broker_url):  # noqa: F811
    """The conductor's Python RPC API (the CLI has no 'drain show')."""
    import kvmplace.conf
    from kvmplace import rpc
    from kvmplace.conductor import rpcapi
    from tests.functional.conftest import register_messaging_opts, use_lab_keys
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    conf.set_override('transport_url', broker_url)
    use_lab_keys(conf, 'operator')          # the lab's conductor requires signatures
    yield rpcapi.ConductorAPI(conf=conf, timeout=10)
    transport = rpc._TRANSPORTS.pop(id(conf), None)
    if transport is not None:
        transport.cleanup()


def _drain(api, drain_id: str) -> dict | None:
    """The drain record with its migrations; None while unreachable."""
    try:
        return api.get_drain({}, drain_id)
    except Exception:  # noqa: BLE001 - the broker is away: ask again later
        return None


def test_rabbitmq_restart_during_a_drain(stack, shared_lab, conductor_api):  # noqa: F811
    """``rabbitmqctl stop_app; start_app`` while the first migration of a
    drain is copying. The broker is shared (other engineers' runs, the
    lab's own services), hence the application restart of a few seconds
    rather than killing the server.

    Every RPC and cast fails while it is down; the conductor, the agents
    and the CLI reconnect by themselves. The drain must end (or resume
    and end) with every guest off the host, none migrated twice (at most
    one completed migration per guest in the drain record), and each
    guest's last record telling the truth about where it runs.
    """
    host = where(lab_guest(shared_lab, kind='linux', dirty_rate_mibps=40))
    guests = [g['name'] for g in shared_lab['guests'] if running_on(g['name']) == [host]]
    if len(guests) < 2:
        extra = next(g['name'] for g in shared_lab['guests'] if g['name'] not in guests
                     and g['kind'] == 'firmware')
        stack.cli('migrate', extra, '--to', host, '--wait')
        guests.append(extra)
    cpus_before = {g: main_thread_cpus(g) for g in guests}
    try:
        drain = stack.cli('drain', host)

        def first_copy():
            d = _drain(conductor_api, drain['id'])
            assert d is None or d['status'] == 'running', d
            return d and any(m['status'] == 'migrating' for m in d.get('migrations') or [])
        wait_for(first_copy, 120, 'a migration of the drain to copy', 0.2)
        started = time.monotonic()
        _rabbitmqctl('stop_app')
        # Down long enough for the workflows' polls (every second once an
        # agent is 3 s quiet), the agents' reports and casts, and the
        # drain's next start to run into it; short for the others' runs.
        time.sleep(BROKER_DOWN_S)
        _rabbitmqctl('start_app')
        _rabbitmqctl('await_startup')
        outage = time.monotonic() - started
        done = wait_for(lambda: (lambda d: d if d and d['status'] != 'running' else None)(
            _drain(conductor_api, drain['id'])), 300, 'the drain to end', 1.0)
        migs = done['migrations']
        completed = collections.Counter(m['instance'] for m in migs
                                        if m['status'] == 'completed')
        assert all(n == 1 for n in completed.values()), completed      # never twice
        for m in migs:                     # nor even tried again once moved
            moved = [c for c in migs if c['instance'] == m['instance'] and
                     c['status'] == 'completed']
            assert not moved or m['created_at'] <= moved[0]['created_at'], migs
        assert done['status'] == 'completed', (done, stack.log()[-4000:])
        assert set(completed) == set(guests), (completed, guests)
        for guest in guests:
            last = max((m for m in migs if m['instance'] == guest),
                       key=lambda m: m['created_at'])
            assert_truthful(last, guest, cpus_before[guest])
            assert host not in running_on(guest)
        assert outage > BROKER_DOWN_S        # the broker really was away for a while
    finally:
        stack.cli('hosts', 'maintenance', host, 'off', check=False)


# -- 3. the destination's libvirtd killed before post_verify ------------------

def _kill_libvirtd(host: str) -> None:
    from kvmplace.lab import libvirtd
    from kvmplace.lab import state as labstate
    from kvmplace.lab.system import pid_alive, port_open
    pid = libvirtd.daemon_pids(host)['libvirtd']
    assert pid and pid_alive(pid), f'no libvirtd for {host}'
    os.kill(pid, signal.SIGKILL)
    address = next(h['address'] for h in labstate.load()['hosts'] if h['name'] == host)
    wait_for(lambda: not pid_alive(pid) and not port_open(address, labstate.LIBVIRT_PORT),
             30, f'the libvirtd of {host} to be gone', 0.1)


def _start_libvirtd(host: str) -> None:
    """Start the host's libvirtd again, in the host's namespaces (joined
    through its virtlogd, which still runs), and record its new pid."""
    from kvmplace.lab import libvirtd
    from kvmplace.lab import state as labstate
    pids = libvirtd.daemon_pids(host)
    subprocess.run([*libvirtd.nsenter_prefix(pids['virtlogd']), 'libvirtd', '-d', '--listen'],
                   check=True, capture_output=True, timeout=60)
    state = labstate.load()
    record = next(h for h in state['hosts'] if h['name'] == host)
    libvirtd.wait_ready(record['address'], timeout=60)
    record['libvirtd_pid'] = libvirtd.daemon_pids(host)['libvirtd']
    labstate.save(state)


def test_destination_libvirtd_killed_before_post_verify(stack, shared_lab):  # noqa: F811
    """The copy completes, then the destination's libvirtd dies before the
    conductor has verified the guest there; later it is started again.

    To land exactly between the two, the destination's agent is stopped
    (SIGSTOP) once the copy runs - it plays no part in a peer-to-peer copy
    - so the conductor's post_verify waits on it; when the record turns
    'verifying' the destination's libvirtd is killed (SIGKILL) and the
    agent continued.

    What is correct then: the source has handed the guest over and
    undefined its copy - QEMU on the destination keeps running without its
    libvirtd - so there is no rollback to do, and recording a failure
    would misstate where the guest runs. The conductor keeps asking (each
    unanswered attempt is a failed post_verify step, the record stays
    'verifying', see MigrationWorkflow._verify) and completes the record
    once the restarted libvirtd lets the agent verify the guest: on the
    destination, main thread on the planned CPUs. (Had the destination
    stayed away beyond [conductor] answer_timeout_seconds, the record
    would end 'failed', saying the guest was handed over but could not be
    verified.)
    """
    guest = lab_guest(shared_lab, kind='linux', dirty_rate_mibps=0)
    source = where(guest)
    dest = fastest_other(shared_lab, source)
    # 8 MiB/s: the copy lasts over 15 s, so a poll through the CLI (a
    # process start each, seconds on a loaded 2-core machine) sees it run.
    rec = stack.cli('migrate', guest, '--to', dest, '--bandwidth-cap-mibps', '8')
    wait_for(lambda: copying(stack, rec['id'], 1.0), 60, 'the copy to start', 0.2)
    agent = stack.agents[dest].proc
    os.kill(agent.pid, signal.SIGSTOP)
    killed = False
    try:
        wait_for(lambda: (lambda r: r and r['status'] == 'verifying')(show(stack, rec['id'])),
                 120, 'the copy to complete (status verifying)', 0.2)
        _kill_libvirtd(dest)
        killed = True
        os.kill(agent.pid, signal.SIGCONT)
        # Unanswered attempts are recorded; the record does not give up.
        def unanswered():
            r = show(stack, rec['id'])
            assert r['status'] == 'verifying', r          # no rollback, no failure
            tried = [s for s in r['steps'] if s['name'] == 'post_verify' and s['finished_at']]
            return r if len(tried) >= 2 else None
        during = wait_for(unanswered, 120, 'post_verify to be tried (and fail) twice', 0.5)
        assert all(s['status'] == 'failed' for s in during['steps']
                   if s['name'] == 'post_verify' and s['finished_at']), during['steps']
        assert len(qemu_pids(guest)) == 1       # QEMU lives on without its libvirtd
        _start_libvirtd(dest)
        killed = False
    finally:
        os.kill(agent.pid, signal.SIGCONT)
        if killed:
            _start_libvirtd(dest)
    final = final_record(stack, rec['id'])
    assert final['status'] == 'completed', final
    assert_truthful(final, guest, None)
    verifies = [s['status'] for s in final['steps'] if s['name'] == 'post_verify']
    assert verifies[-1] == 'ok' and 'failed' in verifies, verifies


# -- 4. the database on a full, then read-only, disk --------------------------

class DbStack(Stack):
    """A second stack whose database lives on a small tmpfs of its own."""

    def __init__(self, lab, url: str, tmp, db_dir):
        self.db_dir = db_dir
        super().__init__(lab, url, tmp)

    def start_conductor(self) -> None:
        text = self.config.read_text()
        if str(self.db_dir) not in text:
            text = text.replace(f'connection = sqlite:///{self.tmp}/kvmplace.sqlite',
                                f'connection = sqlite:///{self.db_dir}/kvmplace.sqlite')
            self.config.write_text(text)
        super().start_conductor()

    def conductor_argv(self) -> list[str]:
        argv = [_bin('kvmplace-conductor')]
        for path in self.conductor_configs():
            argv += ['--config-file', str(path)]
        return argv


@pytest.fixture
def own_vhost():
    """A RabbitMQ vhost of this test's own: the module's stack still runs
    on the module's vhost, and two conductors on one topic would share the
    requests and the agents' reports between them."""
    import uuid
    vhost = f'kvmplace-test-{uuid.uuid4().hex[:10]}'
    _rabbitmqctl('add_vhost', vhost)
    _rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*')
    yield f'rabbit://guest:guest@127.0.0.1:5672/{vhost}'
    subprocess.run(['rabbitmqctl', 'delete_vhost', vhost], capture_output=True, timeout=60)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB tmpfs for the database (root: the lab tests run as root).
    Room for SQLite's write-ahead log, which grows to about 4 MiB between
    checkpoints with the agents reporting every 2 s."""
    mnt = tmp_path / 'dbfs'
    mnt.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'kvmplace-test-db',
                    str(mnt)], check=True, capture_output=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(['umount', '-l', str(mnt)], capture_output=True, timeout=30)


def _fill(directory) -> None:
    """Fill the file system to the last byte."""
    with open(os.path.join(directory, 'filler'), 'wb', buffering=0) as fh:
        try:
            while True:
                fh.write(b'\xa5' * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b'\xa5')
        except OSError:
            pass


def _integrity(path, read_only: bool = False) -> str:
    import sqlite3
    # On read-only media SQLite cannot make the WAL's -shm file: open the
    # file as immutable there.
    conn = sqlite3.connect(f'file:{path}?mode=ro&immutable=1', uri=True) if read_only \
        else sqlite3.connect(str(path))
    try:
        return conn.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        conn.close()


def test_database_on_a_full_then_read_only_disk(shared_lab, own_vhost, tiny_disk,  # noqa: F811
                                                tmp_path):
    """(a) With the disk full the conductor refuses a new migration through
    the CLI in one line (``kvmplace: error: database ...: database or disk
    is full (its file system is full)``), and records nothing; (b) the
    records written before are intact (SQLite's integrity check, and the
    finished migration reads back as it was) and the conductor works again
    once there is room; (c) on the same disk mounted read-only,
    kvmplace-conductor refuses to start with one line on stderr and a
    non-zero exit."""
    (tmp_path / 'stack').mkdir()
    db_file = tiny_disk / 'kvmplace.sqlite'
    s = DbStack(shared_lab, own_vhost, tmp_path / 'stack', tiny_disk)
    try:
        _wait_all_up(s, shared_lab)
        guest = lab_guest(shared_lab, kind='firmware')
        before = s.cli('migrate', guest, '--wait')
        assert before['status'] == 'completed', before
        _fill(tiny_disk)
        # The agents' reports (every 2 s) are the first writes to fail.
        wait_for(lambda: 'database or disk is full' in s.log(), 60,
                 'the conductor to hit the full disk', 0.5)
        other = next(h['name'] for h in shared_lab['hosts'] if h['name'] != before['dest'])
        argv = [_bin('kvmplace'), *sum((['--config-file', str(c)] for c in s.configs), []),
                'migrate', guest, '--to', other]
        refused = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        line = one_error_line(refused, 'kvmplace: error: ')
        assert 'database or disk is full' in line and '(its file system is full)' in line
        assert running_on(guest) == [before['dest']]          # nothing moved
        listed = s.cli('migrations', 'list')
        assert [m['id'] for m in listed] == [before['id']]    # nothing recorded
        again = s.cli('migrations', 'show', before['id'])
        assert {k: again[k] for k in ('status', 'source', 'dest', 'result', 'finished_at')} == \
            {k: before[k] for k in ('status', 'source', 'dest', 'result', 'finished_at')}
        # Room again: the same request goes through, no restart needed.
        os.remove(tiny_disk / 'filler')
        moved = s.cli('migrate', guest, '--to', other, '--wait')
        assert moved['status'] == 'completed' and running_on(guest) == [other], moved
    finally:
        s.stop()
    assert s.conductor.returncode is not None
    assert _integrity(db_file) == 'ok'
    # (c) Read-only: the conductor says so in one line and exits non-zero.
    subprocess.run(['mount', '-o', 'remount,ro', str(tiny_disk)], check=True,
                   capture_output=True, timeout=30)
    started = subprocess.run(s.conductor_argv(), capture_output=True, text=True, timeout=120)
    line = one_error_line(started, 'kvmplace-conductor: error: ')
    assert 'read-only' in line and str(db_file) in line, line
    assert _integrity(db_file, read_only=True) == 'ok'
