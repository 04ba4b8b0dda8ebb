"""Make room for the disks of an incoming non-shared-storage migration.

With VIR_MIGRATE_NON_SHARED_DISK libvirt copies local disks over NBD into
images that must already exist on the destination. libvirt pre-creates them
itself (same path, size and format) when the disk's directory is the target
of a storage pool on the destination; so the destination agent makes sure
such a "dir" pool exists. Going through libvirt (not the agent's own file
system) matters in the lab, where each host's libvirtd has a private mount
namespace the agent cannot see.

The disk paths arrive over the message bus (check_destination's guest
dict), so nothing here trusts them (issue 16: a review turned ``/``,
``/etc``, ``/dev`` and ``/root/.ssh`` into persistent, active pools, 64 per
call, without limit):

* a pool is prepared only for a directory at or below one of
  ``[agent] image_directories``;
* an existing pool for that directory is reused; a new one is defined only
  while this host has fewer than ``[agent] max_storage_pools`` of kvmplace's;
* a pool is never of a block device: only "dir", "fs" and "netfs" pools
  are reused, and a disk path that is a block device is refused;
* a path that already exists here, or that another domain here uses, is
  refused: libvirt skips pre-creating an existing path and then copies the
  incoming disk into it (read from libvirt's qemuMigrationDstPrecreateDisk),
  overwriting whatever was there.
"""
from __future__ import annotations

import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from typing import Optional
from xml.sax.saxutils import escape

import libvirt

from kvmplace.exception import KvmplaceError

LOG = logging.getLogger(__name__)

#: Prefix of the pools this module defines (counted against max_storage_pools).
POOL_PREFIX = 'kvmplace-'
#: Pool types whose target is a directory of files (never a block device).
FILE_POOL_TYPES = ('dir', 'fs', 'netfs')


class Refused(KvmplaceError):
    """A disk this host will not prepare: a normal answer of check_destination."""


def _pool_xml(pool) -> Optional[ET.Element]:
    try:
        return ET.fromstring(pool.XMLDesc(0))
    except (libvirt.libvirtError, ET.ParseError):
        return None


def _pool_for(conn, directory: str):
    for pool in conn.listAllStoragePools():
        root = _pool_xml(pool)
        if root is None:
            continue
        path = root.findtext('target/path')
        if path and os.path.normpath(path) == directory:
            return pool, root.get('type')
    return None, None


def allowed_directory(directory: str, image_directories: list[str]) -> bool:
    """Is ``directory`` one of ``image_directories`` or below one?"""
    directory = os.path.normpath(directory)
    for top in image_directories:
        top = os.path.normpath(top)
        if os.path.isabs(top) and (directory == top or
                                   directory.startswith(top.rstrip('/') + '/')):
            return True
    return False


def _paths_in_use(conn, except_uuid: Optional[str]) -> dict[str, str]:
    """Every disk source path of this host's domains -> the domain's name."""
    used: dict[str, str] = {}
    for dom in conn.listAllDomains(0):
        try:
            if except_uuid and dom.UUIDString().lower() == except_uuid:
                continue
            root = ET.fromstring(dom.XMLDesc(0))
        except (libvirt.libvirtError, ET.ParseError):
            continue
        for source in root.iterfind('devices/disk/source'):
            for attr in ('file', 'dev', 'volume'):
                value = source.get(attr)
                if value:
                    used[os.path.normpath(value)] = dom.name()
    return used


def check_paths(conn, disk_paths: list[str], guest_uuid: Optional[str]) -> None:
    """Refuse a path another domain here uses (the incoming guest's own
    definition, by UUID, does not count)."""
    used = _paths_in_use(conn, guest_uuid)
    for path in disk_paths:
        owner = used.get(os.path.normpath(path))
        if owner:
            raise Refused(f'disk path {path} is in use by guest {owner} on this host')


