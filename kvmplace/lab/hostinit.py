"""Runs inside a new lab host's namespaces and starts its daemons.

Invoked by libvirtd.start_host as::

    ip netns exec lab-h1 unshare --mount --uts --propagation private -- \
        python -m kvmplace.lab.hostinit HOST_DIR HOSTNAME

By then the process already has the host's network namespace and fresh,
private mount and UTS namespaces. Here it bind-mounts the host's private
copies over libvirt's directories and its certificates over /etc/pki (where
libvirtd looks for the client certificate it presents when it opens a
``qemu+tls`` connection to a peer, i.e. as the source of a peer-to-peer
migration), sets the hostname, and starts virtlogd
and libvirtd as daemons. They keep the namespaces alive after this process
exits; every QEMU libvirtd starts inherits them too.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

#: host_dir subdirectory -> system path it replaces inside the host.
PRIVATE_DIRS = {
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
    "run": "/run",
}


def main(argv: list[str]) -> int:
    host_dir, hostname = argv
    for sub, target in PRIVATE_DIRS.items():
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", os.path.join(host_dir, sub), target],
                       check=True)
    pki_dir = os.path.join(host_dir, "pki")
    if os.path.isdir(pki_dir):
        # The mount point is shared with the machine: an empty /etc/pki is
        # made there when missing (Debian has none); the certificates
        # themselves are only visible inside this host.
        os.makedirs("/etc/pki", exist_ok=True)
        subprocess.run(["mount", "--bind", pki_dir, "/etc/pki"], check=True)
    # Lab host names resolve inside every host (libvirt looks its own up).
    hosts_file = os.path.join(host_dir, "hosts")
    if os.path.exists(hosts_file):
        subprocess.run(["mount", "--bind", hosts_file, "/etc/hosts"], check=True)
    socket.sethostname(hostname)
    subprocess.run(["virtlogd", "-d"], check=True)
    subprocess.run(["libvirtd", "-d", "--listen"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
