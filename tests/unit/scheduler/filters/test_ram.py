"""ram: usable = memory x ram_allocation_ratio - reserved - used."""
import pytest

from tests.unit.builders import InventoryBuilder


@pytest.fixture
def flt(load_filter):
    return load_filter('ram')


def _check(flt, make_spec, vm_mib, **dst):
    fields = {'memory_mib': 16384, 'memory_used_mib': 8192}
    fields.update(dst)
    inv = (InventoryBuilder().host('src').host('dst', **fields)
           .instance('vm', 'src', memory_mib=vm_mib).build())
    spec = make_spec(inv, 'vm')
    host = inv.hosts['dst']
    return flt.host_passes(host, spec), flt.reason(host, spec)


def test_default_ratio_no_overcommit(flt, make_spec):
    # 16384 - 8192 = 8192 MiB free: a guest of exactly that fits, one more MiB does not.
    assert _check(flt, make_spec, 8192)[0]
    passes, reason = _check(flt, make_spec, 8193)
    assert not passes
    assert reason == ('needs 8193 MiB RAM, host has 8192 MiB free '
                      '(ram_allocation_ratio 1)')


def test_allocation_ratio_and_reserved_memory(conf, flt, make_spec):
    conf.set_override('ram_allocation_ratio', 1.5, group='scheduler')
    conf.set_override('reserved_host_memory_mib', 4096, group='scheduler')
    # 16384 x 1.5 - 4096 reserved - 8192 used = 12288 MiB usable.
    assert _check(flt, make_spec, 12288)[0]
    passes, reason = _check(flt, make_spec, 12289)
    assert not passes
    assert 'needs 12289 MiB' in reason
    assert 'host has 12288 MiB free' in reason
    assert 'ram_allocation_ratio 1.5' in reason


def test_reserved_memory_alone_rejects_a_tight_fit(conf, flt, make_spec):
    conf.set_override('reserved_host_memory_mib', 1, group='scheduler')
    passes, reason = _check(flt, make_spec, 8192)
    assert not passes
    assert 'host has 8191 MiB free' in reason


def test_overcommitted_host_reports_zero_free(flt, make_spec):
    # An offline inventory refuses memory_used_mib above memory_mib, but a
    # host state reported online can hold it (overcommit): set it directly.
    inv = (InventoryBuilder().host('src').host('dst', memory_mib=8192, memory_used_mib=8192)
           .instance('vm', 'src', memory_mib=1024).build())
    host = inv.hosts['dst']
    host.memory_used_mib = 9000
    spec = make_spec(inv, 'vm')
    passes, reason = flt.host_passes(host, spec), flt.reason(host, spec)
    assert not passes
    assert 'host has 0 MiB free' in reason
