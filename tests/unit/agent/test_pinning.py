"""pre_pin / restore_pin / post_verify / check_destination on the test driver."""
from __future__ import annotations

import pytest

from kvmplace.agent import guest
from kvmplace.exception import InvalidInput, KvmplaceError
from tests.unit.agent.conftest import TEST_GUEST


def _pin(dom) -> str:
    return guest.cpumap_to_list(dom.emulatorPinInfo())


def test_pre_pin_moves_the_emulator_to_the_chosen_node_and_restore_brings_it_back(
        agent, test_dom):
    start = _pin(test_dom)
    first = agent.manager.pre_pin({}, instance=TEST_GUEST, node=0)
    assert first['node'] == 0 and first['cpus'] == '0-3'
    assert first['previous_cpus'] == start
    assert _pin(test_dom) == '0-3'  # libvirt's own view after the call
    second = agent.manager.pre_pin({}, instance=TEST_GUEST, node=1)
    assert (second['cpus'], second['previous_cpus']) == ('4-7', '0-3')
    assert _pin(test_dom) == '4-7'
    back = agent.manager.restore_pin({}, instance=TEST_GUEST, cpus=start)
    assert back['cpus'] == start and _pin(test_dom) == start


def test_pre_pin_without_a_node_picks_the_healthiest(agent, test_dom):
    answer = agent.manager.pre_pin({}, instance=TEST_GUEST)
    assert answer['node'] == 1  # node 0 runs at a third of its baseline
    assert _pin(test_dom) == '4-7'


def test_no_pid_on_the_test_driver_means_no_readback_claim(agent, test_dom):
    answer = agent.manager.pre_pin({}, instance=TEST_GUEST, node=0)
    assert answer['qemu_pid'] is None and answer['affinity'] is None
    assert answer['verified'] is None


def test_node_beyond_libvirts_cpu_map_is_refused(agent_conf, notifier, tmp_path, test_dom):
    from kvmplace.agent import service
    (tmp_path / 'wide.json').write_text('[{"id": 0, "cpus": "0-7"}, {"id": 1, "cpus": "8-15"}]')
    agent_conf.set_override('numa_topology_file', str(tmp_path / 'wide.json'), 'agent')
    a = service.Agent(agent_conf, notifier=notifier)
    with pytest.raises(KvmplaceError, match="beyond libvirt's CPU map"):
        a.manager.pre_pin({}, instance=TEST_GUEST, node=1)


@pytest.mark.parametrize('kwargs, field', [
    ({'instance': 'nosuchguest', 'node': None}, 'instance'),
    ({'instance': TEST_GUEST, 'node': 5}, 'node'),
    ({'instance': TEST_GUEST, 'node': '1'}, 'node'),
    ({'instance': 'a b', 'node': None}, 'instance'),
])
def test_pre_pin_refuses_bad_arguments(agent, kwargs, field):
    with pytest.raises(InvalidInput) as err:
        agent.manager.pre_pin({}, **kwargs)
    assert err.value.field == field


@pytest.mark.parametrize('cpus', ['0-99', '8', '', 'x', '3-1', '0,,1'])
def test_restore_pin_refuses_cpus_outside_the_topology(agent, test_dom, cpus):
    before = _pin(test_dom)
    with pytest.raises(InvalidInput) as err:
        agent.manager.restore_pin({}, instance=TEST_GUEST, cpus=cpus)
    assert err.value.field == 'cpus'
    assert _pin(test_dom) == before


def test_post_verify(agent):
    state = agent.manager.get_host_state({})
    g = next(x for x in state['instances'] if x['name'] == TEST_GUEST)
    ok = agent.manager.post_verify({}, instance=TEST_GUEST, uuid=g['uuid'], memory_mib=8192,
                                   vcpus=2, cpus=None)
    assert ok['ok'] and ok['reason'] is None
    wrong = agent.manager.post_verify({}, instance=TEST_GUEST,
                                      uuid='00000000-0000-4000-8000-000000000001',
                                      memory_mib=1024, vcpus=4, cpus=None)
    assert not wrong['ok']
    assert 'UUID' in wrong['reason'] and 'memory' in wrong['reason'] and \
        'vCPUs' in wrong['reason']
    # The planned CPUs cannot be confirmed without a QEMU process to read.
    nopid = agent.manager.post_verify({}, instance=TEST_GUEST, uuid=g['uuid'],
                                      memory_mib=8192, vcpus=2, cpus='4-7')
    assert not nopid['ok'] and '/proc' in nopid['reason']
    gone = agent.manager.post_verify({}, instance='elsewhere', uuid=g['uuid'],
                                     memory_mib=8192, vcpus=2, cpus=None)
    assert not gone['ok'] and 'not on host unit-host' in gone['reason']


def _incoming(**extra):
    base = {'name': 'incoming-vm', 'uuid': '11111111-2222-4333-8444-555555555555',
            'memory_mib': 1024, 'vcpus': 2, 'disks': []}
    base.update(extra)
    return base


