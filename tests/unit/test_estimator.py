"""The pre-copy migration model: bandwidth terms, rounds, the reference rates.

Expected values are derived from the model's definition (ARCHITECTURE
"Migration model"), not copied from a run:
- link term: Mbit/s x 1e6 / 8 / 2^20 x link_efficiency (0.6);
- stream cap 300 MiB/s (x multifd connections); NUMA terms h x stream cap;
- round 0 sends memory (+ disk), round i what was dirtied during round i-1;
  stop when what is left fits in R x max downtime (500 ms).
"""
import math

import pytest

from kvmplace import estimator
from kvmplace import objects
from kvmplace.scheduler import manager
from tests.unit.builders import numa

MB = 1e6 / 2 ** 20
"""MiB in one MB: the commonly reported rates are MB/s."""

DEFAULT = estimator.ModelParams()


def link_mibps(mbps, efficiency=0.6):
    return mbps * 1e6 / 8 / 2 ** 20 * efficiency


def within(value_mibps, seed_mb_per_s, tolerance=0.15):
    target = seed_mb_per_s * MB
    return abs(value_mibps - target) <= tolerance * target


def _estimate(conf, builder, instance='vm', dest='dst', policy=None):
    return manager.SchedulerManager(conf).estimate(builder.build(), instance, dest,
                                                   policy=policy)


# --- the commonly reported rates, with default parameters ---------------------

def test_seed_1gbe_is_link_bound_near_75_mb_per_s(conf, builder):
    builder.host('src', link_mbps=1000).host('dst', link_mbps=1000)
    builder.instance('vm', 'src', memory_mib=8192)
    est = _estimate(conf, builder)
    assert est.bottleneck == 'link'
    assert est.bandwidth_mibps == pytest.approx(link_mibps(1000), abs=0.01)  # 71.53
    assert within(est.bandwidth_mibps, 75)


def test_seed_10gbe_is_stream_bound_near_300_mb_per_s(conf, builder):
    builder.host('src').host('dst').instance('vm', 'src', memory_mib=8192)
    est = _estimate(conf, builder)
    # The link term (10000 x 0.1192 x 0.6 = 715) is above the stream cap.
    assert link_mibps(10000) > 300
    assert est.bottleneck == 'stream'
    assert est.bandwidth_mibps == 300
    assert within(est.bandwidth_mibps, 300)


def test_seed_10gbe_with_slow_destination_memory_near_100_mb_per_s(conf, builder):
    builder.host('src').host('dst', numa=numa(1 / 3, 1 / 3))
    builder.instance('vm', 'src', memory_mib=8192)
    est = _estimate(conf, builder)
    assert est.bottleneck == 'dest-numa'
    assert est.bandwidth_mibps == pytest.approx(300 / 3, abs=0.01)
    assert within(est.bandwidth_mibps, 100)


def test_slow_source_node_without_a_better_one_is_source_bound(conf, builder):
    builder.host('src', numa=numa(0.5)).host('dst')
    builder.instance('vm', 'src', memory_mib=8192, emulator_node=0)
    est = _estimate(conf, builder)
    assert (est.bottleneck, est.bandwidth_mibps) == ('source-numa', 150)
    assert est.pre_pin is None and est.without_pre_pin is None


# --- pre-pinning the emulator thread -----------------------------------------

def test_pre_pin_moves_the_emulator_thread_to_the_healthy_node(conf, builder):
    builder.host('src', numa=numa(1 / 3, 1.0)).host('dst')
    builder.instance('vm', 'src', memory_mib=8192, dirty_rate_mibps=0, emulator_node=0)
    est = _estimate(conf, builder)
    assert est.pre_pin == {'node': 1, 'cpus': '8-15'}
    assert (est.bottleneck, est.bandwidth_mibps) == ('stream', 300)
    assert est.without_pre_pin['bandwidth_mibps'] == pytest.approx(100, abs=0.01)
    assert within(est.without_pre_pin['bandwidth_mibps'], 100)
    # A guest that dirties nothing: one pass, memory / bandwidth.
    assert est.total_seconds == pytest.approx(8192 / 300, abs=1e-3)
    assert est.without_pre_pin['total_seconds'] == pytest.approx(8192 / 100, abs=1e-2)


