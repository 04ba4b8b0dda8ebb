"""Issue 16, the agent's side: known peers only, storage only under the
image directories, aborts that keep the timeouts on when they fail,
pinning refused during another migration's copy.

libvirt's test driver (``test:///default``, tests/unit/agent/conftest.py)
where it is enough. Storage uses a small fake libvirt connection: the test
driver's pools are process-wide state shared with every other test, and a
block device or a stale image cannot be made there; the real agent over
RabbitMQ refusing a pool outside the image directories is
tests/functional/test_agent_service.py.
"""
from __future__ import annotations

import threading
import uuid as uuid_mod

import libvirt
import pytest

from kvmplace.agent import migration, storage
from kvmplace.agent import validation as av
from kvmplace.exception import InvalidInput
from kvmplace.status import JobOutcome
from tests.unit.agent.conftest import TEST_GUEST, agent, agent_conf, notifier, numa_file  # noqa: F401
from tests.unit.agent.conftest import test_dom  # noqa: F401


# -- known peers --------------------------------------------------------------
PEERS = {'cn-b': '10.0.0.2', 'cn-c': 'cn-c.example.org'}


@pytest.mark.parametrize('dest, uri, stream, field', [
    ('collector', 'qemu+tcp://collector.invalid/system', None, 'dest_host'),
    ('cn-b', 'qemu+tcp://collector.invalid/system', None, 'dest_uri'),
    ('cn-b', 'qemu+tcp://10.0.0.2/system', 'tcp://10.6.6.6:49152', 'migrate_uri'),
    ('cn-b', 'qemu+tls://10.0.0.3:16514/system', None, 'dest_uri'),
])
def test_a_destination_must_be_a_configured_peer(dest, uri, stream, field):
    with pytest.raises(InvalidInput) as err:
        av.known_peer(PEERS, dest, uri, stream)
    assert str(err.value).startswith(field + ':')


@pytest.mark.parametrize('dest, uri, stream', [
    ('cn-b', 'qemu+tcp://10.0.0.2/system', 'tcp://10.0.0.2'),
    ('cn-b', 'qemu+tls://cn-b:16514/system', None),
    ('cn-c', 'qemu+tls://CN-C.example.org/system', 'tcp://cn-c.example.org:49152'),
])
def test_a_configured_peer_by_name_or_address_passes(dest, uri, stream):
    av.known_peer(PEERS, dest, uri, stream)


def test_no_peers_configured_means_no_migration(agent):  # noqa: F811
    """Before: any dest_uri was accepted (qemu+tcp://collector.invalid)."""
    with pytest.raises(InvalidInput, match='dest_host: .*not a known peer'):
        agent.manager.migrate({}, migration_id='m1', instance=TEST_GUEST, dest_host='cn-b',
                              dest_uri='qemu+tcp://collector.invalid/system', migrate_uri=None,
                              dest_cpus=None, policy={})
    assert agent.driver.get(TEST_GUEST) is None      # nothing started


# -- storage --------------------------------------------------------------------
class FakePool:
    def __init__(self, name, path, kind='dir', active=True):
        self._name, self.path, self.kind, self.active = name, path, kind, active
        self.refreshed = 0

    def name(self):
        return self._name

    def XMLDesc(self, flags):
        return (f'<pool type="{self.kind}"><name>{self._name}</name>'
                f'<target><path>{self.path}</path></target></pool>')

    def isActive(self):
        return self.active

    def create(self, flags):
        self.active = True

    def build(self, flags):
        pass

    def refresh(self, flags):
        self.refreshed += 1


class FakeVol:
    def __init__(self, kind):
        self.kind = kind

    def info(self):
        return [self.kind, 0, 0]


class FakeDomain:
    def __init__(self, name, disk):
        self._name, self.disk, self.uuid = name, disk, str(uuid_mod.uuid4())

    def name(self):
        return self._name

    def UUIDString(self):
        return self.uuid

    def XMLDesc(self, flags):
        return (f'<domain><devices><disk type="file"><source file="{self.disk}"/></disk>'
                '</devices></domain>')


