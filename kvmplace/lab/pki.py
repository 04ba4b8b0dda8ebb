"""The lab's certificate authority and each host's libvirt certificates.

Why: libvirt over TLS is what an operator should run between hosts
(doc/source/user/security.rst), so the lab serves it too, next to its
unauthenticated ``qemu+tcp`` listener, and tests prove it works and that a
client the lab CA did not sign is refused.

One CA per lab (``/var/lib/kvmplace-lab/pki-ca``), made fresh at every
``up``. Each host gets, under ``<host dir>/pki``, the layout libvirt and
QEMU look for, so the host's mount namespace can bind it over /etc/pki:

- ``CA/cacert.pem``: the lab CA.
- ``libvirt/servercert.pem``, ``libvirt/private/serverkey.pem``: libvirtd's
  TLS listener (subjectAltName: the host's name and its lab address, since
  clients check the name or address they dialled).
- ``libvirt/clientcert.pem``, ``libvirt/private/clientkey.pem``: what this
  host's libvirtd presents when it is the client, i.e. the source of a
  peer-to-peer migration.
- ``qemu/``: the same files under QEMU's names (``ca-cert.pem``,
  ``server-cert.pem``...), for ``migrate_tls_x509_cert_dir`` (native QEMU
  migration TLS, VIR_MIGRATE_TLS).

Keys are ECDSA P-256: generating seven RSA keys would slow every ``up`` for
nothing, and GnuTLS (libvirt, QEMU) accepts them. Certificates are made with
the ``openssl`` command line, which Debian installs anyway; the venv does not
carry the ``cryptography`` package.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass

from kvmplace.lab import state as labstate
from kvmplace.lab.system import run

#: Certificates outlive any lab; the CA is remade at every ``up`` anyway.
VALID_DAYS = 3650
ORGANIZATION = "kvmplace lab"
CA_DIR = os.path.join(labstate.STATE_DIR, "pki-ca")
#: A client directory for the root namespace (tests, operators):
#: ``qemu+tls://ADDR/system?pkipath=CLIENT_DIR``.
CLIENT_DIR = os.path.join(labstate.STATE_DIR, "pki-client")

_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
#: Host pki file -> QEMU's name for it in migrate_tls_x509_cert_dir.
_QEMU_NAMES = {
    "CA/cacert.pem": "ca-cert.pem",
    "libvirt/servercert.pem": "server-cert.pem",
    "libvirt/private/serverkey.pem": "server-key.pem",
    "libvirt/clientcert.pem": "client-cert.pem",
    "libvirt/private/clientkey.pem": "client-key.pem",
}


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and private key, as files."""

    cert: str
    key: str


def make_ca(directory: str, common_name: str = f"{ORGANIZATION} CA") -> Authority:
    """A fresh self-signed CA in ``directory`` (replacing any there)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)
    ca = Authority(os.path.join(directory, "cacert.pem"),
                   os.path.join(directory, "cakey.pem"))
    run(["openssl", "req", "-x509", "-new", *_KEY_ARGS, "-keyout", ca.key, "-out", ca.cert,
         "-days", str(VALID_DAYS), "-subj", f"/O={ORGANIZATION}/CN={common_name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    os.chmod(ca.key, 0o600)
    return ca


def issue(ca: Authority, common_name: str, cert_path: str, key_path: str, *,
          server: bool, alt_names: tuple[str, ...] = ()) -> None:
    """A leaf certificate for ``common_name`` signed by ``ca``.

    libvirt and QEMU refuse a server certificate without the TLS server
    purpose and a client one without the client purpose; ``alt_names``
    (host names and IP addresses) are what clients match the certificate to.
    keyUsage is not critical, so its keyEncipherment (which libvirt wants to
    see, but an EC key never uses) is advisory.
    """
    for path in (cert_path, key_path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = ["basicConstraints = critical,CA:FALSE",
           "keyUsage = digitalSignature,keyEncipherment",
           f"extendedKeyUsage = {'serverAuth' if server else 'clientAuth'}"]
    if alt_names:
        ext.append("subjectAltName = " + ",".join(_alt_name(n) for n in alt_names))
    with tempfile.TemporaryDirectory(prefix="kvmplace-pki-") as tmp:
        csr, ext_file = os.path.join(tmp, "req.csr"), os.path.join(tmp, "ext.cnf")
        with open(ext_file, "w") as f:
            f.write("\n".join(ext) + "\n")
        run(["openssl", "req", "-new", *_KEY_ARGS, "-keyout", key_path, "-out", csr,
             "-subj", f"/O={ORGANIZATION}/CN={common_name}"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
             "-set_serial", "0x" + secrets.token_hex(16), "-days", str(VALID_DAYS),
             "-extfile", ext_file, "-out", cert_path])
    os.chmod(key_path, 0o600)


def _alt_name(name: str) -> str:
    kind = "IP" if name.replace(".", "").isdigit() or ":" in name else "DNS"
    return f"{kind}:{name}"


def host_pki_dir(name: str) -> str:
    """What the host's mount namespace sees as /etc/pki."""
    return os.path.join(labstate.host_dir(name), "pki")


