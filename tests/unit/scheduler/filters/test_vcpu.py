"""vcpu: usable = vcpus x cpu_allocation_ratio - used."""
import pytest

from tests.unit.builders import InventoryBuilder


@pytest.fixture
def flt(load_filter):
    return load_filter('vcpu')


def _check(flt, make_spec, vm_vcpus, vcpus, vcpus_used):
    inv = (InventoryBuilder().host('src').host('dst', vcpus=vcpus, vcpus_used=vcpus_used)
           .instance('vm', 'src', vcpus=vm_vcpus).build())
    spec = make_spec(inv, 'vm')
    host = inv.hosts['dst']
    return flt.host_passes(host, spec), flt.reason(host, spec)


def test_default_ratio_four(flt, make_spec):
    # 4 pCPUs x 4.0 - 12 used = 4 vCPUs free.
    assert _check(flt, make_spec, 4, vcpus=4, vcpus_used=12)[0]
    passes, reason = _check(flt, make_spec, 5, vcpus=4, vcpus_used=12)
    assert not passes
    assert reason == 'needs 5 vCPUs, host has 4 free (cpu_allocation_ratio 4)'


def test_ratio_from_config(conf, flt, make_spec):
    conf.set_override('cpu_allocation_ratio', 1.5, group='scheduler')
    # 8 x 1.5 - 9 used = 3 free.
    assert _check(flt, make_spec, 3, vcpus=8, vcpus_used=9)[0]
    passes, reason = _check(flt, make_spec, 4, vcpus=8, vcpus_used=9)
    assert not passes
    assert 'host has 3 free' in reason
    assert 'cpu_allocation_ratio 1.5' in reason


def test_overcommitted_host_reports_zero_free(flt, make_spec):
    passes, reason = _check(flt, make_spec, 1, vcpus=2, vcpus_used=100)
    assert not passes
    assert 'host has 0 free' in reason