class FakeConn:
    """Just what kvmplace.agent.storage asks libvirt."""

    def __init__(self, pools=(), volumes=None, domains=()):
        self.pools = list(pools)
        self.volumes = dict(volumes or {})
        self.domains = list(domains)
        self.defined: list[str] = []

    def listAllStoragePools(self):
        return list(self.pools)

    def storagePoolDefineXML(self, xml, flags):
        import xml.etree.ElementTree as ET
        root = ET.fromstring(xml)
        pool = FakePool(root.findtext('name'), root.findtext('target/path'), active=False)
        self.pools.append(pool)
        self.defined.append(pool.path)
        return pool

    def storageVolLookupByPath(self, path):
        if path not in self.volumes:
            raise libvirt.libvirtError('no storage vol with matching path')
        return FakeVol(self.volumes[path])

    def listAllDomains(self, flags=0):
        return list(self.domains)


IMAGES = ['/var/lib/libvirt/images']


@pytest.mark.parametrize('path', ['/x.qcow2', '/etc/x.qcow2', '/dev/sda',
                                  '/root/.ssh/authorized_keys', '/var/lib/libvirt/imagesX/a',
                                  '/var/lib/libvirt/x.qcow2'])
def test_no_pool_outside_the_image_directories(path):
    conn = FakeConn()
    with pytest.raises(storage.Refused, match='not under \\[agent\\] image_directories'):
        storage.ensure_pools(conn, [path], IMAGES, 16)
    assert conn.defined == []


def test_a_pool_under_the_image_directories_is_defined_once_then_reused():
    conn = FakeConn()
    first = storage.ensure_pools(conn, ['/var/lib/libvirt/images/a.qcow2'], IMAGES, 16)
    again = storage.ensure_pools(conn, ['/var/lib/libvirt/images/b.qcow2'], IMAGES, 16)
    assert first == again and conn.defined == ['/var/lib/libvirt/images']


def test_an_existing_pool_of_the_operator_is_reused_and_not_counted():
    conn = FakeConn(pools=[FakePool('default', '/var/lib/libvirt/images')])
    assert storage.ensure_pools(conn, ['/var/lib/libvirt/images/a.qcow2'], IMAGES, 0) == \
        ['default']
    assert conn.defined == []


def test_the_number_of_pools_is_capped():
    conn = FakeConn(pools=[FakePool(f'kvmplace-{i}', f'/var/lib/libvirt/images/d{i}')
                           for i in range(2)])
    with pytest.raises(storage.Refused, match='max_storage_pools = 2'):
        storage.ensure_pools(conn, ['/var/lib/libvirt/images/new/a.qcow2'], IMAGES, 2)
    assert conn.defined == []


def test_never_a_pool_of_a_block_device():
    conn = FakeConn(pools=[FakePool('vg', '/var/lib/libvirt/images/vg', kind='logical')])
    with pytest.raises(storage.Refused, match='type logical'):
        storage.ensure_pools(conn, ['/var/lib/libvirt/images/vg/lv0'], IMAGES, 16)
    conn = FakeConn(volumes={'/var/lib/libvirt/images/dev0': libvirt.VIR_STORAGE_VOL_BLOCK})
    with pytest.raises(storage.Refused, match='is a block device'):
        storage.ensure_pools(conn, ['/var/lib/libvirt/images/dev0'], IMAGES, 16)


def test_a_disk_path_that_exists_on_the_destination_is_refused():
    """libvirt skips pre-creating an existing path and copies into it."""
    conn = FakeConn(volumes={'/var/lib/libvirt/images/a.qcow2': libvirt.VIR_STORAGE_VOL_FILE})
    with pytest.raises(storage.Refused, match='already exists on this host'):
        storage.ensure_pools(conn, ['/var/lib/libvirt/images/a.qcow2'], IMAGES, 16)


def test_a_disk_path_of_another_domain_is_refused_but_not_the_guests_own():
    other = FakeDomain('db-1', '/var/lib/libvirt/images/a.qcow2')
    conn = FakeConn(domains=[other])
    with pytest.raises(storage.Refused, match='in use by guest db-1'):
        storage.ensure_pools(conn, ['/var/lib/libvirt/images/a.qcow2'], IMAGES, 16)
    storage.ensure_pools(conn, ['/var/lib/libvirt/images/a.qcow2'], IMAGES, 16,
                         guest_uuid=other.uuid)


def test_check_destination_answers_a_refusal_for_a_disk_outside(agent):  # noqa: F811
    answer = agent.manager.check_destination(
        {}, instance={'name': 'in-1', 'memory_mib': 16, 'vcpus': 1,
                      'disks': [{'shared': False, 'path': '/etc/passwd'}]},
        source_cpu_model=None)
    assert answer['ok'] is False and 'image_directories' in answer['reason']


