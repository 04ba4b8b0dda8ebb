"""The migration driver's pieces: destination XML, flags, progress, timeouts.

The test driver cannot migrate and has no job statistics, so the monitor is
fed scripted statistics by a stand-in domain; the flags and XML are checked
against the test driver's real guest.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import libvirt
import pytest

from kvmplace import estimator
from kvmplace.agent import migration
from tests.unit.agent.conftest import TEST_GUEST, RecordingNotifier

MIB = 2 ** 20


class ScriptedDomain:
    """Stand-in for a migrating virDomain: returns queued job statistics."""

    def __init__(self, stats: list[dict]):
        self.stats = list(stats)
        self.calls: list[str] = []

    def jobStats(self, flags=0):  # noqa: N802 - libvirt's name
        return self.stats.pop(0) if len(self.stats) > 1 else self.stats[0]

    def state(self):
        return (libvirt.VIR_DOMAIN_RUNNING, 1)

    def migrateSetMaxDowntime(self, ms, flags=0):  # noqa: N802
        self.calls.append(f'downtime {ms}')

    def abortJob(self):  # noqa: N802
        self.calls.append('abort')

    def migrateStartPostCopy(self, flags=0):  # noqa: N802
        self.calls.append('postcopy')


def _stats(remaining_mib, iteration=1, processed_mib=100, dirty_pages=0, bps_mib=100):
    return {'type': libvirt.VIR_DOMAIN_JOB_UNBOUNDED, 'data_total': 512 * MIB,
            'data_remaining': int(remaining_mib * MIB), 'data_processed': processed_mib * MIB,
            'memory_bps': bps_mib * MIB, 'memory_dirty_rate': dirty_pages,
            'memory_page_size': 4096, 'memory_iteration': iteration}


def _plan(conf, **policy):
    guest = {'name': 'vm', 'uuid': 'u', 'memory_mib': 512, 'disks': []}
    return migration.make_plan(conf, guest, 'qemu+tcp://10.0.0.2/system', 'tcp://10.0.0.2',
                               '1', policy)


def _monitor(conf, dom, **policy):
    plan = _plan(conf, **policy)
    job = migration.Job(migration_id='m1', instance='vm', uuid='u', dest_host='h2',
                        data_mib=512, guest={'name': 'vm'},
                        postcopy_allowed=plan.allow_post_copy)
    from kvmplace.agent.dirtyrate import DirtyRates
    return migration.Monitor(job, plan, dom, RecordingNotifier(), DirtyRates(), 1.0), job


def test_dest_xml_pins_the_incoming_emulator(test_dom):
    xml = test_dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    out = ET.fromstring(migration.dest_xml(xml, '4-7'))
    assert [p.get('cpuset') for p in out.findall('./cputune/emulatorpin')] == ['4-7']
    again = ET.fromstring(migration.dest_xml(ET.tostring(out, encoding='unicode'), '0'))
    assert [p.get('cpuset') for p in again.findall('./cputune/emulatorpin')] == ['0']
    assert out.findtext('uuid') == test_dom.UUIDString()


def test_flags_for_a_guest_with_a_local_disk(agent_conf, test_dom):
    from kvmplace.agent import guest, numa
    facts = guest.facts(test_dom, 'h', [], 8, guest.PidResolver('test:///default', ''), [])
    plan = migration.make_plan(agent_conf, facts, 'qemu+tcp://10.0.0.2/system',
                               'tcp://10.0.0.2', '4-7',
                               {'bandwidth_cap_mibps': 50, 'allow_auto_converge': True})
    flags, params = migration.flags_and_params(test_dom, plan, agent_conf)
    for flag in ('LIVE', 'PEER2PEER', 'PERSIST_DEST', 'UNDEFINE_SOURCE', 'NON_SHARED_DISK',
                 'AUTO_CONVERGE'):
        assert flags & getattr(libvirt, f'VIR_MIGRATE_{flag}'), flag
    assert not flags & libvirt.VIR_MIGRATE_POSTCOPY
    assert params[libvirt.VIR_MIGRATE_PARAM_URI] == 'tcp://10.0.0.2'
    assert params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] == 50
    assert params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] == ['vda']
    assert "emulatorpin cpuset=\"4-7\"" in params[libvirt.VIR_MIGRATE_PARAM_DEST_XML]
    # The timeout counts the disk as well as the memory.
    disk_gib = facts['disk_gib']
    assert plan.completion_timeout_s == pytest.approx(
        800 * (8192 / 1024 + disk_gib), rel=1e-3)
    assert numa  # imported for the facts' node list shape


def test_migration_tls_is_on_by_default_and_can_be_turned_off(agent_conf, test_dom):
    """QEMU's stream is TLS unless turned off (issue 16: it was off by
    default); it needs certificates on both hosts (the lab test moves a
    guest with it, test_libvirt_tls.py). A closed test network turns it off."""
    plan = _plan(agent_conf)
    agent_conf.set_override('migration_tls', False, 'agent')
    flags, _ = migration.flags_and_params(test_dom, plan, agent_conf)
    assert not flags & libvirt.VIR_MIGRATE_TLS
    agent_conf.clear_override('migration_tls', 'agent')
    assert agent_conf.agent.migration_tls is True
    flags, _ = migration.flags_and_params(test_dom, plan, agent_conf)
    assert flags & libvirt.VIR_MIGRATE_TLS and flags & libvirt.VIR_MIGRATE_PEER2PEER


def test_policy_overrides_config(agent_conf):
    plan = _plan(agent_conf, max_downtime_ms=50, allow_post_copy=True,
                 timeout_action='post-copy', progress_timeout_seconds=7,
                 completion_timeout_seconds_per_gib=4)
    assert (plan.max_downtime_ms, plan.allow_post_copy, plan.timeout_action) == \
        (50, True, 'post-copy')
    assert plan.progress_timeout_s == 7 and plan.completion_timeout_s == pytest.approx(2.0)
    default = _plan(agent_conf)
    assert default.max_downtime_ms == agent_conf.estimator.max_downtime_ms
    assert default.timeout_action == 'abort'


@pytest.mark.parametrize('stats, paused, postcopy, phase', [
    ({'type': libvirt.VIR_DOMAIN_JOB_NONE}, False, False, 'setup'),
    ({'type': 2, 'memory_iteration': 0, 'data_processed': 0}, False, False, 'setup'),
    ({'type': 2, 'memory_iteration': 0, 'disk_remaining': 5}, False, False, 'disk'),
    ({'type': 2, 'memory_iteration': 3, 'data_processed': 1}, False, False, 'iterate 3'),
    ({'type': 2, 'memory_iteration': 3}, True, False, 'complete'),
    ({'type': 2, 'memory_iteration': 3}, False, True, 'post-copy'),
])
def test_phase(stats, paused, postcopy, phase):
    assert migration.phase_of(stats, paused, postcopy) == phase


def test_progress_fields_and_eta(agent_conf):
    dom = ScriptedDomain([_stats(200, iteration=2, dirty_pages=2560, bps_mib=100)])
    mon, job = _monitor(agent_conf, dom)
    mon.tick()
    p = job.progress
    assert p['phase'] == 'iterate 2' and p['iteration'] == 2
    assert p['remaining_mib'] == 200 and p['total_mib'] == 512 and p['mibps'] == 100
    assert p['dirty_rate_mibps'] == 10.0
    # 200 MiB at 100 MiB/s while 10 MiB/s are dirtied: 2 s + 0.2 s + ...
    assert 2.0 < p['eta_seconds'] < 2.5
    # QEMU got the model's limit for this guest at this rate, and says so.
    chosen = estimator.downtime_limit_ms(512, 10.0, 100.0, mon.plan.params)
    assert dom.calls == [f'downtime {chosen}'] and p['downtime_limit_ms'] == chosen
    assert p['downtime_steps'][0]['reason'].startswith('model:')
    (cast,) = mon.notifier.named('migration_progress')
    assert cast['migration_id'] == 'm1' and cast['progress'] is p


def test_progress_timeout_aborts_when_remaining_stops_falling(agent_conf):
    dom = ScriptedDomain([_stats(300), _stats(250), _stats(260)])
    mon, job = _monitor(agent_conf, dom, progress_timeout_seconds=1)
    mon.tick()
    mon.tick()
    mon.tick()
    assert 'abort' not in dom.calls
    mon.best_at -= 2  # the last new low was 2 s ago
    mon.tick()
    assert dom.calls[-1] == 'abort'
    assert job.stop_status == 'timed-out' and 'progress timeout' in job.stop_reason
    assert mon.timed_out_by == 'progress'


def test_completion_timeout_switches_to_post_copy_when_allowed(agent_conf):
    dom = ScriptedDomain([_stats(300)])
    mon, job = _monitor(agent_conf, dom, completion_timeout_seconds_per_gib=2,
                        allow_post_copy=True, timeout_action='post-copy')
    mon.tick()
    job.started -= 5  # past 2 s/GiB x 0.5 GiB
    mon.tick()
    assert dom.calls[-1] == 'postcopy' and job.postcopy_started
    assert job.stop_status is None
    # The switch is announced at once, not a poll later.
    assert mon.notifier.named('migration_progress')[-1]['progress']['phase'] == 'post-copy'
    mon.tick()
    assert job.progress['phase'] == 'post-copy'
    assert 'abort' not in dom.calls  # post-copy is never aborted


def test_post_copy_action_without_policy_permission_aborts(agent_conf):
    dom = ScriptedDomain([_stats(300)])
    mon, job = _monitor(agent_conf, dom, completion_timeout_seconds_per_gib=2,
                        timeout_action='post-copy')
    job.started -= 5
    mon.tick()
    assert dom.calls[-1] == 'abort' and job.stop_status == 'timed-out'


def test_migrate_on_the_test_driver_fails_cleanly_and_reports(agent, notifier, monkeypatch):
    opened = []
    real_open = agent.driver._open

    def spy_open():
        conn = real_open()
        opened.append(conn)
        return conn
    monkeypatch.setattr(agent.driver, '_open', spy_open)
    agent.conf.set_override('peers', {'other': '127.0.0.1'}, 'agent')
    answer = agent.manager.migrate({}, migration_id='mig-1', instance=TEST_GUEST,
                                   dest_host='other', dest_uri='qemu+tcp://127.0.0.1/system',
                                   migrate_uri='tcp://127.0.0.1', dest_cpus='0-3',
                                   policy={'max_downtime_ms': 100})
    assert answer['started'] and answer['local_disks'] == ['vda']
    deadline = time.monotonic() + 10
    while not notifier.named('migration_finished') and time.monotonic() < deadline:
        time.sleep(0.05)
    (finished,) = notifier.named('migration_finished')
    result = finished['result']
    assert finished['migration_id'] == 'mig-1'
    assert result['status'] == 'failed' and 'not supported' in result['error']
    job = agent.manager.get_job({}, instance=TEST_GUEST)
    assert job['active'] is False and job['result']['status'] == 'failed'
    assert agent.host.build()['active_jobs'] == []
    # The migrate call and its monitor ran on connections of their own (a
    # blocked remote connection stalls every other call on it), since closed.
    assert len(opened) == 2 and agent.connection.get() not in opened
    wait = time.monotonic() + 5
    while any(_alive(c) for c in opened) and time.monotonic() < wait:
        time.sleep(0.05)
    assert not any(_alive(c) for c in opened)


def _alive(conn) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


# --- QEMU's downtime limit: chosen by the model, stepped up when stuck -------
# The domain is the only stand-in (ScriptedDomain: the test driver has no
# migration jobs); the plan, the model and the monitor are the real ones.

def _lab_monitor(agent_conf, stats, dirty_rate_mibps=0.0, **policy):
    """A monitor with the lab's calibration: 500 ms budget, 235 ms
    switch-over cost, so QEMU's ladder is 50, 100, ... 250, 265 ms."""
    agent_conf.set_override('switchover_overhead_ms', 235, group='estimator')
    agent_conf.set_override('max_downtime_ms', 500, group='estimator')
    dom = ScriptedDomain(stats)
    guest = {'name': 'vm', 'uuid': 'u', 'memory_mib': 512, 'disks': [],
             'dirty_rate_mibps': dirty_rate_mibps}
    plan = migration.make_plan(agent_conf, guest, 'qemu+tcp://10.0.0.2/system',
                               'tcp://10.0.0.2', '1', policy)
    job = migration.Job(migration_id='m1', instance='vm', uuid='u', dest_host='h2',
                        data_mib=512, guest=guest)
    from kvmplace.agent.dirtyrate import DirtyRates
    return migration.Monitor(job, plan, dom, RecordingNotifier(), DirtyRates(), 1.0), job, dom


