"""The host state built from the test driver: shape, and that it loads into
the scheduler's objects."""
from __future__ import annotations

import json

from kvmplace import objects
from kvmplace.agent import guest
from tests.unit.agent.conftest import TEST_GUEST

HOST_FIELDS = ('name', 'enabled', 'maintenance', 'link_mbps', 'vcpus', 'vcpus_used',
               'memory_mib', 'memory_used_mib', 'cpu_model', 'numa')
GUEST_FIELDS = ('name', 'uuid', 'host', 'memory_mib', 'vcpus', 'state', 'dirty_rate_mibps',
                'emulator_node', 'emulator_cpus', 'qemu_pid', 'qemu_affinity', 'vcpu_cpus',
                'disks', 'disk_gib', 'shared_storage')


def test_host_state_has_the_inventory_fields_and_loads_as_a_host(agent):
    state = agent.manager.get_host_state({})
    for name in HOST_FIELDS + ('instances', 'libvirt_uri', 'migration_address',
                               'reported_at', 'active_jobs'):
        assert name in state, name
    json.dumps(state)  # plain data only: it crosses RPC
    host = objects.Host.from_dict(state)
    assert host.name == 'unit-host'
    assert [n.cpus for n in host.numa] == ['0-3', '4-7']
    assert host.best_node().id == 1  # node 0 is at a third of its baseline
    assert host.vcpus == 8 and host.memory_mib == 32768  # from the override file


def test_guest_dict_loads_as_an_instance_with_live_facts(agent):
    state = agent.manager.get_host_state({})
    (test,) = [g for g in state['instances'] if g['name'] == TEST_GUEST]
    for name in GUEST_FIELDS:
        assert name in test, name
    inst = objects.Instance.from_dict(test)
    assert inst.memory_mib == 8192 and inst.vcpus == 2 and inst.host == 'unit-host'
    assert test['state'] == 'running'
    assert test['vcpu_cpus'] == [15, 15]  # what `virsh vcpuinfo` shows on the test driver
    # Its one disk is a local file: storage not shared, and counted.
    assert test['shared_storage'] is False and inst.disk_mib > 0
    assert state['vcpus_used'] >= 2 and state['memory_used_mib'] >= 8192


def test_emulator_node_follows_the_pinning(agent, test_dom):
    agent.manager.pre_pin({}, instance=TEST_GUEST, node=0)
    g = _guest(agent)
    assert (g['emulator_cpus'], g['emulator_node']) == ('0-3', 0)
    agent.manager.restore_pin({}, instance=TEST_GUEST, cpus='0-7')
    g = _guest(agent)
    assert (g['emulator_cpus'], g['emulator_node']) == ('0-7', None)  # spans both


def test_dirty_rate_comes_from_the_cache(agent):
    uuid = _guest(agent)['uuid']
    agent.dirty_rates.from_job_stats(uuid, {'memory_dirty_rate': 2560,
                                            'memory_page_size': 4096})
    g = _guest(agent)
    assert g['dirty_rate_mibps'] == 10.0 and g['dirty_rate_known']
    agent.dirty_rates.put(uuid, 3.0, 'libvirt')
    agent.dirty_rates.from_job_stats(uuid, {'memory_dirty_rate': 25600})
    assert _guest(agent)['dirty_rate_mibps'] == 3.0  # measured beats job figure


def test_dirty_rate_sampling_is_skipped_where_unsupported(agent):
    assert agent.sample_dirty_rates() == {}
    assert agent.dirty_rates.unsupported


def test_link_speed_sources(agent_conf, tmp_path):
    from kvmplace.agent import nic
    (tmp_path / 'class/net/eth9').mkdir(parents=True)
    (tmp_path / 'class/net/eth9/speed').write_text('25000\n')
    (tmp_path / 'class/net/veth0').mkdir(parents=True)
    (tmp_path / 'class/net/veth0/speed').write_text('-1\n')
    assert nic.link_speed(0, 'eth9', 1000, str(tmp_path)) == (25000, 'sysfs')
    assert nic.link_speed(0, 'veth0', 1000, str(tmp_path)) == (1000, 'fallback')
    assert nic.link_speed(200, 'eth9', 1000, str(tmp_path)) == (200, 'config')
    assert nic.sysfs_speed_mbps('../../etc', str(tmp_path)) is None


def test_report_casts_the_host_state(agent, notifier):
    assert agent.report()
    (cast,) = notifier.named('report_state')
    assert cast['host_state']['name'] == 'unit-host'


def test_local_uri_detection():
    assert guest.is_local_uri('qemu:///system')
    assert not guest.is_local_uri('qemu+tcp://10.0.0.2:16509/system')


def _guest(agent):
    state = agent.manager.get_host_state({})
    return next(g for g in state['instances'] if g['name'] == TEST_GUEST)
