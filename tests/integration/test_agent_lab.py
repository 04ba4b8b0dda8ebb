"""kvmplace-agent on the lab: one agent per lab host, driven over RabbitMQ.

The agents run in the root namespace and reach their host's libvirtd by TCP
(as the lab's generated agent configs say); QEMU PIDs are global, so the
tests read every pinning back from /proc themselves. A recording RPC server
on topic kvmplace-conductor stands in for the conductor. Guests move during
the session, so every test asks the lab where a guest is now.
"""
from __future__ import annotations

import os
import time
import uuid as uuid_mod

import oslo_messaging as messaging
import pytest

from kvmplace import estimator, objects
from kvmplace.agent import procfs
from kvmplace.agent import rpcapi
from kvmplace.exception import InvalidInput
from tests.functional.conftest import (AgentProcess, broker_url,  # noqa: F401
                                       make_client_conf,
                                       conductor, wait_for)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
MIB = 2 ** 20


@pytest.fixture(scope='module')
def client_conf(broker_url, shared_lab):  # noqa: F811
    """The test plays the lab's conductor: the lab's agents obey only
    messages signed with its key ([message_auth] required = true)."""
    yield from make_client_conf(broker_url, lab_keys=True)


@pytest.fixture(scope='module')
def shared_lab(request):
    """The lab, reusing one that is already up (this machine is shared: an
    engineer or a service may be using it, and ``up --recreate`` would pull
    it from under them); else the session fixture brings one up."""
    from kvmplace.lab import manager
    from kvmplace.lab import state as labstate
    from tests.integration.conftest import lab_unavailable_reason
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    state = labstate.load()
    from kvmplace.lab.guests import GUEST_KERNEL_SAFETY_ARGS
    if state.get('phase') == 'up' and len(state.get('hosts', [])) >= 3 and \
            _default_guests(state) and \
            state.get('guest_kernel_args') == GUEST_KERNEL_SAFETY_ARGS:
        where = manager.locate_guests(state)
        if all(where.get(f'lab-vm{i}') for i in range(1, 5)):
            # This checkout's agent options (e.g. [agent] peers) in the
            # lab's agent configs, as the session fixture does.
            from kvmplace.lab import services
            services.write_config(state)
            return state
    return request.getfixturevalue('lab')


def _default_guests(state: dict) -> bool:
    """lab-vm1..4 are the lab's default mix (vm1 dirties 40 MiB/s, vm4 has
    a local disk...), which these tests rely on."""
    from kvmplace.lab.guests import DEFAULT_MIX
    recorded = {g['name']: g for g in state.get('guests', [])}
    for i, mix in enumerate(DEFAULT_MIX):
        guest = recorded.get(f'lab-vm{i + 1}')
        if guest is None or any(guest.get(k) != v for k, v in mix.items()):
            return False
    return True


@pytest.fixture(scope='module')
def agents(shared_lab, broker_url, client_conf, conductor, tmp_path_factory):  # noqa: F811
    """One kvmplace-agent process per lab host, on a private vhost."""
    from kvmplace.lab import services

    tmp = tmp_path_factory.mktemp('lab-agents')
    procs = {}
    overrides = tmp / 'overrides.conf'
    overrides.write_text('\n'.join([
        '[DEFAULT]', f'transport_url = {broker_url}', '', '[agent]',
        'report_interval_seconds = 2', 'probe_seconds_per_node = 0.1',
        'probe_buffer_mib = 16', 'dirty_rate_interval_seconds = 600',
        'dirty_rate_calc_seconds = 2', 'progress_interval_seconds = 0.5', '']))
    api = rpcapi.AgentAPI(conf=client_conf, timeout=30)
    for host in shared_lab['hosts']:
        name = host['name']
        # The lab's own agent config (host, libvirt_uri, migration_address,
        # link_mbps, numa_topology_file), then the test's overrides.
        procs[name] = AgentProcess([services.agent_config_file(name), str(overrides)],
                                   str(tmp / f'{name}.log'))
    quick = rpcapi.AgentAPI(conf=client_conf, timeout=3)
    for name, proc in procs.items():
        def answers(name=name, proc=proc):
            if proc.proc.poll() is not None:
                pytest.fail(f'agent of {name} exited:\n{proc.log()}')
            try:
                return quick.get_host_state({}, name)
            except messaging.MessagingTimeout:
                return None
        wait_for(answers, 90, f'the agent of {name}', 0.5)
    yield {'api': api, 'procs': procs}
    for proc in procs.values():
        proc.stop()


