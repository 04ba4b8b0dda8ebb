"""Make room for the disks of an incoming non-shared-storage migration.

With VIR_MIGRATE_NON_SHARED_DISK libvirt copies local disks over NBD into
images that must already exist on the destination. libvirt pre-creates them
itself (same path, size and format) when the disk's directory is the target
of a storage pool on the destination; so the destination agent makes sure
such a "dir" pool exists. Going through libvirt (not the agent's own file
system) matters in the lab, where each host's libvirtd has a private mount
namespace the agent cannot see.
"""
from __future__ import annotations

import hashlib
import logging
import os
from xml.sax.saxutils import escape

import libvirt

from kvmplace.exception import KvmplaceError

LOG = logging.getLogger(__name__)


def _pool_for(conn, directory: str):
    for pool in conn.listAllStoragePools():
        try:
            path = pool.XMLDesc(0).split('<path>', 1)[1].split('</path>', 1)[0]
        except (IndexError, libvirt.libvirtError):
            continue
        if os.path.normpath(path) == directory:
            return pool
    return None


def ensure_pools(conn, disk_paths: list[str]) -> list[str]:
    """Names of the (now running) pools covering each disk's directory."""
    names = []
    for directory in sorted({os.path.dirname(p) for p in disk_paths}):
        pool = _pool_for(conn, directory)
        try:
            if pool is None:
                name = 'kvmplace-' + hashlib.sha1(directory.encode()).hexdigest()[:12]
                xml = (f'<pool type="dir"><name>{escape(name)}</name><target>'
                       f'<path>{escape(directory)}</path></target></pool>')
                pool = conn.storagePoolDefineXML(xml, 0)
                pool.build(0)
                LOG.info('defined storage pool %s for %s', name, directory)
            if not pool.isActive():
                pool.create(0)
            pool.refresh(0)
        except libvirt.libvirtError as exc:
            raise KvmplaceError(f'cannot prepare a storage pool for {directory}: '
                                f'{exc.get_error_message()}') from None
        names.append(pool.name())
    return names
