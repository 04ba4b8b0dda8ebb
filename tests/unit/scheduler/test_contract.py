"""The plugin contract: one predicate per plugin, the other form derived,
multipliers from any option group, and kvmplace.scheduler.testing catching
a column form that is not a per-host answer."""
import importlib.util
import json
import os
import random

import numpy as np
import pytest
from oslo_config import cfg
from stevedore import extension

import kvmplace.conf
from kvmplace import objects
from kvmplace.conf import scheduler as scheduler_opts
from kvmplace.exception import ConfigError
from kvmplace.scheduler import manager
from kvmplace.scheduler import testing
from kvmplace.scheduler.filters import BaseFilter
from kvmplace.scheduler.weighers import BaseWeigher
from tests.unit.conftest import NOW, REPO
from tests.unit.scheduler import reference

EXAMPLE = os.path.join(REPO, 'doc', 'source', 'contributor', 'examples', 'headroom.py')


def _example():
    spec = importlib.util.spec_from_file_location('headroom', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _builtin(conf):
    return (manager.load_plugins(manager.FILTER_NAMESPACE, scheduler_opts.DEFAULT_FILTERS, conf)
            + manager.load_plugins(manager.WEIGHER_NAMESPACE, scheduler_opts.DEFAULT_WEIGHERS,
                                   conf))


# --- one predicate, the other derived -------------------------------------------

def test_writing_both_forms_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match='defines both host_passes and passes_column'):
        class Both(BaseFilter):
            def host_passes(self, host, spec):
                return True

            def passes_column(self, cols, spec):
                return [True] * len(cols)

    with pytest.raises(TypeError, match='defines both weigh and weigh_column'):
        class BothW(BaseWeigher):
            multiplier_name = 'free_ram_weight_multiplier'

            def weigh(self, host, spec):
                return 1.0

            def weigh_column(self, cols, spec):
                return [1.0] * len(cols)


def test_writing_neither_form_is_refused_when_built(conf):
    class Neither(BaseFilter):
        def reason(self, host, spec):
            return 'never'

    with pytest.raises(TypeError, match='defines neither host_passes nor passes_column'):
        Neither(conf)


def test_each_form_is_derived_from_the_other(conf, make_spec):
    class PerHost(BaseFilter):
        def host_passes(self, host, spec):
            return host.vcpus > 10

    class PerColumn(BaseFilter):
        def passes_column(self, cols, spec):
            return cols.vcpus > 10

    inv = testing.random_cluster(random.Random(3), 30)
    spec = make_spec(inv, 'vm')
    hosts = list(inv.hosts.values())
    expected = [h.vcpus > 10 for h in hosts]
    for flt in (PerHost(conf), PerColumn(conf)):
        assert [flt.host_passes(h, spec) for h in hosts] == expected
        passed, failed = flt.filter_all(hosts, spec)
        assert passed == [h for h in hosts if h.vcpus > 10]
        assert failed == [h for h in hosts if h.vcpus <= 10]
    assert (PerHost(conf).form, PerColumn(conf).form) == ('host_passes', 'passes_column')


def test_spec_offers_the_derived_quantities_per_host_and_per_column(conf, make_spec):
    inv = testing.random_cluster(random.Random(5), 80)
    spec = make_spec(inv, 'vm')
    hosts = list(inv.hosts.values())
    cols = spec.table(hosts).view()
    s = conf.scheduler
    assert cols.free_ram_mib.tolist() == [
        h.free_ram_mib(s.ram_allocation_ratio, s.reserved_host_memory_mib) for h in hosts]
    assert cols.free_vcpus.tolist() == [h.free_vcpus(s.cpu_allocation_ratio) for h in hosts]
    assert cols.free_ram_mib.tolist() == [spec.free_ram_mib(h) for h in hosts]
    assert cols.up.tolist() == [spec.host_up(h) for h in hosts]
    assert cols.dest_health.tolist() == [spec.dest_health(h) for h in hosts]
    assert cols.path_mbps.tolist() == [spec.path_mbps(h) for h in hosts]
    assert cols.estimates == [spec.estimate(h) for h in hosts]
    # One free-RAM column per request: the view of a subset reads the same array.
    assert spec.columns(hosts[3:9]).free_ram_mib.tolist() == cols.free_ram_mib[3:9].tolist()
    assert spec.table(hosts) is not None


# --- multipliers from any option group ------------------------------------------

def test_weigher_multiplier_from_its_own_option_group(conf, make_spec):
    conf.register_group(cfg.OptGroup('mine'))
    conf.register_opts([cfg.FloatOpt('spread_multiplier', default=2.5)], group='mine')

    class Spread(BaseWeigher):
        multiplier_group = 'mine'
        multiplier_name = 'spread_multiplier'

        def weigh(self, host, spec):
            return host.vcpus

    weigher = Spread(conf)
    assert weigher.multiplier == 2.5
    conf.set_override('spread_multiplier', -1.0, group='mine')
    assert weigher.multiplier == -1.0


def test_a_weigher_whose_multiplier_option_is_missing_stops_loading(conf):
    class Lost(BaseWeigher):
        multiplier_group = 'nowhere'
        multiplier_name = 'lost_multiplier'

        def weigh(self, host, spec):
            return 0.0

    with pytest.raises(ConfigError, match=r'no option \[nowhere\] lost_multiplier'):
        Lost(conf)


# --- the testing helper -----------------------------------------------------------

def test_check_plugin_passes_every_builtin_plugin(conf):
    for plugin in _builtin(conf):
        assert testing.check_plugin(plugin, conf, sizes=(1, 3, 70, 200), rounds=1) > 250