def _limits(dom) -> list[int]:
    return [int(c.split()[1]) for c in dom.calls if c.startswith('downtime ')]


def test_a_guest_that_dirties_little_gets_the_smallest_limit(agent_conf):
    """Before: QEMU always got the cap (budget - switch-over cost, 265 ms)."""
    mon, job, dom = _lab_monitor(agent_conf, [_stats(400, iteration=0, dirty_pages=256)],
                                 dirty_rate_mibps=1.0)
    mon.tick()
    assert _limits(dom) == [50]
    (step,) = job.progress['downtime_steps']
    assert step['limit_ms'] == 50 and step['reason'].startswith('model: 512 MiB dirtied at 1.0')


def test_a_guest_that_dirties_hard_gets_the_cap_and_never_more(agent_conf):
    # 95 MiB/s dirtied at 100 MiB/s: a smaller limit costs many rounds.
    mon, job, dom = _lab_monitor(agent_conf, [_stats(400, iteration=0)], dirty_rate_mibps=95.0)
    mon.tick()
    cap = estimator.downtime_cap_ms(mon.plan.params)
    assert cap == 265 and _limits(dom) == [cap]
    # Asked for more than the cap, the monitor still gives QEMU the cap.
    mon.set_limit(10_000, 'test')
    assert _limits(dom) == [cap, cap]