def test_no_pre_pin_when_already_on_the_healthy_node(conf, builder):
    builder.host('src', numa=numa(1 / 3, 1.0)).host('dst')
    builder.instance('vm', 'src', emulator_node=1)
    est = _estimate(conf, builder)
    assert est.pre_pin is None and est.without_pre_pin is None
    assert est.bandwidth_mibps == 300


def test_unknown_emulator_node_assumes_the_worst_node(conf, builder):
    builder.host('src', numa=numa(1.0, 0.25)).host('dst')
    builder.instance('vm', 'src')
    est = _estimate(conf, builder)
    assert est.pre_pin == {'node': 0, 'cpus': '0-7'}
    assert est.without_pre_pin['bandwidth_mibps'] == pytest.approx(75, abs=0.01)


# --- bandwidth terms ---------------------------------------------------------

def test_policy_bandwidth_cap_is_labelled_cap(conf, builder):
    builder.host('src').host('dst').instance('vm', 'src')
    est = _estimate(conf, builder, policy=objects.Policy(bandwidth_cap_mibps=50))
    assert (est.bottleneck, est.bandwidth_mibps) == ('cap', 50)
    # A cap above every other term changes nothing.
    est = _estimate(conf, builder, policy=objects.Policy(bandwidth_cap_mibps=1000))
    assert (est.bottleneck, est.bandwidth_mibps) == ('stream', 300)


def test_configured_bandwidth_cap(conf, builder):
    conf.set_override('bandwidth_cap_mibps', 120.0, group='estimator')
    builder.host('src').host('dst').instance('vm', 'src')
    est = _estimate(conf, builder)
    assert (est.bottleneck, est.bandwidth_mibps) == ('cap', 120)


def test_multifd_multiplies_the_stream_cap(conf, builder):
    builder.host('src', link_mbps=25000).host('dst', link_mbps=25000)
    builder.instance('vm', 'src')
    assert _estimate(conf, builder).bandwidth_mibps == 300
    conf.set_override('multifd_connections', 4, group='estimator')
    est = _estimate(conf, builder)
    # 4 x 300 = 1200 < 25000 Mbit/s x 0.1192 x 0.6 = 1788.
    assert (est.bottleneck, est.bandwidth_mibps) == ('stream', 1200)
    conf.set_override('multifd_connections', 8, group='estimator')
    est = _estimate(conf, builder)
    assert est.bottleneck == 'link'
    assert est.bandwidth_mibps == pytest.approx(link_mibps(25000), abs=0.01)


def test_multifd_also_scales_the_numa_terms():
    params = estimator.ModelParams(multifd_connections=2)
    assert estimator.bandwidth(100000, 0.5, 1.0, params) == (300.0, 'source-numa')


def test_link_share_divides_the_link_term():
    mibps, label = estimator.bandwidth(10000, 1.0, 1.0, DEFAULT, link_share=0.25)
    assert label == 'link'
    assert mibps == pytest.approx(link_mibps(10000) / 4)


def test_link_efficiency_from_config(conf, builder):
    conf.set_override('link_efficiency', 1.0, group='estimator')
    builder.host('src', link_mbps=1000).host('dst', link_mbps=1000)
    builder.instance('vm', 'src')
    est = _estimate(conf, builder)
    assert est.bandwidth_mibps == pytest.approx(link_mibps(1000, 1.0), abs=0.01)


# --- pre-copy rounds ---------------------------------------------------------

def test_zero_dirty_rate_is_one_round_and_no_downtime():
    run = estimator.precopy(8192, 0, 300, DEFAULT)
    assert run.rounds == 1
    assert run.converges and run.mode == 'pre-copy'
    assert run.data_mib == 8192
    assert run.total_seconds == pytest.approx(8192 / 300)
    assert run.downtime_ms == 0