def _where(guest: str) -> str:
    from kvmplace.lab import measure
    return measure.where(guest)


def _state(agents, host: str) -> dict:
    return agents['api'].get_host_state({}, host)


def _guest(agents, host: str, name: str) -> dict:
    return next(g for g in _state(agents, host)['instances'] if g['name'] == name)


def _other_host(shared_lab, source: str, min_link_mbps: int = 0) -> str:
    return next(h['name'] for h in shared_lab['hosts']
                if h['name'] != source and h['link_mbps'] >= min_link_mbps)


def _link(shared_lab, host: str) -> int:
    return next(h['link_mbps'] for h in shared_lab['hosts'] if h['name'] == host)


def _migrate(agents, lab, guest: str, dest: str, policy: dict, pre_pin: bool = True
             ) -> tuple[dict, dict, dict, dict]:
    """The conductor's steps through the agents' RPC: check_destination,
    pre_pin, migrate. Returns (source guest dict, dest answer, pin, start)."""
    api = agents['api']
    source = _where(guest)
    g = _guest(agents, source, guest)
    answer = api.check_destination({}, dest, instance=g,
                                   source_cpu_model=_state(agents, source)['cpu_model'])
    assert answer['ok'], answer['reason']
    pin = api.pre_pin({}, source, instance=guest, node=None) if pre_pin else {}
    mid = f'mig-{uuid_mod.uuid4().hex[:10]}'
    started = api.migrate({}, source, migration_id=mid, instance=guest, dest_host=dest,
                          dest_uri=answer['libvirt_uri'], migrate_uri=answer['migration_uri'],
                          dest_cpus=answer['cpus'], policy=policy)
    assert started['started'] and started['migration_id'] == mid
    return g, answer, pin, started


def _finished(conductor, mid: str, timeout_s: float) -> dict:  # noqa: F811
    casts = wait_for(lambda: conductor.named('migration_finished', migration_id=mid),
                     timeout_s, f'migration_finished for {mid}', 0.2)
    return casts[0]['result']


def test_each_agent_reports_its_lab_host(shared_lab, agents):
    for host in shared_lab['hosts']:
        state = _state(agents, host['name'])
        parsed = objects.Host.from_dict(state)
        assert parsed.name == host['name'] and parsed.link_mbps == host['link_mbps']
        assert [n.cpus for n in parsed.numa] == ['0', '1']  # the lab's numa.json
        assert state['migration_address'] == host['address']
        assert state['libvirt_uri'] == host['libvirt_uri']
        assert state['hypervisor_hostname'] == host['name']
        for g in state['instances']:
            if g['state'] != 'running':
                continue
            # The PID comes through the QEMU monitor over TCP; /proc agrees.
            assert g['qemu_pid'], g['name']
            assert procfs.is_qemu_of(g['qemu_pid'], g['uuid'])
            assert g['qemu_affinity'] == procfs.thread_affinity(g['qemu_pid'])
            objects.Instance.from_dict(g)


def test_dirty_rate_of_a_busy_guest(shared_lab, agents):
    """lab-vm1 dirties 40 MiB/s; the agent's background sample says so."""
    def sampled():
        g = _guest(agents, _where('lab-vm1'), 'lab-vm1')
        return g if g['dirty_rate_known'] else None
    g = wait_for(sampled, 60, 'a dirty-rate sample of lab-vm1', 1.0)
    print(f"lab-vm1 dirty rate (page sampling): {g['dirty_rate_mibps']} MiB/s")
    assert 20 <= g['dirty_rate_mibps'] <= 80


