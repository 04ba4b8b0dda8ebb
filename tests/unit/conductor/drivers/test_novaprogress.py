"""Nova's live-migration records mapped to kvmplace progress, ETA and timeouts.

Nova's fake virt driver (the one its functional harness runs) never fills
a migration's byte counters - only libvirt's job statistics do, copied by
nova-compute's migration monitor - so the mapping is tested here with
recorded responses: :data:`NOVA_API_SAMPLE` is Nova's own recorded answer
to ``GET /servers/{id}/migrations/{id}`` at microversion 2.80 (the
compute API reference's example, nova/tests/functional/api_sample_tests/
api_samples/server-migrations/v2.80/migrations-get.json.tpl), and
:func:`_series` is a run of such records in exactly that shape, for a
4 GiB guest whose pre-copy passes shrink (numbers chosen, not captured:
no libvirt-backed Nova runs on these machines).
"""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, strategies as st

from kvmplace import estimator
from kvmplace.conductor import validate as v
from kvmplace.conductor.drivers import novaprogress as nprog
from kvmplace.conf import new_conf

MIB = 1024 * 1024

NOVA_API_SAMPLE = {
    "migration": {
        "created_at": "2016-01-29T13:42:02.000000",
        "dest_compute": "compute2",
        "dest_host": "1.2.3.4",
        "dest_node": "node2",
        "id": 1,
        "server_uuid": "4cfba335-03d8-49b2-8c52-e69043d1e8fe",
        "source_compute": "compute1",
        "source_node": "node1",
        "status": "running",
        "memory_total_bytes": 123456,
        "memory_processed_bytes": 12345,
        "memory_remaining_bytes": 111111,
        "disk_total_bytes": 234567,
        "disk_processed_bytes": 23456,
        "disk_remaining_bytes": 211111,
        "updated_at": "2016-01-29T13:42:02.000000",
        "uuid": "12341d4b-346a-40d0-83c6-5f4f6892b650",
        "user_id": "8dbaa0f0-ab95-4ffe-8cb4-9c89d2ac9d24",
        "project_id": "5f705771-3aa9-4f4c-8660-0d9522ffdbea"
    }
}


def _record(status: str, processed_mib: float, remaining_mib: float,
            total_mib: float = 4096.0, at: float = 0.0) -> dict:
    rec = copy.deepcopy(NOVA_API_SAMPLE['migration'])
    rec.update(status=status, updated_at=f'2016-01-29T13:42:{at:09.6f}',
               memory_total_bytes=int(total_mib * MIB),
               memory_processed_bytes=int(processed_mib * MIB),
               memory_remaining_bytes=int(remaining_mib * MIB),
               disk_total_bytes=0, disk_processed_bytes=0, disk_remaining_bytes=0)
    return rec


def _series() -> list[tuple[float, dict]]:
    """(seconds since start, record): setup, then a first pass at 300 MiB/s,
    then a second pass over what was dirtied."""
    return [(0.0, _record('preparing', 0, 0, at=0)),
            (1.0, _record('running', 0, 4096, at=1)),
            (2.0, _record('running', 300, 3796, at=2)),
            (2.5, _record('running', 300, 3796, at=2)),    # the same record, read again
            (4.0, _record('running', 900, 3196, at=4)),
            (15.0, _record('running', 4200, 400, at=15)),
            (16.0, _record('post-migrating', 4500, 0, at=16))]


def _tracker(conf=None, policy=None, dirty=None, memory_mib=4096.0) -> nprog.Tracker:
    conf = conf or new_conf()
    return nprog.Tracker('m-1', 'vm1', 0.0, estimator.ModelParams.from_conf(conf),
                         nprog.Timeouts.from_conf(conf, policy or {}, memory_mib, 0.0), dirty)


def test_api_sample_maps_counters_to_mib():
    t = _tracker()
    p = t.progress(NOVA_API_SAMPLE['migration'], 3.0, 1000.0)
    assert p['remaining_mib'] == round((111111 + 211111) / MIB, 2)
    assert p['processed_mib'] == round((12345 + 23456) / MIB, 2)
    assert p['total_mib'] == round((123456 + 234567) / MIB, 2)
    assert p['memory_remaining_mib'] == round(111111 / MIB, 2)
    assert p['disk_remaining_mib'] == round(211111 / MIB, 2)
    assert p['phase'] == 'iterate 1'
    # One sample gives no rate, so no ETA yet.
    assert p['mibps'] == 0 and p['eta_seconds'] is None
    assert p['nova_migration_id'] == 1 and p['nova_status'] == 'running'
    assert v.progress(p) == p          # what the conductor stores accepts it


