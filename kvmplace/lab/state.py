"""Where the lab keeps its record, and how to read it.

``/var/lib/kvmplace-lab/state.json`` holds what ``kvmplace-lab status``
prints plus what ``down`` needs (pids, who started the broker). It is
rewritten after every step of ``up``, so a half-finished ``up`` still leaves
a useful record; ``down`` does not rely on it alone (see manager.down).
Per host, ``/var/lib/kvmplace-lab/<host>/`` holds that host's private
libvirt directories and its ``numa.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

STATE_DIR = "/var/lib/kvmplace-lab"
CACHE_DIR = "/var/cache/kvmplace-lab"
STATE_FILE = os.path.join(STATE_DIR, "state.json")

#: Lab network: a bridge in the root namespace holding the gateway address,
#: hosts at .11, .12, ... (a private /24 nothing else on this machine uses).
BRIDGE = "kvmplab0"
SUBNET_PREFIX = "10.213.77."
BRIDGE_ADDRESS = SUBNET_PREFIX + "1"
PREFIX_LEN = 24
LIBVIRT_PORT = 16509
#: libvirtd's TLS listener (libvirt's default tls_port), next to LIBVIRT_PORT.
LIBVIRT_TLS_PORT = 16514
BROKER_URL = "rabbit://guest:guest@127.0.0.1:5672/"
HOST_PREFIX = "lab-h"
GUEST_PREFIX = "lab-vm"


def host_name(index: int) -> str:
    """Host names are lab-h1, lab-h2, ... (1-based, as people count)."""
    return f"{HOST_PREFIX}{index}"


def host_address(index: int) -> str:
    return f"{SUBNET_PREFIX}{10 + index}"


def host_veth(name: str) -> str:
    """Root-namespace end of a host's veth (at most 15 characters)."""
    return f"{name}-br"


def libvirt_uri(address: str) -> str:
    return f"qemu+tcp://{address}:{LIBVIRT_PORT}/system"


def libvirt_tls_uri(address: str) -> str:
    """The host's libvirtd over TLS; the client needs certificates signed by
    the lab CA (see pki.py: /etc/pki inside a host, ``pkipath=`` outside)."""
    return f"qemu+tls://{address}:{LIBVIRT_TLS_PORT}/system"


def host_dir(name: str) -> str:
    return os.path.join(STATE_DIR, name)


def numa_file(name: str) -> str:
    """The emulated NUMA topology a host's agent reads (see numa.py)."""
    return os.path.join(host_dir(name), "numa.json")


def empty_state() -> dict[str, Any]:
    return {"hosts": [], "guests": [], "broker_url": BROKER_URL,
            "config_file": None, "services": {}, "broker": {}, "phase": "empty"}


def load() -> dict[str, Any]:
    """The lab's status as recorded by the last ``up`` (empty if none)."""
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        return empty_state()


def save(state: dict[str, Any]) -> None:
    """Write atomically, so a crash never leaves half a JSON file."""
    os.makedirs(STATE_DIR, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=STATE_DIR, prefix=".state.")
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, STATE_FILE)


def public_view(state: dict[str, Any]) -> dict[str, Any]:
    """The status contract: what ``status -f json`` prints.

    Internal bookkeeping (pids, phases) stays out of the documented fields
    but is kept under ``"lab"`` for debugging.
    """
    hosts = [{k: h.get(k) for k in ("name", "libvirt_uri", "libvirt_tls_uri", "address",
                                    "link_mbps", "netns", "numa_file")}
             for h in state.get("hosts", [])]
    guests = [{k: g.get(k) for k in ("name", "host", "dirty_rate_mibps", "kind",
                                     "memory_mib", "domain_type", "disk")}
              for g in state.get("guests", [])]
    return {"hosts": hosts, "guests": guests,
            "broker_url": state.get("broker_url", BROKER_URL),
            "config_file": state.get("config_file"),
            "services": state.get("services", {}),
            "lab": {"phase": state.get("phase"), "state_dir": STATE_DIR}}