def test_rounds_follow_the_geometric_series():
    memory, dirty, r = 8192.0, 100.0, 300.0
    q = dirty / r
    window = r * DEFAULT.max_downtime_ms / 1000          # 150 MiB
    # Round i leaves memory x q^i; stop at the first k with that <= window.
    k = math.ceil(math.log(window / memory) / math.log(q))
    run = estimator.precopy_at_limit(memory, dirty, r, DEFAULT, DEFAULT.max_downtime_ms)
    assert run.converges
    assert run.rounds == k == 4
    sent = memory * (1 - q ** (k + 1)) / (1 - q)         # rounds 0..k-1 plus the rest
    assert run.data_mib == pytest.approx(sent)
    assert run.total_seconds == pytest.approx(sent / r)
    assert run.downtime_ms == pytest.approx(memory * q ** k / r * 1000)
    assert run.downtime_ms <= DEFAULT.max_downtime_ms


def test_setup_and_switchover_overhead_add_fixed_costs():
    params = estimator.ModelParams(setup_seconds=2.0, switchover_overhead_ms=150)
    base = estimator.precopy(8192, 0, 300, DEFAULT)
    run = estimator.precopy(8192, 0, 300, params)
    assert run.total_seconds == pytest.approx(base.total_seconds + 2.0 + 0.15)
    assert run.downtime_ms == pytest.approx(150)


def test_zero_bandwidth_never_finishes():
    run = estimator.precopy(8192, 0, 0, DEFAULT)
    assert not run.converges
    assert run.total_seconds == math.inf


def test_dirty_pages_never_exceed_memory():
    # Dirtying 10x faster than the link: what is left is capped at memory.
    run = estimator.precopy(1000, 3000, 300, DEFAULT)
    assert not run.converges
    assert run.data_mib == pytest.approx(2000)      # memory, then all of it again
    assert run.downtime_ms == pytest.approx(1000 / 300 * 1000)


# --- disks -------------------------------------------------------------------

def test_non_shared_storage_adds_the_disk_to_the_first_round(conf, builder):
    builder.host('src').host('dst')
    builder.instance('shared', 'src', memory_mib=4096, disk_gib=20, shared_storage=True)
    builder.instance('local', 'src', memory_mib=4096, disk_gib=20, shared_storage=False)
    sched = manager.SchedulerManager(conf)
    inv = builder.build()
    shared = sched.estimate(inv, 'shared', 'dst')
    local = sched.estimate(inv, 'local', 'dst')
    disk_mib = 20 * 1024
    assert shared.data_mib == 4096
    assert local.data_mib == pytest.approx(4096 + disk_mib)
    assert local.total_seconds - shared.total_seconds == pytest.approx(disk_mib / 300, abs=2e-3)


def test_disk_copy_gives_the_guest_longer_to_dirty_memory():
    with_disk = estimator.precopy(4096, 50, 300, DEFAULT, disk_mib=20480)
    without = estimator.precopy(4096, 50, 300, DEFAULT)
    assert with_disk.data_mib > without.data_mib + 20480
    assert with_disk.total_seconds > without.total_seconds + 20480 / 300


# --- auto-converge and post-copy ---------------------------------------------

def test_dirty_rate_above_bandwidth_does_not_converge_by_default():
    run = estimator.precopy(8192, 400, 300, DEFAULT)
    assert not run.converges
    assert run.rounds == 1
    # Forced stop-and-copy of everything left: the whole memory in the pause.
    assert run.downtime_ms == pytest.approx(8192 / 300 * 1000)
    assert run.downtime_ms > DEFAULT.max_downtime_ms