def test_series_rate_phase_and_eta():
    conf = new_conf()
    t = _tracker(conf, dirty=20.0)
    out = [t.progress(rec, now, 1000.0 + now) for now, rec in _series()]
    assert [p['phase'] for p in out] == ['setup', 'setup', 'iterate 1', 'iterate 1',
                                         'iterate 1', 'iterate 2', 'complete']
    assert out[2]['mibps'] == 300.0
    assert out[3]['mibps'] == 300.0                  # a re-read record keeps the rate
    assert out[4]['mibps'] == 300.0                  # 600 MiB in 2 s
    assert out[5]['mibps'] == pytest.approx(3300 / 11, abs=0.01)
    params = estimator.ModelParams.from_conf(conf)
    assert out[4]['eta_seconds'] == round(estimator.eta_seconds(3196, 20.0, 300.0, params), 2)
    assert out[4]['dirty_rate_mibps'] == 20.0
    assert out[4]['iteration'] == 0 and out[5]['iteration'] == 1
    assert out[6]['eta_seconds'] is None             # not running: no ETA


def test_progress_timeout_aborts_by_default():
    conf = new_conf()
    conf.set_override('progress_timeout_seconds', 10, group='agent')
    t = _tracker(conf)
    p = t.progress(_record('running', 300, 3796), 1.0, 0.0)
    assert t.due(p, 1.0) is None
    # Remaining never reaches a new low for more than 10 s.
    p = t.progress(_record('running', 900, 3796), 12.0, 0.0)
    action, why = t.due(p, 12.0)
    assert action == 'abort' and why.startswith('progress timeout')


def test_post_copy_policy_forces_completion_once():
    conf = new_conf()
    conf.set_override('progress_timeout_seconds', 10, group='agent')
    t = _tracker(conf, policy={'allow_post_copy': True, 'timeout_action': 'post-copy'})
    t.due(t.progress(_record('running', 300, 3796), 1.0, 0.0), 1.0)
    p = t.progress(_record('running', 900, 3796), 12.0, 0.0)
    assert t.due(p, 12.0)[0] == 'force-complete'
    t.forced = True
    p = t.progress(_record('running', 1200, 3796), 30.0, 0.0)
    assert p['phase'] == 'post-copy' and p['postcopy'] is True
    assert t.due(p, 30.0) is None                    # post-copy cannot be aborted


def test_post_copy_action_without_policy_permission_aborts():
    conf = new_conf()
    conf.set_override('timeout_action', 'post-copy', group='agent')
    conf.set_override('completion_timeout_seconds_per_gib', 1, group='agent')
    t = _tracker(conf, policy={'allow_post_copy': False})
    p = t.progress(_record('running', 100, 3900), 5.0, 0.0)
    action, why = t.due(p, 5.0)          # 4 GiB x 1 s/GiB
    assert action == 'abort' and why.startswith('completion timeout')


@pytest.mark.parametrize('status,outcome', [
    ('completed', 'completed'), ('cancelled', 'aborted'), ('error', 'failed'),
    ('failed', 'failed'), ('running', None), ('post-migrating', None), ('queued', None)])
def test_outcome(status, outcome):
    assert nprog.outcome(status) == outcome


_BYTES = st.integers(min_value=0, max_value=2 ** 50)


@given(st.lists(st.tuples(st.floats(0.01, 100), _BYTES, _BYTES, _BYTES, _BYTES), min_size=1,
                max_size=8),
       st.sampled_from(['queued', 'preparing', 'running', 'post-migrating']))
def test_any_record_sequence_gives_storable_progress(samples, status):
    t = _tracker()
    now = 0.0
    for step, mem_done, mem_left, disk_done, disk_left in samples:
        now += step
        rec = dict(NOVA_API_SAMPLE['migration'], status=status,
                   memory_processed_bytes=mem_done, memory_remaining_bytes=mem_left,
                   disk_processed_bytes=disk_done, disk_remaining_bytes=disk_left)
        p = t.progress(rec, now, now)
        assert v.progress(p) == p
        assert p['mibps'] >= 0 and p['remaining_mib'] >= 0
        assert p['remaining_mib'] == pytest.approx((mem_left + disk_left) / MIB, abs=0.01)
        assert p['eta_seconds'] is None or p['eta_seconds'] >= 0