def test_the_first_rung_until_the_job_reports_a_bandwidth(agent_conf):
    mon, job, dom = _lab_monitor(agent_conf, [_stats(400, iteration=0, bps_mib=0,
                                                     processed_mib=0),
                                              _stats(380, iteration=0, processed_mib=20)])
    mon.tick()
    assert _limits(dom) == [50] and not mon.modelled
    assert job.progress['downtime_steps'][0]['reason'].startswith('start:')
    mon.tick()
    assert mon.modelled and len(job.progress['downtime_steps']) == 2


def test_the_limit_steps_up_one_rung_when_iterations_stop_making_progress(agent_conf):
    """Each poll sees a new iteration, the remaining data never falls below
    its first low: after 3 such polls (the default) the limit goes up one
    rung, then again, up to the cap and no further."""
    stalled = [_stats(30, iteration=i) for i in range(1, 40)]
    mon, job, dom = _lab_monitor(agent_conf, stalled)
    for _ in range(39):
        mon.tick()
    assert _limits(dom) == [50, 100, 150, 200, 250, 265]
    reasons = [s['reason'] for s in job.progress['downtime_steps']]
    assert reasons[0].startswith('model:')
    assert all(r.startswith('not converging: 3 polls') for r in reasons[1:])
    assert job.progress['downtime_limit_ms'] == 265
    assert 'abort' not in dom.calls          # stepping is not a timeout