def test_post_copy_converges_with_only_the_switchover_pause():
    params = estimator.ModelParams(allow_post_copy=True)
    run = estimator.precopy(8192, 400, 300, params)
    assert run.converges and run.mode == 'post-copy'
    assert run.downtime_ms == 0
    # Round 0, then the (all dirty) memory pulled after the switch.
    assert run.data_mib == pytest.approx(2 * 8192)
    assert run.total_seconds == pytest.approx(2 * 8192 / 300)
    with_overhead = estimator.precopy(
        8192, 400, 300, estimator.ModelParams(allow_post_copy=True, switchover_overhead_ms=80))
    assert with_overhead.downtime_ms == pytest.approx(80)


def test_post_copy_is_not_used_when_pre_copy_converges():
    run = estimator.precopy(8192, 20, 300, estimator.ModelParams(allow_post_copy=True))
    assert run.mode == 'pre-copy'
    assert run.converges and run.downtime_ms > 0


def test_auto_converge_throttles_until_it_converges():
    params = estimator.ModelParams(allow_auto_converge=True)
    run = estimator.precopy(8192, 400, 300, params)
    assert run.converges and run.mode == 'auto-converge'
    assert run.downtime_ms <= params.max_downtime_ms
    # Throttling starts in round 2 at 20 % and grows 10 % a round: with a
    # dirty rate 4/3 of the bandwidth it needs a throttle > 25 %, so more
    # than three rounds.
    assert run.rounds > 3


def test_auto_converge_leaves_easy_guests_alone():
    run = estimator.precopy(8192, 20, 300, estimator.ModelParams(allow_auto_converge=True))
    assert run.mode == 'pre-copy'


def test_max_rounds_stops_a_slow_convergence():
    # q = 0.9: memory x 0.9^i needs 40 rounds to get under 150 MiB.
    run = estimator.precopy(8192, 270, 300, estimator.ModelParams(max_rounds=5))
    assert not run.converges
    assert run.rounds == 5
    run = estimator.precopy_at_limit(8192, 270, 300, estimator.ModelParams(max_rounds=60), 500)
    assert run.converges
    assert run.rounds == math.ceil(math.log(150 / 8192) / math.log(0.9))


def test_policy_overrides_config_only_where_set():
    params = estimator.ModelParams(max_downtime_ms=300)
    assert params.with_policy(None) is params
    assert params.with_policy(objects.Policy()) == params
    changed = params.with_policy(objects.Policy(allow_post_copy=True, bandwidth_cap_mibps=10))
    assert changed.allow_post_copy and changed.bandwidth_cap_mibps == 10
    assert changed.max_downtime_ms == 300


# --- ETA from live job statistics --------------------------------------------

def test_eta_without_dirtying_is_remaining_over_bandwidth():
    assert estimator.eta_seconds(1000, 0, 100, DEFAULT) == pytest.approx(10.0)


def test_eta_inside_the_downtime_window_is_the_final_copy():
    assert estimator.eta_seconds(40, 500, 100, DEFAULT) == pytest.approx(0.4)


def test_eta_follows_the_geometric_series():
    # Remaining 1000 MiB at 100 MiB/s, dirtying 50 MiB/s: 1000, 500, 250,
    # 125, 62.5 MiB rounds, then 31.25 MiB <= the 50 MiB window.
    eta = estimator.eta_seconds(1000, 50, 100, DEFAULT)
    assert eta == pytest.approx((1000 + 500 + 250 + 125 + 62.5 + 31.25) / 100)


def test_eta_is_none_when_it_cannot_converge():
    assert estimator.eta_seconds(1000, 150, 100, DEFAULT) is None
    assert estimator.eta_seconds(1000, 0, 0, DEFAULT) is None
    # Converging too slowly for max_rounds.
    assert estimator.eta_seconds(1000, 99, 100, estimator.ModelParams(max_rounds=3)) is None


