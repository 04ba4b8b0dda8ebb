"""One libvirtd (and virtlogd) per lab host, each in the host's namespaces.

Why each setting below matters on this kind of machine (see LAB.md):
- ``host_uuid``: every host needs its own, or libvirt refuses to "migrate
  to the same host"; a random UUID4 never has all digits equal.
- ``listen_tcp``/``listen_addr``/``auth_tcp = "none"``: other hosts and the
  root namespace reach the daemon at ``qemu+tcp://ADDR:16509/system`` (lab
  only: no authentication).
- ``listen_tls``/``tls_port``/``key_file``/``cert_file``/``ca_file``,
  ``auth_tls = "none"``, ``tls_no_verify_certificate = 0``: the same
  daemon also serves ``qemu+tls://ADDR:16514/system``, where a client
  without a certificate from the lab CA is refused (the certificate is the
  authentication). The files are the host's own (pki.py).
- ``user``/``group = "root"`` in qemu.conf: /dev/kvm is root-only here.
- ``migration_host``: the destination advertises its incoming migration
  address; by default that is its hostname, which nothing resolves.
- ``migrate_tls_x509_cert_dir``/``migrate_tls_x509_verify = 1``: QEMU's
  own migration stream can be TLS too (VIR_MIGRATE_TLS), with the same
  certificates; the destination QEMU insists on the source's client
  certificate. Migrations without that flag stay plain TCP.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import uuid

from kvmplace.lab import pki
from kvmplace.lab import state as labstate
from kvmplace.lab.hostinit import PRIVATE_DIRS
from kvmplace.lab.errors import LabError
from kvmplace.lab.system import port_open, read_pidfile, run, wait_until

#: Created empty in each host's private copy of /var/lib/libvirt etc.
_SKELETON = ("lib/qemu", "lib/images", "lib/boot", "lib/qemu/save", "lib/qemu/dump",
             "lib/qemu/snapshot", "lib/qemu/nvram", "log/qemu", "cache/qemu", "run")


def prepare_host_dir(name: str, address: str,
                     peers: dict[str, str] | None = None) -> str:
    """The host's private libvirt tree and configuration; returns host_uuid.

    ``peers`` (name -> address, this host included) becomes the host's
    /etc/hosts, so lab host names resolve inside every host. The host's
    certificates are issued here by the lab CA: its libvirtd will not start
    with listen_tls and no certificate.
    """
    base = labstate.host_dir(name)
    etc = os.path.join(base, "etc")
    if os.path.exists(etc):
        shutil.rmtree(etc)
    shutil.copytree("/etc/libvirt", etc, symlinks=True)
    # A host's own default network would start dnsmasq and a bridge inside
    # the namespace: the lab's network is the veth, nothing else.
    shutil.rmtree(os.path.join(etc, "qemu", "networks", "autostart"), ignore_errors=True)
    for sub in _SKELETON:
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        for peer, peer_address in sorted((peers or {name: address}).items()):
            f.write(f"{peer_address}\t{peer}\n")
    pki.issue_host(pki.lab_ca(), name, address)
    host_uuid = str(uuid.uuid4())
    _append(os.path.join(etc, "libvirtd.conf"), {
        "listen_tls": 1,
        "tls_port": str(labstate.LIBVIRT_TLS_PORT),
        **pki.server_files(name),
        "auth_tls": "none",
        "tls_no_verify_certificate": 0,
        "listen_tcp": 1,
        "tcp_port": str(labstate.LIBVIRT_PORT),
        "listen_addr": address,
        "auth_tcp": "none",
        "host_uuid": host_uuid,
        "log_outputs": "3:file:/var/log/libvirt/libvirtd.log",
    })
    _append(os.path.join(etc, "qemu.conf"), {
        "user": "root",
        "group": "root",
        "security_driver": "none",
        "migration_host": address,
        "migrate_tls_x509_cert_dir": pki.qemu_cert_dir(name),
        "migrate_tls_x509_verify": 1,
    })
    return host_uuid


def _append(path: str, settings: dict[str, object]) -> None:
    lines = ["", "# kvmplace lab host settings"]
    for key, value in settings.items():
        lines.append(f"{key} = {value}" if isinstance(value, int)
                     else f'{key} = "{value}"')
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")


def start_host(name: str, netns: str) -> None:
    """Start virtlogd and libvirtd in new mount+UTS namespaces of ``netns``."""
    run(["ip", "netns", "exec", netns,
         "unshare", "--mount", "--uts", "--propagation", "private", "--",
         sys.executable, "-m", "kvmplace.lab.hostinit", labstate.host_dir(name), name],
        timeout=60)


def wait_ready(address: str, timeout: float = 30) -> None:
    """Wait until the host's libvirtd serves QEMU-driver calls.

    An open port is not enough: libvirtd listens before its drivers have
    finished initialising, and a guest defined in that window fails.
    """
    for port in (labstate.LIBVIRT_PORT, labstate.LIBVIRT_TLS_PORT):
        wait_until(functools.partial(port_open, address, port), timeout,
                   f"libvirtd at {address}:{port}")
    try:
        import libvirt
    except ImportError:
        # libvirt-python is the ``lab`` extra (and the ``libvirt`` one).
        raise LabError('the lab needs libvirt-python, which is optional: '
                       'pip install "kvmplace[lab]"') from None

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    uri = labstate.libvirt_uri(address)
    last_error: list[str] = []

    def serves() -> bool:
        try:
            conn = libvirt.open(uri)
            try:
                conn.listAllDomains()
            finally:
                conn.close()
            return True
        except libvirt.libvirtError as exc:
            last_error[:] = [str(exc)]
            return False
    try:
        wait_until(serves, timeout, f"libvirtd at {uri} to serve the QEMU driver", 0.1)
    except LabError as exc:
        raise LabError(f"{exc}: {last_error[0] if last_error else ''}") from None


def daemon_pids(name: str) -> dict[str, int | None]:
    """libvirtd and virtlogd pids, from the pidfiles in the host's private /run."""
    run_dir = os.path.join(labstate.host_dir(name), "run")
    return {daemon: read_pidfile(os.path.join(run_dir, f"{daemon}.pid"))
            for daemon in ("libvirtd", "virtlogd")}


def nsenter_prefix(libvirtd_pid: int) -> list[str]:
    """Command prefix that runs a program "on" a lab host.

    It joins the namespaces of the host's libvirtd: its network (address,
    shaped link), its mount namespace (private /run, so ``qemu:///system``
    is this host's libvirtd) and its hostname. Services wrap their command
    lines with this (see services.py).
    """
    if not libvirtd_pid:
        raise LabError("libvirtd pid unknown: is the lab up?")
    return ["nsenter", f"--target={libvirtd_pid}", "--net", "--mount", "--uts", "--"]


__all__ = ["PRIVATE_DIRS", "prepare_host_dir", "start_host", "wait_ready",
           "daemon_pids", "nsenter_prefix"]
