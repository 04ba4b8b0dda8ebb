"""enabled: disabled, down and stale hosts are rejected."""
import pytest

from tests.unit.builders import InventoryBuilder
from tests.unit.conftest import NOW


@pytest.fixture
def flt(load_filter):
    return load_filter('enabled')


def _inv(builder, **dst):
    return (builder.host('src').host('dst', **dst)
            .instance('vm', 'src').build())


def test_enabled_fresh_host_passes(flt, builder, make_spec):
    inv = _inv(builder, updated_at=NOW - 5)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))


def test_host_without_report_time_counts_as_fresh(flt, builder, make_spec):
    inv = _inv(builder)
    assert inv.hosts['dst'].updated_at is None
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))


def test_disabled_host_fails(flt, builder, make_spec):
    inv = _inv(builder, enabled=False)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    assert flt.reason(inv.hosts['dst'], spec) == 'host is disabled'


def test_down_host_fails(flt, builder, make_spec):
    inv = _inv(builder, up=False)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    assert flt.reason(inv.hosts['dst'], spec) == 'host is down'


def test_stale_host_fails_with_its_age_and_the_limit(flt, builder, make_spec):
    # Default host_down_seconds is 60: 60 s old is still up, 61 s is down.
    inv = _inv(builder, updated_at=NOW - 61)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    reason = flt.reason(inv.hosts['dst'], spec)
    assert 'not reported for 61 s' in reason
    assert 'host_down_seconds 60' in reason


def test_report_exactly_at_the_limit_passes(flt, builder, make_spec):
    inv = _inv(builder, updated_at=NOW - 60)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))


def test_host_down_seconds_comes_from_config(conf, flt, builder, make_spec):
    conf.set_override('host_down_seconds', 120, group='scheduler')
    inv = _inv(builder, updated_at=NOW - 61)
    spec = make_spec(inv, 'vm')
    assert flt.host_passes(inv.hosts['dst'], spec)
    inv2 = _inv(InventoryBuilder(), updated_at=NOW - 121)
    spec2 = make_spec(inv2, 'vm')
    assert not flt.host_passes(inv2.hosts['dst'], spec2)
    assert 'host_down_seconds 120' in flt.reason(inv2.hosts['dst'], spec2)


def test_filter_all_splits_and_keeps_order(flt, builder, make_spec):
    inv = (builder.host('src').host('d1').host('d2', enabled=False).host('d3')
           .host('d4', up=False).instance('vm', 'src').build())
    passed, failed = flt.filter_all(list(inv.hosts.values()), make_spec(inv, 'vm'))
    assert [h.name for h in passed] == ['src', 'd1', 'd3']
    assert [h.name for h in failed] == ['d2', 'd4']