def test_qemu_gets_at_most_the_downtime_budget_less_the_switchover_cost():
    params = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235)
    assert estimator.downtime_cap_ms(params) == 265
    assert estimator.downtime_cap_ms(DEFAULT) == DEFAULT.max_downtime_ms
    # A fixed cost that eats the budget still leaves QEMU a tenth of it.
    assert estimator.downtime_cap_ms(
        estimator.ModelParams(max_downtime_ms=100, switchover_overhead_ms=400)) == 10


def test_the_ladder_steps_50_ms_to_300_then_doubles_and_ends_at_the_cap():
    lab = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235)
    assert estimator.downtime_ladder_ms(lab) == (50, 100, 150, 200, 250, 265)
    assert estimator.downtime_ladder_ms(estimator.ModelParams(max_downtime_ms=2000)) == \
        (50, 100, 150, 200, 250, 300, 600, 1200, 2000)
    assert estimator.downtime_ladder_ms(estimator.ModelParams(max_downtime_ms=20)) == (20,)


def test_lab_guests_get_the_smallest_limit_and_lose_no_time():
    """The lab's 256 MiB guests dirty 0-10 MiB/s at 30-110 MiB/s: before,
    QEMU got 265 ms and the pauses ran to 711 ms; at 50 ms (Nova's first
    step) they paused 56-176 ms with no measurable loss of time."""
    lab = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235)
    for dirty in (0.0, 2.0, 10.0):
        for r in (30.0, 110.0):
            assert estimator.downtime_limit_ms(256, dirty, r, lab) == 50
            run = estimator.precopy(256, dirty, r, lab)
            assert run == estimator.precopy_at_limit(256, dirty, r, lab, 50)
            at_cap = estimator.precopy_at_limit(256, dirty, r, lab, 265)
            assert run.total_seconds <= at_cap.total_seconds + 0.2


def test_a_guest_that_converges_only_slowly_keeps_a_large_limit():
    lab = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235)
    # 95 MiB/s dirtied at 100 MiB/s: each rung down costs many rounds.
    assert estimator.downtime_limit_ms(512, 95, 100, lab) == 265
    # Dirtying faster than the link: no limit helps; QEMU gets the cap.
    assert estimator.downtime_limit_ms(512, 150, 100, lab) == 265
    assert estimator.downtime_limit_ms(512, 0, 0, lab) == 265


def test_a_smaller_limit_does_not_buy_throttling():
    params = estimator.ModelParams(allow_auto_converge=True)
    assert estimator.precopy_at_limit(8192, 20, 300, params, 50).mode == 'auto-converge'
    assert estimator.precopy(8192, 20, 300, params).mode == 'pre-copy'


def test_the_tolerance_decides_how_much_time_a_smaller_limit_may_cost():
    # q = 0.5, 4 GiB at 300 MiB/s: every rung down adds about a round.
    strict = estimator.ModelParams(downtime_tolerance_pct=0.0, downtime_tolerance_seconds=0.0)
    loose = estimator.ModelParams(downtime_tolerance_pct=100.0)
    assert estimator.downtime_limit_ms(4096, 150, 300, strict) == 500
    assert estimator.downtime_limit_ms(4096, 150, 300, loose) == 50
    # With nothing dirtied every rung costs the same time: the smallest wins.
    assert estimator.downtime_limit_ms(4096, 0, 300, strict) == 50


def test_predicted_pause_stays_within_the_budget_with_a_switchover_cost():
    params = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235)
    for dirty in (5, 20, 60, 90):
        run = estimator.precopy(4096, dirty, 110, params)
        assert run.converges
        assert run.downtime_ms <= 500


def test_turned_off_qemu_always_gets_the_cap_as_before():
    off = estimator.ModelParams(max_downtime_ms=500, switchover_overhead_ms=235,
                                choose_downtime_limit=False)
    assert estimator.downtime_ladder_ms(off) == (265,)
    assert estimator.downtime_limit_ms(256, 2.0, 100.0, off) == 265
    assert estimator.precopy(256, 2.0, 100.0, off) == \
        estimator.precopy_at_limit(256, 2.0, 100.0, off, 265)