class _TableReader(BaseFilter):
    """Wrong on purpose: reads the request's whole table, not its hosts."""

    def passes_column(self, cols, spec):
        return cols.table.column('free_ram_mib') >= spec.instance.memory_mib

    def reason(self, host, spec):
        return 'no room'


class _Relative(BaseWeigher):
    """Wrong on purpose: scales each host by the column's best."""
    multiplier_name = 'free_ram_weight_multiplier'

    def weigh_column(self, cols, spec):
        free = cols.free_ram_mib
        return free / max(1.0, float(np.max(free))) if len(free) else free


class _FreshOnly(BaseFilter):
    """Wrong on purpose: a vectorised "fresh" test that forgets that a
    host without a report time is up (the per-host rule)."""

    def passes_column(self, cols, spec):
        return spec.now - cols.updated_at <= spec.options.host_down_seconds

    def reason(self, host, spec):
        return 'stale'


@pytest.mark.parametrize('wrong, message', [
    (_TableReader, 'a filter answered'),
    (_Relative, 'the column form'),
])
def test_check_plugin_catches_a_column_form_that_is_not_per_host(conf, wrong, message):
    with pytest.raises(AssertionError, match=message):
        testing.check_plugin(wrong, conf)


def test_check_plugin_compares_with_the_derived_per_host_form(conf):
    # _FreshOnly is elementwise, so it agrees with itself host by host; what
    # check_plugin proves is that the answer it gives is the one the derived
    # per-host form gives. Against the built-in per-host rule it differs,
    # which is what a test pinning the plugin to the rule must catch:
    flt = _FreshOnly(conf)
    testing.check_plugin(flt, conf, sizes=(5,), rounds=2)
    inv = testing.random_cluster(random.Random(1), 40)
    spec = manager.SchedulerManager(conf, filters=[], weighers=[]).build_spec(
        inv, objects.MigrationRequest(instance='vm'), now=testing.NOW)
    hosts = [h for h in inv.hosts.values() if h.updated_at is None]
    assert hosts and not any(flt.host_passes(h, spec) for h in hosts)


def test_check_plugin_catches_an_impure_per_host_form(conf):
    class Flaky(BaseFilter):
        calls = 0

        def host_passes(self, host, spec):
            Flaky.calls += 1
            return Flaky.calls % 7 != 0

        def reason(self, host, spec):
            return 'flaky'

    with pytest.raises(AssertionError, match='per-host form'):
        testing.check_plugin(Flaky, conf)


def test_check_plugin_asks_a_reason_of_every_failing_host(conf):
    class Mute(BaseFilter):
        def host_passes(self, host, spec):
            return host.vcpus > 8

        def reason(self, host, spec):
            return ''

    with pytest.raises(AssertionError, match='failed without a reason'):
        testing.check_plugin(Mute, conf)


# --- the third-party example in doc/ ---------------------------------------------

@pytest.fixture
def example_conf():
    conf = kvmplace.conf.new_conf()
    headroom = _example()
    headroom.register_opts(conf)
    conf.set_override('min_free_ram_fraction', 0.3, group='headroom')
    conf.set_override('free_vcpu_weight_multiplier', 0.7, group='headroom')
    return conf, headroom


def test_example_plugins_pass_check_plugin(example_conf):
    conf, headroom = example_conf
    assert testing.check_plugin(headroom.HeadroomFilter, conf) > 1000
    assert testing.check_plugin(headroom.FreeVcpuWeigher, conf) > 1000


def test_example_plugins_work_in_both_paths_loaded_through_stevedore(example_conf):
    """Loaded as stevedore extensions (make_test_instance: entry points
    without installing a package), then select's column path and the
    reference's per-host path give the same answer, byte for byte."""
    conf, headroom = example_conf
    flt = extension.Extension('headroom', None, headroom.HeadroomFilter,
                              headroom.HeadroomFilter(conf))
    wgh = extension.Extension('free_vcpu', None, headroom.FreeVcpuWeigher,
                              headroom.FreeVcpuWeigher(conf))
    filters = extension.ExtensionManager.make_test_instance([flt])
    weighers = extension.ExtensionManager.make_test_instance([wgh])
    for ext in list(filters) + list(weighers):
        ext.obj.name = ext.name
    builtin = _builtin(conf)
    sched = manager.SchedulerManager(
        conf, filters=[flt.obj] + [p for p in builtin if isinstance(p, BaseFilter)],
        weighers=[p for p in builtin if isinstance(p, BaseWeigher)] + [wgh.obj])
    rng = random.Random(11)
    rejected_by_headroom = ranked = 0
    for size in (3, 40, 200, 240):
        inv = testing.random_cluster(rng, size)
        request = objects.MigrationRequest(instance='vm')
        fast = sched.select(inv, request, now=NOW)
        slow = reference.select(sched, inv, request, NOW)
        assert json.dumps(objects.plain(fast)) == json.dumps(objects.plain(slow))
        rejected_by_headroom += sum(r['filter'] == 'headroom' for r in fast['rejected'])
        for row in fast['ranked']:
            assert row['weighers']['free_vcpu']['multiplier'] == 0.7
        ranked += len(fast['ranked'])
    assert rejected_by_headroom > 0 and ranked > 0


# --- the plugin reference page ------------------------------------------------------

def test_every_builtin_plugin_describes_itself(conf):
    for plugin in _builtin(conf):
        doc = type(plugin).__doc__ or ''
        assert doc.strip(), plugin.name
        assert doc != BaseFilter.__doc__ and doc != BaseWeigher.__doc__, plugin.name
        assert 'Override' not in doc
