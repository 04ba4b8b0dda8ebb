"""kvmplace-agent as a process, over real RabbitMQ, with a real KVM guest on
the root namespace's libvirtd: host state, the NUMA probe, dirty-rate
sampling, report casts, pinning of the real QEMU main thread (read back from
/proc by the test itself), post_verify, and refusals of bad arguments.
"""
from __future__ import annotations

import json
import os
import uuid as uuid_mod

import oslo_messaging as messaging
import pytest

from kvmplace import objects
from kvmplace.agent import procfs
from kvmplace.agent import rpcapi
from kvmplace.exception import InvalidInput
from kvmplace.lab import accel
from tests.functional.conftest import AgentProcess, wait_for, write_agent_config

libvirt = pytest.importorskip('libvirt')
pytestmark = pytest.mark.timeout(180)

GUEST_XML = """<domain type='{dtype}'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/></devices>
</domain>"""


@pytest.fixture(scope='module')
def system_conn():
    if os.geteuid() != 0:
        pytest.skip('needs root for qemu:///system')
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        conn = libvirt.open('qemu:///system')
    except libvirt.libvirtError as exc:
        pytest.skip(f'qemu:///system unavailable ({exc}); run tools/services.sh start')
    yield conn
    conn.close()


@pytest.fixture(scope='module')
def guest(system_conn):
    """A firmware-only guest (SeaBIOS idles): starts in ms.

    KVM when QEMU under this libvirtd can open /dev/kvm (decided by a trial
    start as libvirtd's QEMU user, never from root's view), TCG otherwise:
    with /dev/kvm 0600 root:root (no udev) QEMU as libvirt-qemu cannot.
    """
    name = f'kvmplace-ft-{uuid_mod.uuid4().hex[:8]}'
    dtype, _why = accel.domain_type(system_conn)
    dom = system_conn.createXML(GUEST_XML.format(dtype=dtype, name=name), 0)
    pid = procfs.read_pid_file(f'/run/libvirt/qemu/{name}.pid')
    yield {'name': name, 'uuid': dom.UUIDString(), 'pid': pid, 'dom': dom}
    try:
        dom.destroy()
    except libvirt.libvirtError:
        pass


@pytest.fixture(scope='module')
def agent(tmp_path_factory, broker_url, client_conf, conductor, guest):
    tmp = tmp_path_factory.mktemp('agent')
    numa_file = tmp / 'numa.json'
    # Emulated two-node topology (LAB.md): CPU 0 = node 0, CPU 1 = node 1.
    # No bandwidth figures: the agent's probe has to fill them in.
    numa_file.write_text(json.dumps([
        {'id': 0, 'cpus': '0', 'memory_mib': 2048, 'free_memory_mib': 1024},
        {'id': 1, 'cpus': '1', 'memory_mib': 2048, 'free_memory_mib': 2048}]))
    host = f'func-{uuid_mod.uuid4().hex[:8]}'
    config = write_agent_config(
        tmp / 'agent.conf', broker_url, host=host, libvirt_uri='qemu:///system',
        numa_topology_file=numa_file, report_interval_seconds=1,
        probe_seconds_per_node=0.1, probe_buffer_mib=16, dirty_rate_interval_seconds=5,
        link_mbps=10000, migration_address='127.0.0.1', peers='h2:127.0.0.2',
        image_directories=str(tmp / 'images'))
    proc = AgentProcess(config, str(tmp / 'agent.log'))
    api = rpcapi.AgentAPI(conf=client_conf, timeout=10)

    def answers():
        if proc.proc.poll() is not None:
            pytest.fail(f'kvmplace-agent exited:\n{proc.log()}')
        try:
            return api.get_host_state({}, host)
        except messaging.MessagingTimeout:
            return None
    wait_for(answers, 60, 'the agent to answer get_host_state')
    yield {'api': api, 'host': host, 'proc': proc, 'numa_file': numa_file}
    proc.stop()


def _guest_state(agent, name):
    state = agent['api'].get_host_state({}, agent['host'])
    return state, next(g for g in state['instances'] if g['name'] == name)


def _main_thread_cpus(pid: int) -> str:
    return procfs.thread_affinity(pid)


def test_host_state_shows_the_real_qemu_process(agent, guest):
    state, g = _guest_state(agent, guest['name'])
    host = objects.Host.from_dict(state)
    assert host.name == agent['host'] and host.link_mbps == 10000
    assert [n.cpus for n in host.numa] == ['0', '1']
    assert g['qemu_pid'] == guest['pid']  # from libvirt's PID file, checked by UUID
    assert g['qemu_affinity'] == _main_thread_cpus(guest['pid'])
    assert g['state'] == 'running' and g['memory_mib'] == 128 and g['vcpus'] == 1
    assert len(g['vcpu_cpus']) == 1 and g['vcpu_cpus'][0] in (0, 1)
    assert g['shared_storage'] is True and g['disk_gib'] == 0  # no disks at all
    inst = objects.Instance.from_dict(g)
    assert inst.uuid == guest['uuid']
    assert state['migration_address'] == '127.0.0.1'