# -- aborts -------------------------------------------------------------------
class Dom:
    def __init__(self, fail=True):
        self.fail = fail
        self.aborts = 0

    def abortJob(self):
        self.aborts += 1
        if self.fail:
            raise libvirt.libvirtError('Timed out during operation: cannot acquire state '
                                       'change lock')


def _job():
    return migration.Job(migration_id='m1', instance='vm', uuid='u', dest_host='b',
                         data_mib=1.0, guest={})


def test_a_failed_abort_leaves_no_stop_status():
    """Before: stop_status='aborted' was set first, so a failed abort
    switched both timeouts off for the rest of the copy."""
    job, dom = _job(), Dom(fail=True)
    assert job.stop(dom, JobOutcome.ABORTED, 'by request')
    assert job.stop_status is None
    dom.fail = False
    assert job.stop(dom, JobOutcome.ABORTED, 'by request') is None
    assert job.stop_status == JobOutcome.ABORTED


def test_the_driver_reports_a_failed_abort_and_keeps_watching(agent_conf):  # noqa: F811
    driver = migration.MigrationDriver(agent_conf, None, None, None)
    job = _job()
    driver._jobs['vm'] = job
    aborted, reason = driver.abort('vm', Dom(fail=True))
    assert aborted is False and 'state change lock' in reason
    assert job.stop_status is None


def test_a_timeout_whose_abort_fails_is_tried_again(agent_conf):  # noqa: F811
    job = _job()
    job.started -= 1000.0
    plan = migration.make_plan(agent_conf, {'memory_mib': 1, 'disks': []}, 'qemu+tcp://b/system',
                               None, None, {'completion_timeout_seconds_per_gib': 1})
    dom = Dom(fail=True)
    monitor = migration.Monitor(job, plan, dom, None, None, 1.0)
    progress = {'remaining_mib': 1.0, 'phase': 'iterate 1'}
    monitor.check_timeouts(progress)
    monitor.check_timeouts(progress)
    assert dom.aborts == 2 and job.stop_status is None
    dom.fail = False
    monitor.check_timeouts(progress)
    assert job.stop_status == JobOutcome.TIMED_OUT and dom.aborts == 3


# -- pinning during a migration ----------------------------------------------
def migrating(agent, migration_id='mig-7'):  # noqa: F811
    """Make the agent believe the test guest is being migrated."""
    job = _job()
    job.migration_id, job.instance = migration_id, TEST_GUEST
    agent.driver._jobs[TEST_GUEST] = job
    return job


def test_pinning_a_migrating_guest_is_refused_unless_it_is_that_migration(agent, test_dom):  # noqa: F811
    """Before: pre_pin and restore_pin were accepted during the copy."""
    from kvmplace.agent import guest
    start = guest.cpumap_to_list(test_dom.emulatorPinInfo())
    job = migrating(agent)
    for kwargs in ({}, {'migration_id': 'mig-other'}):
        with pytest.raises(InvalidInput, match='migration_id: .*is migrating'):
            agent.manager.pre_pin({}, instance=TEST_GUEST, node=0, **kwargs)
        with pytest.raises(InvalidInput, match='migration_id: .*is migrating'):
            agent.manager.restore_pin({}, instance=TEST_GUEST, cpus='0-3', **kwargs)
    assert guest.cpumap_to_list(test_dom.emulatorPinInfo()) == start
    pinned = agent.manager.pre_pin({}, instance=TEST_GUEST, node=0, migration_id='mig-7')
    agent.manager.restore_pin({}, instance=TEST_GUEST, cpus=pinned['previous_cpus'],
                              migration_id='mig-7')
    job.done.set()                                   # over: anyone may pin again
    agent.manager.restore_pin({}, instance=TEST_GUEST, cpus=start)


def test_stop_status_is_read_only_after_the_abort_settles():
    """The copy thread reads the outcome under the stop lock: an abort in
    flight is either accepted (aborted) or not (failed), never half."""
    job = _job()
    entered, release = threading.Event(), threading.Event()

    class SlowDom:
        def abortJob(self):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=job.stop, args=(SlowDom(), JobOutcome.ABORTED, 'x'))
    t.start()
    entered.wait(5)
    got = []
    reader = threading.Thread(target=lambda: got.append(
        job.stop_lock.acquire(timeout=0.05)))
    reader.start()
    reader.join()
    assert got == [False]                # held while the abort is in flight
    release.set()
    t.join(5)
    assert job.stop_status == JobOutcome.ABORTED
