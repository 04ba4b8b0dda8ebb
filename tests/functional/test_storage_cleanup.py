"""The source's stale copies of a guest's local disks are removed after a
completed non-shared-storage migration - through the real system libvirtd's
storage pools, only under [agent] image_directories, and never while a
domain uses the path (kvmplace.agent.storage.remove_copied_disks).

Without it, a guest that left a host could never come back to it: the
destination refuses a disk path that already exists (issue 16).
"""
from __future__ import annotations

import os
import uuid as uuid_mod

import pytest

from kvmplace.agent import storage

libvirt = pytest.importorskip('libvirt')
pytestmark = pytest.mark.timeout(120)

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='{path}'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>"""


@pytest.fixture
def conn():
    if os.geteuid() != 0:
        pytest.skip('needs root for qemu:///system')
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        c = libvirt.open('qemu:///system')
    except libvirt.libvirtError as exc:
        pytest.skip(f'qemu:///system unavailable ({exc}); run tools/services.sh start')
    yield c
    c.close()


@pytest.fixture
def images(tmp_path, conn):
    """An image directory with three disks; a defined (not running) domain
    uses one of them. The pool the cleanup defines is removed afterwards."""
    top = tmp_path / 'images'
    top.mkdir()
    for name in ('stale.img', 'used.img'):
        (top / name).write_bytes(b'\x01' * 4096)
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (outside / 'other.img').write_bytes(b'\x02' * 4096)
    name = f'kvmplace-ft-{uuid_mod.uuid4().hex[:8]}'
    dom = conn.defineXML(DOMAIN_XML.format(name=name, path=top / 'used.img'))
    yield {'top': top, 'outside': outside, 'dom': dom}
    dom.undefine()
    for pool in conn.listAllStoragePools():
        if pool.name().startswith(storage.POOL_PREFIX) and str(top) in pool.XMLDesc(0):
            if pool.isActive():
                pool.destroy()
            pool.undefine()


def test_only_the_stale_copy_under_the_image_directories_is_removed(conn, images):
    top, outside = images['top'], images['outside']
    paths = [str(top / 'stale.img'), str(top / 'used.img'), str(outside / 'other.img')]
    removed = storage.remove_copied_disks(conn, paths, [str(top)], max_pools=4,
                                          guest_uuid=str(uuid_mod.uuid4()))
    assert removed == [str(top / 'stale.img')]
    assert not (top / 'stale.img').exists()
    assert (top / 'used.img').exists(), 'a disk a domain here uses was removed'
    assert (outside / 'other.img').exists(), 'a disk outside image_directories was removed'


def test_nothing_is_removed_while_the_guest_is_still_defined_here(conn, images):
    """A migration that left the guest defined on the source (no
    UNDEFINE_SOURCE, or a failed undefine) keeps every disk."""
    top = images['top']
    removed = storage.remove_copied_disks(conn, [str(top / 'stale.img')], [str(top)],
                                          max_pools=4,
                                          guest_uuid=images['dom'].UUIDString())
    assert removed == []
    assert (top / 'stale.img').exists()
