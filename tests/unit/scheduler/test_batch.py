"""The batched pre-copy model gives the scalar model's numbers to the bit."""
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmplace import estimator
from kvmplace import objects
from kvmplace.estimator import batch
from tests.unit.test_estimator_properties import disk, dirty, memory, params

SETTINGS = settings(max_examples=150, deadline=None)

# Long enough for the numpy path, with repeats, a few unusable rates, and
# rates around the dirty rate (where runs diverge, throttle or hit max_rounds).
bandwidths = st.lists(st.floats(min_value=0.5, max_value=5000)
                      | st.sampled_from([0.0, -1.0, math.inf, 150.0, 149.99, 300.0]),
                      min_size=batch.MIN_BATCH, max_size=3 * batch.MIN_BATCH)


def _fields(run: estimator.Precopy):
    return (run.rounds, run.data_mib, run.total_seconds, run.downtime_ms, run.converges,
            run.mode)


@SETTINGS
@given(memory, dirty, bandwidths, disk, params())
def test_precopy_all_is_precopy(m, d, rates, disk_mib, p):
    fast = batch.precopy_all(m, d, rates, p, disk_mib)
    slow = [estimator.precopy(m, d, r, p, disk_mib) for r in rates]
    assert [repr(_fields(x)) for x in fast] == [repr(_fields(x)) for x in slow]


@SETTINGS
@given(st.sampled_from([2048, 16384, 65536]), st.sampled_from([0.0, 50.0, 150.0, 700.0]),
       st.lists(st.tuples(st.floats(min_value=0.05, max_value=1.0),
                          st.sampled_from([1000.0, 10000.0, 25000.0, 0.0]),
                          st.none() | st.floats(min_value=10, max_value=900)),
                min_size=batch.MIN_BATCH, max_size=2 * batch.MIN_BATCH),
       st.sampled_from([None, 0, 1]), params())
def test_estimates_at_is_estimate_at(mem, d, dests, emulator_node, p):
    instance = objects.Instance(name='vm', host='src', memory_mib=mem, dirty_rate_mibps=d,
                                emulator_node=emulator_node)
    source_host = objects.Host(name='src', numa=[
        objects.NumaNode(id=0, cpus='0-3', bandwidth_mibps=9000.0, baseline_mibps=27000.0),
        objects.NumaNode(id=1, cpus='4-7', bandwidth_mibps=26000.0, baseline_mibps=27000.0)])
    source = estimator.source_nodes(instance, source_host)
    rates = [estimator.rates(source, health, path, p, learned_mibps=learned)
             for health, path, learned in dests]
    fast = batch.estimates_at(instance, source, rates, p, runs={})
    slow = [estimator.estimate_at(instance, source, r, p) for r in rates]
    assert [json.dumps(objects.plain(e.to_dict())) for e in fast] == \
        [json.dumps(objects.plain(e.to_dict())) for e in slow]


@SETTINGS
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([1.0, 0.0]),
                          st.sampled_from([1000.0, 10000.0, 25000.0, 0.0]),
                          st.none() | st.sampled_from([0.0, 300.0])
                          | st.floats(min_value=10, max_value=900)),
                min_size=batch.MIN_BATCH, max_size=2 * batch.MIN_BATCH),
       st.sampled_from([None, 0, 1]), st.sampled_from([0.0, 80.0, 250.0]), params())
def test_rates_all_is_rates(dests, emulator_node, cap, p):
    from dataclasses import replace
    from kvmplace.scheduler.model import RequestModel
    p = replace(p, bandwidth_cap_mibps=cap)
    instance = objects.Instance(name='vm', host='src', memory_mib=8192,
                                emulator_node=emulator_node)
    source_host = objects.Host(name='src', numa=[
        objects.NumaNode(id=0, cpus='0-3', bandwidth_mibps=9000.0, baseline_mibps=27000.0),
        objects.NumaNode(id=1, cpus='4-7', bandwidth_mibps=26000.0, baseline_mibps=27000.0)])
    source = estimator.source_nodes(instance, source_host)
    model = RequestModel(instance, source, p)
    healths, paths, learned = (list(column) for column in zip(*dests))
    expected = [estimator.rates(source, h, path, p, learned_mibps=m) for h, path, m in dests]
    assert repr(model.rates_all(healths, paths, learned)) == repr(expected)


@SETTINGS
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([1.0, 0.0]),
                          st.sampled_from([1000.0, 10000.0, 25000.0, 40000.0, 1e-300])
                          | st.floats(min_value=1.0, max_value=1e6)),
                min_size=batch.MIN_BATCH, max_size=3 * batch.MIN_BATCH),
       st.sampled_from([None, 0, 1]), st.sampled_from([0.0, 80.0, 250.0]), params())
def test_rates_all_without_learned_rates_is_rates(dests, emulator_node, cap, p):
    """The usual column (nothing learned, every path positive) takes the
    distinct paths from numpy; still estimator.rates, host by host."""
    from dataclasses import replace
    from kvmplace.scheduler.model import RequestModel
    p = replace(p, bandwidth_cap_mibps=cap)
    instance = objects.Instance(name='vm', host='src', memory_mib=8192,
                                emulator_node=emulator_node)
    source_host = objects.Host(name='src', numa=[
        objects.NumaNode(id=0, cpus='0-3', bandwidth_mibps=9000.0, baseline_mibps=27000.0),
        objects.NumaNode(id=1, cpus='4-7', bandwidth_mibps=26000.0, baseline_mibps=27000.0)])
    source = estimator.source_nodes(instance, source_host)
    model = RequestModel(instance, source, p)
    healths, paths = (list(column) for column in zip(*dests))
    expected = [estimator.rates(source, h, path, p) for h, path in dests]
    assert repr(model.rates_all(healths, paths, [None] * len(dests))) == repr(expected)