def test_probe_measures_each_emulated_node(agent):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip('needs 2 CPUs')

    def measured():
        nodes = agent['api'].get_host_state({}, agent['host'])['numa']
        return nodes if all(n.get('bandwidth_source') == 'probe' for n in nodes) else None
    nodes = wait_for(measured, 30, 'probe figures on both nodes', 0.5)
    for node in nodes:
        assert node['bandwidth_mibps'] > 500  # DRAM writes; any machine does more
        assert 0 < node['health'] <= 1.0
    print('probe MiB/s per node:', {n['id']: n['bandwidth_mibps'] for n in nodes})


def test_reports_arrive_at_the_conductor(agent, conductor, guest):
    def reported():
        for cast in conductor.named('report_state'):
            state = cast['host_state']
            if state['name'] == agent['host']:
                return state
        return None
    state = wait_for(reported, 20, 'a report_state cast')
    assert any(g['name'] == guest['name'] for g in state['instances'])


def test_dirty_rate_is_sampled_in_the_background(agent, guest):
    def known():
        _, g = _guest_state(agent, guest['name'])
        return g if g['dirty_rate_known'] else None
    g = wait_for(known, 40, 'a dirty-rate sample', 0.5)
    assert 0 <= g['dirty_rate_mibps'] < 50  # SeaBIOS idling dirties next to nothing


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs 2 CPUs')
def test_pre_pin_moves_the_main_thread_between_nodes_and_restore_brings_it_back(
        agent, guest):
    api, host, pid = agent['api'], agent['host'], guest['pid']
    before = _main_thread_cpus(pid)
    vcpu_tids = [int(t) for t in os.listdir(f'/proc/{pid}/task') if int(t) != pid]
    vcpu_before = {t: procfs.thread_affinity(pid, t) for t in vcpu_tids}
    first = api.pre_pin({}, host, instance=guest['name'], node=0)
    assert first['affinity'] == '0' and _main_thread_cpus(pid) == '0'
    assert first['previous_cpus'] == before and first['verified'] is True
    second = api.pre_pin({}, host, instance=guest['name'], node=1)
    assert (second['cpus'], second['previous_cpus']) == ('1', '0')
    assert _main_thread_cpus(pid) == '1'  # the kernel's view, read by the test
    _, g = _guest_state(agent, guest['name'])
    assert g['emulator_node'] == 1 and g['qemu_affinity'] == '1'
    # vCPU threads are not what the agent pins: they keep their affinity.
    vcpu_now = {t: procfs.thread_affinity(pid, t) for t in vcpu_tids
                if procfs.thread_affinity(pid, t) is not None}
    kvm_threads = [t for t in vcpu_now if 'CPU' in (open(f'/proc/{pid}/task/{t}/comm').read())]
    assert kvm_threads and all(vcpu_now[t] == vcpu_before[t] for t in kvm_threads)
    back = api.restore_pin({}, host, instance=guest['name'], cpus=first['previous_cpus'])
    assert back['affinity'] == before and _main_thread_cpus(pid) == before


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs 2 CPUs')
def test_pre_pin_without_a_node_avoids_the_slow_one(agent, guest):
    nodes = json.loads(agent['numa_file'].read_text())
    original = json.dumps(nodes)
    for node in nodes:
        node['bandwidth_mibps'], node['baseline_mibps'] = (3000, 9000) if node['id'] == 1 \
            else (9000, 9000)
    agent['numa_file'].write_text(json.dumps(nodes))
    try:
        before = _main_thread_cpus(guest['pid'])
        answer = agent['api'].pre_pin({}, agent['host'], instance=guest['name'])
        assert answer['node'] == 0 and _main_thread_cpus(guest['pid']) == '0'
        agent['api'].restore_pin({}, agent['host'], instance=guest['name'],
                                 cpus=answer['previous_cpus'])
        assert _main_thread_cpus(guest['pid']) == before
    finally:
        agent['numa_file'].write_text(original)


def test_post_verify_reads_the_live_process(agent, guest):
    api, host = agent['api'], agent['host']
    cpus = _main_thread_cpus(guest['pid'])
    ok = api.post_verify({}, host, instance=guest['name'], uuid=guest['uuid'], memory_mib=128,
                         vcpus=1, cpus=cpus)
    assert ok['ok'], ok['reason']
    assert ok['affinity'] == cpus
    other = '1' if cpus != '1' else '0'
    wrong = api.post_verify({}, host, instance=guest['name'], uuid=guest['uuid'],
                            memory_mib=128, vcpus=1, cpus=other)
    assert not wrong['ok'] and f'expected {other}' in wrong['reason']
    missing = api.post_verify({}, host, instance='kvmplace-ft-absent', uuid=guest['uuid'],
                              memory_mib=128, vcpus=1, cpus=None)
    assert not missing['ok'] and 'is not on host' in missing['reason']