def test_pre_pin_moves_the_main_thread_between_emulated_nodes(shared_lab, agents):
    api = agents['api']
    host = _where('lab-vm2')
    g = _guest(agents, host, 'lab-vm2')
    pid, before = g['qemu_pid'], procfs.thread_affinity(g['qemu_pid'])
    to0 = api.pre_pin({}, host, instance='lab-vm2', node=0)
    assert procfs.thread_affinity(pid) == '0' == to0['affinity']
    to1 = api.pre_pin({}, host, instance='lab-vm2', node=1)
    assert procfs.thread_affinity(pid) == '1' == to1['affinity']
    assert to1['previous_cpus'] == '0'
    assert _guest(agents, host, 'lab-vm2')['emulator_node'] == 1
    api.restore_pin({}, host, instance='lab-vm2', cpus=to0['previous_cpus'])
    assert procfs.thread_affinity(pid) == before


def test_pre_pin_avoids_a_slowed_node(shared_lab, agents):
    from kvmplace.lab import numa as labnuma
    api = agents['api']
    host = _where('lab-vm2')
    labnuma.set_bandwidth(host, 0, 2000)  # node 0 at a fifth of its baseline
    try:
        pin = api.pre_pin({}, host, instance='lab-vm2', node=None)
        assert pin['node'] == 1 and pin['affinity'] == '1'
        labnuma.set_bandwidth(host, 0, None)
        labnuma.set_bandwidth(host, 1, 2000)
        pin2 = api.pre_pin({}, host, instance='lab-vm2', node=None)
        assert pin2['node'] == 0 and pin2['affinity'] == '0'
        api.restore_pin({}, host, instance='lab-vm2', cpus=pin['previous_cpus'])
    finally:
        labnuma.set_bandwidth(host, 0, None)
        labnuma.set_bandwidth(host, 1, None)


def test_live_migration_through_the_agents(shared_lab, agents, conductor):  # noqa: F811
    """lab-vm3 (128 MiB of non-zero memory, no dirtying) moves to another
    host; progress arrives while it runs; the destination's QEMU main thread
    runs on the CPUs the destination agent planned."""
    guest = 'lab-vm3'
    source = _where(guest)
    dest = _other_host(shared_lab, source)
    t0 = time.monotonic()
    g, answer, pin, started = _migrate(agents, shared_lab, guest, dest, {'max_downtime_ms': 300})
    mid = started['migration_id']
    result = _finished(conductor, mid, 240)
    wall = time.monotonic() - t0
    assert result['status'] == 'completed', result['error']
    assert _where(guest) == dest
    progress = [c['progress'] for c in conductor.named('migration_progress',
                                                       migration_id=mid)]
    running = [p for p in progress if p['phase'].startswith('iterate')]
    assert running, f'no progress while iterating: {[p["phase"] for p in progress]}'
    assert progress[-1]['phase'] == 'complete'
    assert all(p['total_mib'] > 0 for p in running)
    assert any(p['eta_seconds'] is not None for p in running)
    remaining = [p['remaining_mib'] for p in running]
    assert remaining[-1] <= remaining[0]
    assert result['data_mib'] >= 100  # the buffer of non-zero pages crossed the wire
    # QEMU's downtime limit: chosen by the model, only ever stepped up,
    # never above the 300 ms budget (less the lab's switch-over cost).
    limits = [s['limit_ms'] for s in result['downtime_steps']]
    assert limits and limits == sorted(limits), result['downtime_steps']
    assert 1 <= result['downtime_limit_ms'] == limits[-1] <= 300
    print(f"{guest} {source} -> {dest}: {result['elapsed_seconds']:.1f} s in the agent, "
          f"{wall:.1f} s end to end, {result['data_mib']:.0f} MiB at {result['mibps']} MiB/s, "
          f"downtime {result['downtime_ms']} ms (QEMU limit {result['downtime_limit_ms']} ms), "
          f"{result['iterations']} iterations, "
          f"{len(progress)} progress casts")
    # The destination's main thread, read by the test from /proc.
    (pid,) = procfs.find_qemu_pids(g['uuid'])
    assert procfs.thread_affinity(pid) == answer['cpus']
    verify = agents['api'].post_verify({}, dest, instance=guest, uuid=g['uuid'],
                                       memory_mib=g['memory_mib'], vcpus=g['vcpus'],
                                       cpus=answer['cpus'])
    assert verify['ok'], verify['reason']
    job = agents['api'].get_job({}, source, instance=guest)
    assert job['active'] is False and job['result']['status'] == 'completed'
    # The guest is gone from the source: verifying there fails, with a reason.
    gone = agents['api'].post_verify({}, source, instance=guest, uuid=g['uuid'],
                                     memory_mib=g['memory_mib'], vcpus=g['vcpus'], cpus=None)
    assert not gone['ok'] and f'is not on host {source}' in gone['reason']
    assert pin['verified'] is True


