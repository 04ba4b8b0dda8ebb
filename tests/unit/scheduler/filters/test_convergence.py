"""convergence: reject hosts the guest would not converge to (policy-aware)."""
import pytest

from kvmplace import objects
from tests.unit.builders import InventoryBuilder


@pytest.fixture
def flt(load_filter):
    return load_filter('convergence')


def _inv(dirty):
    # 10 GbE both ends, healthy nodes: R = min(10000 Mbit/s x 0.1192 x 0.6 = 715,
    # stream cap 300) = 300 MiB/s, stream-bound.
    return (InventoryBuilder().host('src').host('dst')
            .instance('vm', 'src', memory_mib=8192, dirty_rate_mibps=dirty).build())


def test_slow_dirtier_passes(flt, make_spec):
    inv = _inv(20)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))


def test_dirty_rate_above_bandwidth_fails_with_the_figures(flt, make_spec):
    inv = _inv(400)
    spec = make_spec(inv, 'vm')
    assert not flt.host_passes(inv.hosts['dst'], spec)
    reason = flt.reason(inv.hosts['dst'], spec)
    assert 'dirty rate 400 MiB/s vs 300 MiB/s (stream-bound)' in reason
    assert 'max 500 ms' in reason


def test_reason_uses_the_policy_downtime(flt, make_spec):
    inv = _inv(400)
    spec = make_spec(inv, 'vm', policy=objects.Policy(max_downtime_ms=100))
    assert 'max 100 ms' in flt.reason(inv.hosts['dst'], spec)


@pytest.mark.parametrize('policy', [objects.Policy(allow_auto_converge=True),
                                    objects.Policy(allow_post_copy=True)])
def test_policy_allowing_auto_converge_or_post_copy_passes(flt, make_spec, policy):
    inv = _inv(400)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm', policy=policy))


def test_config_allowing_post_copy_passes(conf, flt, make_spec):
    conf.set_override('allow_post_copy', True, group='estimator')
    inv = _inv(400)
    assert flt.host_passes(inv.hosts['dst'], make_spec(inv, 'vm'))
    # A request can still forbid it.
    spec = make_spec(inv, 'vm', policy=objects.Policy(allow_post_copy=False))
    assert not flt.host_passes(inv.hosts['dst'], spec)