def test_check_destination_offers_a_node_and_a_migration_uri(agent):
    answer = agent['api'].check_destination(
        {}, agent['host'], instance={'name': 'incoming-1', 'memory_mib': 64, 'vcpus': 1,
                                     'uuid': str(uuid_mod.uuid4())},
        source_cpu_model=None)
    assert answer['ok'], answer['reason']
    assert answer['cpus'] in ('0', '1') and answer['migration_uri'] == 'tcp://127.0.0.1'


@pytest.mark.parametrize('method, kwargs, field', [
    ('pre_pin', {'instance': 'x;rm -rf /', 'node': None}, 'instance'),
    ('pre_pin', {'instance': '{guest}', 'node': 9}, 'node'),
    ('restore_pin', {'instance': '{guest}', 'cpus': '0-4095'}, 'cpus'),
    ('migrate', {'migration_id': '../../x', 'instance': '{guest}', 'dest_host': 'h2',
                 'dest_uri': 'qemu+tcp://127.0.0.1/system', 'migrate_uri': None,
                 'dest_cpus': None, 'policy': {}}, 'migration_id'),
    ('migrate', {'migration_id': 'm1', 'instance': '{guest}', 'dest_host': 'h2',
                 'dest_uri': 'qemu+tcp://127.0.0.1/system', 'migrate_uri': 'exec:cat',
                 'dest_cpus': None, 'policy': {}}, 'migrate_uri'),
    ('migrate', {'migration_id': 'm1', 'instance': '{guest}', 'dest_host': 'h2',
                 'dest_uri': 'qemu+tcp://127.0.0.1/system', 'migrate_uri': None,
                 'dest_cpus': None, 'policy': {'max_downtime_ms': -1}},
     'policy.max_downtime_ms'),
    ('post_verify', {'instance': '{guest}', 'uuid': 'nope', 'memory_mib': 1, 'vcpus': 1,
                     'cpus': None}, 'uuid'),
    # Issue 16: only to a configured peer ([agent] peers = h2:127.0.0.2),
    # and both URIs must name that peer.
    ('migrate', {'migration_id': 'm1', 'instance': '{guest}', 'dest_host': 'collector',
                 'dest_uri': 'qemu+tcp://collector.invalid/system', 'migrate_uri': None,
                 'dest_cpus': None, 'policy': {}}, 'dest_host'),
    ('migrate', {'migration_id': 'm1', 'instance': '{guest}', 'dest_host': 'h2',
                 'dest_uri': 'qemu+tcp://collector.invalid/system', 'migrate_uri': None,
                 'dest_cpus': None, 'policy': {}}, 'dest_uri'),
    ('migrate', {'migration_id': 'm1', 'instance': '{guest}', 'dest_host': 'h2',
                 'dest_uri': 'qemu+tcp://127.0.0.2/system', 'migrate_uri': 'tcp://10.9.9.9',
                 'dest_cpus': None, 'policy': {}}, 'migrate_uri'),
    # Sized before it is expanded (kvmplace.bounds).
    ('restore_pin', {'instance': '{guest}', 'cpus': ','.join(['0-8191'] * 200)}, 'cpus'),
])
def test_bad_arguments_are_refused_over_rabbitmq(agent, guest, method, kwargs, field):
    kwargs = {k: (v.format(guest=guest['name']) if isinstance(v, str) else v)
              for k, v in kwargs.items()}
    with pytest.raises(InvalidInput) as err:
        getattr(agent['api'], method)({}, agent['host'], **kwargs)
    assert str(err.value).startswith(field + ':')
    assert guest['dom'].isActive()


@pytest.mark.parametrize('directory', ['/etc', '/', '/root/.ssh', '/dev'])
def test_no_storage_pool_outside_the_image_directories(agent, directory):
    """Issue 16: check_destination made a persistent, active "dir" pool of
    any directory a caller named. A real agent over RabbitMQ now refuses a
    disk outside [agent] image_directories, and libvirt has no new pool."""
    conn = libvirt.open('qemu:///system')
    try:
        before = sorted(p.name() for p in conn.listAllStoragePools())
        answer = agent['api'].check_destination(
            {}, agent['host'], instance={
                'name': 'incoming-2', 'memory_mib': 64, 'vcpus': 1,
                'uuid': str(uuid_mod.uuid4()),
                'disks': [{'shared': False, 'path': f'{directory.rstrip("/")}/x.qcow2'}]},
            source_cpu_model=None)
        after = sorted(p.name() for p in conn.listAllStoragePools())
    finally:
        conn.close()
    assert answer['ok'] is False
    assert 'is not under [agent] image_directories' in answer['reason']
    assert after == before