def test_check_destination_accepts_and_names_the_healthy_node(agent):
    answer = agent.manager.check_destination({}, instance=_incoming(), source_cpu_model=None)
    assert answer['ok'], answer['reason']
    assert (answer['node'], answer['cpus']) == (1, '4-7')
    assert answer['libvirt_uri'] == 'test:///default'


@pytest.mark.parametrize('guest_dict, source_model, reason', [
    (_incoming(name=TEST_GUEST), None, 'already defined here'),
    (_incoming(memory_mib=64 * 1024), None, 'not enough memory'),
    (_incoming(vcpus=64), None, 'not enough vCPUs'),
    (_incoming(cpu_model='NoSuchCpuModel9'), None, 'unknown to this host'),
])
def test_check_destination_refuses_with_a_reason(agent, guest_dict, source_model, reason):
    answer = agent.manager.check_destination({}, instance=guest_dict,
                                             source_cpu_model=source_model)
    assert not answer['ok'] and reason in answer['reason']


def test_check_destination_refuses_on_a_disabled_host(agent):
    agent.conf.set_override('enabled', False, 'agent')
    answer = agent.manager.check_destination({}, instance=_incoming(), source_cpu_model=None)
    assert not answer['ok'] and 'disabled' in answer['reason']


def test_abort_without_a_job_says_why(agent):
    answer = agent.manager.abort({}, instance=TEST_GUEST)
    assert answer['aborted'] is False and answer['reason']


def _ok_args(agent):
    state = agent.manager.get_host_state({})
    g = next(x for x in state['instances'] if x['name'] == TEST_GUEST)
    return dict(instance=TEST_GUEST, uuid=g['uuid'], memory_mib=8192, vcpus=2, cpus=None)


def test_post_verify_watches_the_guest_for_the_settle_time(agent, agent_conf, test_dom):
    """A guest that stops running within [agent] post_verify_settle_seconds
    of the call fails the verification (a damaged guest panics at once);
    one that stays up passes after about that long. The test driver cannot
    panic a guest: a pause stands in for it here; the real panic is
    tests/integration/test_agent_lab.py::test_post_verify_sees_a_guest_kernel_panic."""
    import threading
    import time
    agent_conf.set_override('post_verify_settle_seconds', 0.6, 'agent')
    args = _ok_args(agent)
    started = time.monotonic()
    assert agent.manager.post_verify({}, **args)['ok']
    assert time.monotonic() - started >= 0.6
    timer = threading.Timer(0.2, test_dom.suspend)
    timer.start()
    try:
        answer = agent.manager.post_verify({}, **args)
    finally:
        timer.join()
        test_dom.resume()
    assert not answer['ok']
    assert ('left the running state (paused) while post_verify watched it (0.6 s)'
            in answer['reason'])


def test_post_verify_answers_at_once_without_a_settle_time(agent, agent_conf):
    import time
    agent_conf.set_override('post_verify_settle_seconds', 0.0, 'agent')
    started = time.monotonic()
    assert agent.manager.post_verify({}, **_ok_args(agent))['ok']
    assert time.monotonic() - started < 0.5


class _Dom:
    def __init__(self, state, reason):
        self._state = (state, reason)

    def state(self):
        return self._state


@pytest.mark.parametrize('state, reason, words', [
    ('VIR_DOMAIN_CRASHED', 'VIR_DOMAIN_CRASHED_PANICKED', 'crashed (kernel panic'),
    ('VIR_DOMAIN_PAUSED', 'VIR_DOMAIN_PAUSED_CRASHED', 'crashed and is paused'),
    ('VIR_DOMAIN_SHUTOFF', 'VIR_DOMAIN_SHUTOFF_CRASHED', 'crashed and was shut off'),
    ('VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_RUNNING_MIGRATED', None),
    ('VIR_DOMAIN_PAUSED', 'VIR_DOMAIN_PAUSED_USER', None),
    ('VIR_DOMAIN_SHUTOFF', 'VIR_DOMAIN_SHUTOFF_DESTROYED', None),
])
def test_crash_of_reads_libvirts_state_and_reason(state, reason, words):
    """What each on_crash action leaves behind (libvirt's state, reason)."""
    import libvirt
    found = guest.crash_of(_Dom(getattr(libvirt, state), getattr(libvirt, reason)))
    assert (found is None) if words is None else (words in found)


def test_post_verify_sees_a_restart_as_a_new_domain_id(agent, agent_conf, test_dom):
    """on_crash=restart: libvirt destroys and starts the guest again, so it
    runs - under a new domain ID - when the settle window looks."""
    import threading
    agent_conf.set_override('post_verify_settle_seconds', 0.6, 'agent')
    args = _ok_args(agent)
    before = test_dom.ID()

    def restart():
        test_dom.destroy()
        test_dom.create()

    timer = threading.Timer(0.2, restart)
    timer.start()
    try:
        answer = agent.manager.post_verify({}, **args)
    finally:
        timer.join()
    assert test_dom.ID() != before
    assert not answer['ok']
    assert f'restarted (domain ID {before} -> {test_dom.ID()})' in answer['reason'] or \
        'left the running state (shutoff)' in answer['reason'], answer['reason']
