"""Every RPC argument is checked at the boundary.

Property: whatever arrives over the bus, an agent method either answers
normally or raises InvalidInput naming a field; never another exception
(which would reach the caller as an opaque RemoteError, or worse, reach
libvirt unchecked).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmplace.agent import validation as v
from kvmplace.exception import InvalidInput
from tests.unit.agent.conftest import TEST_GUEST

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=8)
names = st.sampled_from([TEST_GUEST, 'nosuch', '', 'a/b', '../etc', 'x' * 300]) | anything
cpu_lists = st.sampled_from(['0-3', '4-7', '0-7', '9', '0-99999999', '-1', '1-0', ' ', '0,,2']) \
    | anything
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_invalid_input(fn, **kwargs):
    try:
        result = fn({}, **kwargs)
    except InvalidInput as exc:
        assert exc.field  # the caller learns which argument was wrong
        return None
    assert isinstance(result, dict)
    return result


@SETTINGS
@given(instance=names, node=st.none() | st.integers(-3, 5) | anything)
def test_pre_pin_fuzz(agent, test_dom, instance, node):
    _only_invalid_input(agent.manager.pre_pin, instance=instance, node=node)


@SETTINGS
@given(instance=names, cpus=cpu_lists)
def test_restore_pin_fuzz(agent, test_dom, instance, cpus):
    _only_invalid_input(agent.manager.restore_pin, instance=instance, cpus=cpus)


@SETTINGS
@given(instance=names, uuid=anything | st.uuids().map(str), memory_mib=anything,
       vcpus=anything, cpus=st.none() | cpu_lists)
def test_post_verify_fuzz(agent, instance, uuid, memory_mib, vcpus, cpus):
    _only_invalid_input(agent.manager.post_verify, instance=instance, uuid=uuid,
                        memory_mib=memory_mib, vcpus=vcpus, cpus=cpus)


@SETTINGS
@given(instance=anything | st.fixed_dictionaries(
    {'name': names, 'memory_mib': anything | st.integers(0, 4096)},
    optional={'vcpus': anything, 'uuid': anything, 'cpu_model': anything,
              'cpu_mode': anything, 'disks': anything}),
    source_cpu_model=anything)
def test_check_destination_fuzz(agent, instance, source_cpu_model):
    _only_invalid_input(agent.manager.check_destination, instance=instance,
                        source_cpu_model=source_cpu_model)


@SETTINGS
@given(migration_id=anything | st.just('m-1'), instance=names,
       dest_host=anything | st.just('h2') | st.just('unit-host'),
       dest_uri=anything | st.sampled_from(['qemu+tcp://10.0.0.2/system', 'http://x/',
                                            'qemu+tcp://h/system?keyfile=/etc/shadow',
                                            'qemu+tcp://a b/system']),
       migrate_uri=anything | st.sampled_from(['tcp://10.0.0.2', 'unix:///tmp/x',
                                               'tcp://10.0.0.2:99999']),
       dest_cpus=st.none() | cpu_lists,
       policy=anything | st.dictionaries(st.sampled_from(sorted(v.POLICY_KEYS)), anything,
                                         max_size=3))
def test_migrate_fuzz_never_starts_with_bad_arguments(
        agent, migration_id, instance, dest_host, dest_uri, migrate_uri, dest_cpus, policy):
    # Never let a fuzzed call start a real job on the shared test guest.
    if instance == TEST_GUEST and migration_id == 'm-1' and dest_host == 'h2':
        instance = 'nosuch'
    result = _only_invalid_input(agent.manager.migrate, migration_id=migration_id,
                                 instance=instance, dest_host=dest_host, dest_uri=dest_uri,
                                 migrate_uri=migrate_uri, dest_cpus=dest_cpus, policy=policy)
    assert result is None


@SETTINGS
@given(instance=names)
def test_get_job_and_abort_fuzz(agent, instance):
    _only_invalid_input(agent.manager.get_job, instance=instance)
    _only_invalid_input(agent.manager.abort, instance=instance)


@pytest.mark.parametrize('uri, ok', [
    ('qemu+tcp://10.0.0.2:16509/system', True), ('qemu+tls://h1.example/system', True),
    ('qemu:///system', True), ('qemu+tcp://[fd00::2]/system', True),
    ('qemu+tcp://u:p@10.0.0.2/system', False), ('qemu+tcp://10.0.0.2/other', False),
    ('xen://h/', False), ('qemu+tcp://10.0.0.2/system?x=1', False),
    ('qemu+tcp://10.0.0.2:0/system', False), ('qemu+tcp://-h/system', False),
])
def test_libvirt_uri(uri, ok):
    if ok:
        assert v.libvirt_uri('u', uri) == uri
    else:
        with pytest.raises(InvalidInput):
            v.libvirt_uri('u', uri)


@pytest.mark.parametrize('uri, ok', [
    ('tcp://10.0.0.2', True), ('tcp://10.0.0.2:49152', True), ('tcp://[fd00::1]:5', True),
    ('tcp://', False), ('unix:///x', False), ('tcp://10.0.0.2/path', False),
    ('tcp://10.0.0.2:70000', False), (None, True),
])
def test_migrate_uri(uri, ok):
    if ok:
        assert v.migrate_uri('m', uri) == uri
    else:
        with pytest.raises(InvalidInput):
            v.migrate_uri('m', uri)


def test_policy_names_the_bad_key():
    with pytest.raises(InvalidInput) as err:
        v.policy('policy', {'max_downtime_ms': 0})
    assert err.value.field == 'policy.max_downtime_ms'
    with pytest.raises(InvalidInput) as err:
        v.policy('policy', {'bogus': 1})
    assert err.value.field == 'policy.bogus'
    assert v.policy('policy', {'allow_post_copy': None, 'bandwidth_cap_mibps': 10}) == \
        {'bandwidth_cap_mibps': 10.0}


def test_disk_paths_must_be_normalized_absolute_paths():
    for bad in ('relative/x.img', '/a/../etc/shadow', '/a//b', '/a/b;rm', '/a/$(x)'):
        with pytest.raises(InvalidInput):
            v.path('p', bad)
    assert v.path('p', '/var/lib/libvirt/images/vm1.qcow2')