def test_unconverging_migration_times_out_and_the_guest_stays(shared_lab, agents, conductor):  # noqa: F811,E501
    """lab-vm1 dirties 40 MiB/s; capped at 8 MiB/s its migration cannot
    converge. The progress (or completion) timeout aborts it: the guest
    still runs on the source, nowhere else, and its pinning is restored."""
    guest = 'lab-vm1'
    source = _where(guest)
    dest = _other_host(shared_lab, source)
    policy = {'bandwidth_cap_mibps': 8, 'progress_timeout_seconds': 6,
              'completion_timeout_seconds_per_gib': 120, 'timeout_action': 'abort',
              'allow_auto_converge': False, 'allow_post_copy': False}
    g = _guest(agents, source, guest)
    before = procfs.thread_affinity(g['qemu_pid'])
    _, answer, pin, started = _migrate(agents, shared_lab, guest, dest, policy)
    assert procfs.thread_affinity(g['qemu_pid']) == pin['cpus']
    result = _finished(conductor, started['migration_id'], 120)
    assert result['status'] == 'timed-out', result
    assert result['timed_out_by'] in ('progress', 'completion')
    assert 'timeout' in result['error']
    print(f"{guest}: {result['error']} after {result['elapsed_seconds']:.1f} s")
    # Rollback as the conductor does it: put the pinning back.
    agents['api'].restore_pin({}, source, instance=guest, cpus=pin['previous_cpus'])
    assert _where(guest) == source
    assert not any(x['name'] == guest and x['state'] == 'running'
                   for x in _state(agents, dest)['instances'])
    g_after = _guest(agents, source, guest)
    assert g_after['state'] == 'running' and g_after['qemu_pid'] == g['qemu_pid']
    assert procfs.thread_affinity(g['qemu_pid']) == before


def test_local_disk_is_copied_and_counted(shared_lab, agents, conductor):  # noqa: F811
    """lab-vm4 has a 64 MiB qcow2 on its host's local storage. The
    destination agent makes sure a storage pool covers the image directory,
    so libvirt pre-creates the image; the migration copies the disk
    (NON_SHARED_DISK) and every estimate counts it."""
    guest = 'lab-vm4'
    source = _where(guest)
    dest = _other_host(shared_lab, source, min_link_mbps=1000)
    g = _guest(agents, source, guest)
    assert g['shared_storage'] is False and g['disks'][0]['path'].endswith('.qcow2')
    inst = objects.Instance.from_dict(g)
    assert inst.disk_mib >= 60
    params = estimator.ModelParams()
    est = estimator.estimate(inst, objects.Host.from_dict(_state(agents, source)),
                             objects.Host.from_dict(_state(agents, dest)),
                             min(_link(shared_lab, source), _link(shared_lab, dest)), params)
    assert est.data_mib >= inst.memory_mib + inst.disk_mib - 0.1  # data_mib is rounded
    # A copy left behind by an earlier migration would hide whether libvirt
    # pre-creates the image: remove it (the guest does not run on dest).
    from kvmplace.lab import guests as labguests
    image = labguests.host_path(dest, g['disks'][0]['path'])
    if os.path.exists(image):
        os.remove(image)
    _, answer, _pin, started = _migrate(agents, shared_lab, guest, dest, {}, pre_pin=False)
    assert answer['pools'] and started['local_disks'] == ['vda']
    assert started['data_mib'] >= g['memory_mib'] + 60  # the agent's own figure
    result = _finished(conductor, started['migration_id'], 240)
    assert result['status'] == 'completed', result['error']
    assert _where(guest) == dest
    assert os.path.getsize(image) > 0  # pre-created by libvirt, then filled over NBD
    # The source's copy is stale now: the source agent removed it (as Nova
    # does), so the guest may come back to this host later.
    assert result['source_disks_removed'] == [g['disks'][0]['path']], result
    assert not os.path.exists(labguests.host_path(source, g['disks'][0]['path']))
    progress = [c['progress'] for c in conductor.named(
        'migration_progress', migration_id=started['migration_id'])]
    assert max(p.get('disk_total_mib', 0) for p in progress) >= 60
    assert result['disk_mib'] >= 60  # the image really crossed the wire
    assert result['data_mib'] >= result['disk_mib']
    print(f"{guest} with disk {source} -> {dest}: {result['elapsed_seconds']:.1f} s, "
          f"{result['data_mib']:.0f} MiB (disk {result['disk_mib']:.0f} MiB), "
          f"estimate {est.data_mib} MiB")
    verify = agents['api'].post_verify({}, dest, instance=guest, uuid=g['uuid'],
                                       memory_mib=g['memory_mib'], vcpus=g['vcpus'],
                                       cpus=answer['cpus'])
    assert verify['ok'], verify['reason']