def server_files(name: str) -> dict[str, str]:
    """libvirtd.conf's ca_file, cert_file and key_file for host ``name``."""
    pki = host_pki_dir(name)
    return {"ca_file": os.path.join(pki, "CA", "cacert.pem"),
            "cert_file": os.path.join(pki, "libvirt", "servercert.pem"),
            "key_file": os.path.join(pki, "libvirt", "private", "serverkey.pem")}


def qemu_cert_dir(name: str) -> str:
    """qemu.conf's migrate_tls_x509_cert_dir for host ``name``."""
    return os.path.join(host_pki_dir(name), "qemu")


def issue_host(ca: Authority, name: str, address: str) -> str:
    """Server and client certificates for lab host ``name``; returns its pki dir."""
    pki = host_pki_dir(name)
    shutil.rmtree(pki, ignore_errors=True)
    os.makedirs(os.path.join(pki, "CA"))
    shutil.copyfile(ca.cert, os.path.join(pki, "CA", "cacert.pem"))
    issue(ca, name, os.path.join(pki, "libvirt", "servercert.pem"),
          os.path.join(pki, "libvirt", "private", "serverkey.pem"),
          server=True, alt_names=(name, address))
    issue(ca, name, os.path.join(pki, "libvirt", "clientcert.pem"),
          os.path.join(pki, "libvirt", "private", "clientkey.pem"), server=False)
    qemu_dir = qemu_cert_dir(name)
    os.makedirs(qemu_dir, mode=0o700)
    for source, target in _QEMU_NAMES.items():
        shutil.copyfile(os.path.join(pki, source), os.path.join(qemu_dir, target))
        os.chmod(os.path.join(qemu_dir, target), 0o600 if "key" in target else 0o644)
    return pki


def make_client_dir(ca: Authority, directory: str, common_name: str,
                    also_trust: tuple[str, ...] = ()) -> str:
    """A ``pkipath=`` directory: cacert.pem, clientcert.pem, clientkey.pem.

    The client trusts ``ca`` and the CA certificates in ``also_trust``
    (one bundle in cacert.pem). A client certificate from another
    authority that also trusts the lab CA reaches the lab's servers and
    presents that certificate, so it is the server that refuses it (the
    libvirt client checks its own certificate against cacert.pem first).
    """
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)
    with open(os.path.join(directory, "cacert.pem"), "w") as bundle:
        for path in (ca.cert, *also_trust):
            with open(path) as f:
                bundle.write(f.read())
    issue(ca, common_name, os.path.join(directory, "clientcert.pem"),
          os.path.join(directory, "clientkey.pem"), server=False)
    return directory


def lab_ca() -> Authority:
    """The lab's CA, made if there is none yet (``up`` makes a fresh one;
    a host prepared on its own, as a crash-recovery test does, reuses it)."""
    ca = Authority(os.path.join(CA_DIR, "cacert.pem"), os.path.join(CA_DIR, "cakey.pem"))
    if os.path.exists(ca.cert) and os.path.exists(ca.key):
        return ca
    return make_ca(CA_DIR)


__all__ = ["Authority", "CA_DIR", "CLIENT_DIR", "make_ca", "issue", "issue_host",
           "make_client_dir", "host_pki_dir", "server_files", "qemu_cert_dir", "lab_ca"]