def test_a_converging_job_keeps_its_limit(agent_conf):
    falling = [_stats(300 / i, iteration=i) for i in range(1, 20)]
    mon, job, dom = _lab_monitor(agent_conf, falling)
    for _ in range(19):
        mon.tick()
    assert _limits(dom) == [50]


def test_polls_inside_one_long_iteration_are_not_a_stall(agent_conf):
    """Within an iteration the remaining data falls until QEMU re-reads the
    dirty pages; no new iteration, no stall."""
    same_round = [_stats(300, iteration=1)] + [_stats(200, iteration=2)] * 10
    mon, job, dom = _lab_monitor(agent_conf, same_round)
    for _ in range(11):
        mon.tick()
    assert _limits(dom) == [50]


def test_the_limit_steps_up_when_the_job_runs_late(agent_conf):
    mon, job, dom = _lab_monitor(agent_conf, [_stats(300, iteration=1)])
    mon.tick()
    assert _limits(dom) == [50] and mon.predicted_s is not None
    for _ in range(3):
        mon.tick()
    assert _limits(dom) == [50]
    job.started -= 1.5 * mon.predicted_s + 1      # well past 1.5 x predicted
    mon.tick()
    assert _limits(dom) == [50, 100]
    assert job.progress['downtime_steps'][-1]['reason'].startswith('late:')
    mon.tick()                                    # not again at the next poll
    assert _limits(dom) == [50, 100]


def test_no_steering_during_the_switch_over_or_after_a_stop(agent_conf):
    mon, job, dom = _lab_monitor(agent_conf, [_stats(30, iteration=i) for i in range(1, 9)])
    mon.tick()
    job.stop_status = 'aborted'
    for _ in range(7):
        mon.tick()
    assert _limits(dom) == [50]


def test_the_result_says_which_limits_qemu_had_and_why(agent_conf):
    stalled = [_stats(30, iteration=i) for i in range(1, 6)]
    mon, job, dom = _lab_monitor(agent_conf, stalled)
    for _ in range(5):
        mon.tick()
    driver = migration.MigrationDriver(agent_conf, None, None, None)
    result = driver._result(job, 'completed', None, 3.0, {'downtime': 120}, mon)
    assert result['downtime_limit_ms'] == 100
    assert [s['limit_ms'] for s in result['downtime_steps']] == [50, 100]
    from kvmplace.conductor import validate
    assert validate.result(result)['downtime_limit_ms'] == 100


def test_with_the_choice_off_qemu_gets_the_cap_and_no_steps(agent_conf):
    agent_conf.set_override('choose_downtime_limit', False, group='estimator')
    mon, job, dom = _lab_monitor(agent_conf, [_stats(30, iteration=i) for i in range(1, 12)])
    for _ in range(11):
        mon.tick()
    assert _limits(dom) == [265]