def test_bad_arguments_are_refused_on_the_lab(shared_lab, agents):
    api = agents['api']
    host = _where('lab-vm2')
    with pytest.raises(InvalidInput, match='node'):
        api.pre_pin({}, host, instance='lab-vm2', node=7)
    with pytest.raises(InvalidInput, match='dest_uri'):
        api.migrate({}, host, migration_id='m-bad', instance='lab-vm2', dest_host='lab-h9',
                    dest_uri='qemu+ssh://root@10.213.77.12/system', migrate_uri=None,
                    dest_cpus=None, policy={})
    with pytest.raises(InvalidInput, match='dest_host'):
        api.migrate({}, host, migration_id='m-bad', instance='lab-vm2', dest_host=host,
                    dest_uri='qemu+tcp://10.213.77.12:16509/system', migrate_uri=None,
                    dest_cpus=None, policy={})
    assert _where('lab-vm2') == host


def test_progress_timeout_can_switch_to_post_copy(shared_lab, agents, conductor):  # noqa: F811
    """The same unconverging guest, with post-copy allowed and the timeout
    action "post-copy": instead of giving up, the agent switches over and
    the destination pulls the rest; the guest ends up running there."""
    guest = 'lab-vm1'
    source = _where(guest)
    dest = _other_host(shared_lab, source)
    policy = {'bandwidth_cap_mibps': 8, 'progress_timeout_seconds': 4,
              'completion_timeout_seconds_per_gib': 40, 'timeout_action': 'post-copy',
              'allow_post_copy': True}
    g, answer, pin, started = _migrate(agents, shared_lab, guest, dest, policy)
    result = _finished(conductor, started['migration_id'], 180)
    assert result['status'] == 'completed', result['error']
    assert result['postcopy'] is True
    progress = [c['progress'] for c in conductor.named(
        'migration_progress', migration_id=started['migration_id'])]
    assert any(p['phase'] == 'post-copy' for p in progress)
    assert _where(guest) == dest
    print(f"{guest}: switched to post-copy, done in {result['elapsed_seconds']:.1f} s")
    verify = agents['api'].post_verify({}, dest, instance=guest, uuid=g['uuid'],
                                       memory_mib=g['memory_mib'], vcpus=g['vcpus'],
                                       cpus=answer['cpus'])
    assert verify['ok'], verify['reason']


