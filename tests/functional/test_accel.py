"""The KVM-or-TCG decision against the real system libvirtd.

``accel.domain_type`` must agree with what QEMU, run as libvirtd's QEMU user,
can open: KVM with /dev/kvm 0660 root:kvm (udev's rule) and TCG with 0600
root:root (no udev). The expected answer is computed here from the device's
mode and the QEMU user's groups as configured in /etc/libvirt/qemu.conf.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import stat

import pytest

from kvmplace.lab import accel

libvirt = pytest.importorskip('libvirt')


def _qemu_user() -> tuple[int, set[int]]:
    user, group = 'libvirt-qemu', None     # Debian's build default
    try:
        with open('/etc/libvirt/qemu.conf') as f:
            for line in f:
                m = re.match(r'\s*(user|group)\s*=\s*"([^"]+)"', line)
                if m and m.group(1) == 'user':
                    user = m.group(2)
                elif m:
                    group = m.group(2)
    except OSError:
        pass
    pw = pwd.getpwnam(user.lstrip('+'))
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
    if group:
        gids.add(grp.getgrnam(group.lstrip('+')).gr_gid)
    return pw.pw_uid, gids


def _qemu_may_open_kvm() -> bool:
    st = os.stat('/dev/kvm')
    uid, gids = _qemu_user()
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IRUSR and st.st_mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IRGRP and st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IROTH and st.st_mode & stat.S_IWOTH)


def test_domain_type_is_what_qemu_can_open():
    if os.geteuid() != 0 or not os.path.exists('/dev/kvm'):
        pytest.skip('needs root and /dev/kvm')
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        conn = libvirt.open('qemu:///system')
    except libvirt.libvirtError as exc:
        pytest.skip(f'qemu:///system unavailable ({exc})')
    try:
        dtype, why = accel.domain_type(conn)
        names = {conn.lookupByID(i).name() for i in conn.listDomainsID()}
    finally:
        conn.close()
    expected = 'kvm' if _qemu_may_open_kvm() else 'qemu'
    assert dtype == expected, why
    assert not any(n.startswith('kvmplace-accel-probe-') for n in names)
    if dtype == 'qemu':
        assert 'cannot use KVM' in why and 'TCG' in why