def ensure_pools(conn, disk_paths: list[str], image_directories: list[str],
                 max_pools: int, guest_uuid: Optional[str] = None) -> list[str]:
    """Names of the (now running) pools covering each disk's directory.

    Raises :class:`Refused` for a disk this host must not prepare and
    KvmplaceError when libvirt fails."""
    directories = sorted({os.path.dirname(p) for p in disk_paths})
    for directory in directories:
        if not allowed_directory(directory, image_directories):
            raise Refused(f'disk directory {directory} is not under [agent] '
                          f'image_directories ({", ".join(image_directories) or "none"})')
    check_paths(conn, disk_paths, guest_uuid)
    names = [_running_pool(conn, directory, max_pools).name() for directory in directories]
    for path in disk_paths:
        _refuse_existing(conn, path)
    return names


def _running_pool(conn, directory: str, max_pools: int):
    """The active, refreshed file pool whose target is ``directory``,
    defined (as kvmplace's) if there is none yet and the limit allows."""
    pool, kind = _pool_for(conn, directory)
    try:
        if pool is not None and kind not in FILE_POOL_TYPES:
            raise Refused(f'the pool {pool.name()} for {directory} is of type {kind}, '
                          'not a directory of files')
        if pool is None:
            ours = [p for p in conn.listAllStoragePools()
                    if p.name().startswith(POOL_PREFIX)]
            if len(ours) >= max_pools:
                raise Refused(f'this host already has {len(ours)} kvmplace storage pools '
                              f'([agent] max_storage_pools = {max_pools})')
            name = POOL_PREFIX + hashlib.sha1(directory.encode()).hexdigest()[:12]
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
    return pool


def remove_copied_disks(conn, disk_paths: list[str], image_directories: list[str],
                        max_pools: int, guest_uuid: str) -> list[str]:
    """After a completed non-shared-storage migration, delete the source's
    now stale copies of the guest's local disks; returns what was removed.

    Why: the guest runs from the destination's copy; the source's is out
    of date at its first write, and while it exists a later migration of
    the same guest back to this host is refused (a path that exists is
    never overwritten, see :func:`ensure_pools`). Nova does the same on the
    source after a live migration without shared storage
    (``post_live_migration``, which destroys the instance's local disks).

    Deleted only through libvirt's storage pools (the lab's libvirtds have
    private mount namespaces), only under ``[agent] image_directories``,
    and only while no domain on this host - the guest itself included, by
    UUID - uses the path. Failures are logged, never raised: the migration
    has completed whatever happens here."""
    removed: list[str] = []
    try:
        conn.lookupByUUIDString(guest_uuid)
        LOG.warning('not removing the disks of %s: it is still defined on this host',
                    guest_uuid)
        return removed
    except libvirt.libvirtError:
        pass                            # gone from here, as it should be
    try:
        used = _paths_in_use(conn, None)
    except libvirt.libvirtError as exc:
        LOG.warning('not removing copied disks: %s', exc.get_error_message())
        return removed
    for path in (os.path.normpath(p) for p in disk_paths):
        directory = os.path.dirname(path)
        if not allowed_directory(directory, image_directories) or path in used:
            LOG.info('keeping %s (outside [agent] image_directories, or used by %s)',
                     path, used.get(path))
            continue
        try:
            _running_pool(conn, directory, max_pools)
            vol = conn.storageVolLookupByPath(path)
            if vol.info()[0] == libvirt.VIR_STORAGE_VOL_BLOCK:
                continue
            vol.delete(0)
        except libvirt.libvirtError as exc:
            LOG.warning('could not remove the stale copy %s: %s', path,
                        exc.get_error_message())
            continue
        except KvmplaceError as exc:
            LOG.warning('could not remove the stale copy %s: %s', path, exc)
            continue
        removed.append(path)
        LOG.info("removed %s: its guest runs from the destination's copy", path)
    return removed


def _refuse_existing(conn, path: str) -> None:
    """A path that exists here already (a file the pool's refresh found,
    or a block device) is refused: libvirt would copy into it."""
    try:
        vol = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return                          # not there: libvirt pre-creates it
    try:
        kind = vol.info()[0]
    except libvirt.libvirtError:
        kind = None
    if kind == libvirt.VIR_STORAGE_VOL_BLOCK:
        raise Refused(f'disk path {path} is a block device on this host')
    raise Refused(f'disk path {path} already exists on this host (libvirt would copy the '
                  'incoming disk over it); remove it or pick another path')
