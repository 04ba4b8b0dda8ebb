"""Which accelerator QEMU can use under a given libvirtd: KVM or TCG.

Whether QEMU can open ``/dev/kvm`` depends on the user libvirtd runs it as
(``user``/``group`` in that daemon's qemu.conf; Debian's default is
``libvirt-qemu:kvm``) and on the device's owner and mode, which udev sets to
``root:kvm 0660`` on most machines but which stays ``root:root 0600`` where
no udev runs (many containers and CI runners). Root's own view says nothing
about either, and libvirt's capabilities list ``kvm`` even when QEMU will
then fail with "Could not access KVM kernel module: Permission denied". So
the only sound answer is a trial: start a tiny paused KVM domain on that
very connection and see whether QEMU comes up.
"""
from __future__ import annotations

import uuid

PROBE_XML = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>16</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
</domain>"""


def domain_type(conn) -> tuple[str, str]:
    """(``'kvm'`` or ``'qemu'``, why) for guests started on ``conn``.

    ``conn`` is an open libvirt connection. The probe domain is transient,
    paused from the start and destroyed at once: it costs QEMU's start-up
    (well under a second) and leaves nothing defined.
    """
    import libvirt  # the lab and the tests have it; kvmplace's core does not need it

    name = f'kvmplace-accel-probe-{uuid.uuid4().hex[:8]}'
    try:
        dom = conn.createXML(PROBE_XML.format(name=name), libvirt.VIR_DOMAIN_START_PAUSED)
    except libvirt.libvirtError as exc:
        reason = ' '.join(str(exc).split())
        return 'qemu', f'QEMU under this libvirtd cannot use KVM ({reason}); using TCG'
    try:
        dom.destroy()
    except libvirt.libvirtError:
        pass
    return 'kvm', 'a trial KVM domain started under this libvirtd'