def test_post_verify_sees_a_guest_kernel_panic(shared_lab, agents):
    """A real guest kernel panic, caught by post_verify.

    A scratch guest (the lab's image, booted with ``unknown_nmi_panic=1``)
    gets an NMI from libvirt (virDomainInjectNMI) while the agent's
    post_verify watches it ([agent] post_verify_settle_seconds, 1 s by
    default): the guest kernel panics, its panic device tells QEMU, libvirt
    leaves the domain 'crashed' (on_crash=preserve) and post_verify fails
    saying so. This is what a guest whose memory arrived damaged does right
    after a switch-over (see guests.GUEST_KERNEL_SAFETY_ARGS); before the
    NMI the same call passes.
    """
    import re
    import threading

    import libvirt

    from kvmplace.lab import guests as labguests
    from kvmplace.lab import image as labimage
    from kvmplace.lab import manager

    host = shared_lab['hosts'][1]['name']
    linux_type = next(g['domain_type'] for g in shared_lab['guests'] if g['kind'] == 'linux')
    spec = labguests.GuestSpec(name='lab-panic', host=host, kind='linux', memory_mib=160,
                               buffer_mib=8, domain_type=linux_type)
    xml = labguests.domain_xml(spec, labimage.ensure_boot_image())
    xml = re.sub(r'<cmdline>', '<cmdline>unknown_nmi_panic=1 ', xml)
    conn = manager.connect(host)
    serial = labguests.host_path(host, labguests.SERIAL_LOG.format(name=spec.name))
    if os.path.exists(serial):
        os.unlink(serial)           # ready() must see this boot's marker
    dom = conn.createXML(xml, 0)    # transient: gone once destroyed
    try:
        wait_for(lambda: labguests.ready(spec, host), 120, 'the scratch guest to boot', 0.2)
        api = agents['api']
        g = _guest(agents, host, spec.name)
        args = dict(instance=spec.name, uuid=g['uuid'], memory_mib=g['memory_mib'],
                    vcpus=g['vcpus'], cpus=None)
        started = time.monotonic()
        healthy = api.post_verify({}, host, **args)
        assert healthy['ok'], healthy
        assert time.monotonic() - started >= 1.0        # it watched the guest

        nmi = threading.Timer(0.3, dom.injectNMI)
        nmi.start()
        try:
            answer = api.post_verify({}, host, **args)
        finally:
            nmi.join()
        assert not answer['ok'], answer
        # The panic is caught either by the first look (libvirt's crash
        # reason: "kernel panic reported by its panic device") or, on a
        # loaded machine, by the settle watch ("left the running state
        # (crashed)"); both must say crashed and fail the migration.
        assert 'crashed' in answer['reason'], answer
        state, reason = dom.state()
        assert (state, reason) == (libvirt.VIR_DOMAIN_CRASHED,
                                   libvirt.VIR_DOMAIN_CRASHED_PANICKED)
        # (The console stays silent: the kernel prints the panic after its
        # panic notifiers, and the panic device's notifier has QEMU pause
        # the guest first; CRASHED_PANICKED is the guest kernel's own word.)
        # Asked again later, the crash is still what it reports.
        again = api.post_verify({}, host, **args)
        assert not again['ok'] and 'crashed' in again['reason']
    finally:
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass
        conn.close()


def test_a_real_agent_refuses_a_migration_to_an_unknown_host(shared_lab, agents):
    """Issue 16: over RabbitMQ, a lab agent refuses a destination outside
    its [agent] peers and a URI that names someone other than the peer;
    the guest stays where it is."""
    api = agents['api']
    host = _where('lab-vm2')
    peer = next(h for h in shared_lab['hosts'] if h['name'] != host)
    with pytest.raises(InvalidInput, match='dest_host: .*not a known peer'):
        api.migrate({}, host, migration_id='m-evil', instance='lab-vm2',
                    dest_host='collector', dest_uri='qemu+tcp://collector.invalid/system',
                    migrate_uri=None, dest_cpus=None, policy={})
    with pytest.raises(InvalidInput, match='migrate_uri: .*does not name peer'):
        api.migrate({}, host, migration_id='m-evil', instance='lab-vm2',
                    dest_host=peer['name'],
                    dest_uri=f"qemu+tcp://{peer['address']}:16509/system",
                    migrate_uri='tcp://10.213.77.250', dest_cpus=None, policy={})
    assert _where('lab-vm2') == host
    assert api.get_job({}, host, instance='lab-vm2')['migration_id'] != 'm-evil'


def test_a_real_agent_refuses_a_pool_outside_the_image_directories(shared_lab, agents):
    """Issue 16: check_destination used to define a pool of any directory."""
    import libvirt
    host = shared_lab['hosts'][0]
    conn = libvirt.open(host['libvirt_uri'])
    try:
        before = sorted(p.name() for p in conn.listAllStoragePools())
        answer = agents['api'].check_destination(
            {}, host['name'], instance={
                'name': 'incoming-evil', 'memory_mib': 16, 'vcpus': 1,
                'uuid': str(uuid_mod.uuid4()),
                'disks': [{'shared': False, 'path': '/etc/kvmplace-evil.qcow2'}]},
            source_cpu_model=None)
        after = sorted(p.name() for p in conn.listAllStoragePools())
    finally:
        conn.close()
    assert answer['ok'] is False and 'image_directories' in answer['reason']
    assert after == before
