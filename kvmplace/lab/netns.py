"""Network side of the lab: a bridge, one network namespace per host, shaping.

Each host gets a veth pair: one end (``<host>-br``) is a port of the lab
bridge in the root namespace, the other is ``eth0`` inside the host's
namespace with the host's own address. Everything the host's libvirtd
starts (QEMU included) lives in that namespace, so migration traffic
between two hosts really crosses both hosts' veths, and a ``tbf`` qdisc on
both ends of a veth (egress on each side) gives the host a link of a chosen
speed in both directions.
"""
from __future__ import annotations

import os
import re

from kvmplace.lab import state as labstate
from kvmplace.lab.system import run

NETNS_DIR = "/run/netns"


def netns_path(netns: str) -> str:
    return os.path.join(NETNS_DIR, netns)


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def ensure_bridge() -> None:
    """The shared switch, with the gateway address so the root namespace
    (tests, the conductor, virsh) reaches every host's libvirtd."""
    bridge = labstate.BRIDGE
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    address = f"{labstate.BRIDGE_ADDRESS}/{labstate.PREFIX_LEN}"
    shown = run(["ip", "-o", "addr", "show", "dev", bridge]).stdout
    if f" {address} " not in shown:
        run(["ip", "addr", "add", address, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def ns_run(netns: str, argv: list[str], check: bool = True):
    return run(["ip", "netns", "exec", netns, *argv], check=check)


def create_host_network(netns: str, veth: str, address: str) -> None:
    """Namespace, veth pair on the bridge, address, loopback up."""
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
         "netns", netns])
    run(["ip", "link", "set", veth, "master", labstate.BRIDGE, "up"])
    ns_run(netns, ["ip", "addr", "add", f"{address}/{labstate.PREFIX_LEN}",
                   "dev", "eth0"])
    ns_run(netns, ["ip", "link", "set", "eth0", "up"])
    ns_run(netns, ["ip", "link", "set", "lo", "up"])


def _tbf(rate_mbps: int) -> list[str]:
    """tbf arguments for a link of ``rate_mbps``.

    The bucket must hold at least one timer tick's worth of bytes or tbf
    cannot reach the rate (HZ may be 100); 10 ms of traffic, and never less
    than 256 KiB (what was seen to give 96 % of 200 Mbit/s here).
    """
    burst_bytes = max(256 * 1024, rate_mbps * 1_000_000 // 8 // 100)
    return ["tbf", "rate", f"{rate_mbps}mbit", "burst", str(burst_bytes),
            "latency", "100ms"]


def shape(netns: str, veth: str, rate_mbps: int) -> None:
    """Shape both directions of a host's link to ``rate_mbps``.

    Bridge side egress is the host's ingress, namespace side egress is the
    host's egress; ``replace`` makes this safe to call again (slow-link
    changes at run time).
    """
    run(["tc", "qdisc", "replace", "dev", veth, "root", *_tbf(rate_mbps)])
    ns_run(netns, ["tc", "qdisc", "replace", "dev", "eth0", "root", *_tbf(rate_mbps)])


def lab_netns_names() -> list[str]:
    """Network namespaces that look like lab hosts (whatever the record says)."""
    pattern = re.compile(rf"^{re.escape(labstate.HOST_PREFIX)}\d+$")
    out = run(["ip", "netns", "list"], check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if pattern.match(name)]


def lab_veth_names() -> list[str]:
    pattern = re.compile(rf"^{re.escape(labstate.HOST_PREFIX)}\d+-br$")
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0]
             for line in out.splitlines() if line.count(":") >= 2]
    return [name for name in names if pattern.match(name)]


def delete_host_network(netns: str) -> None:
    """Remove a namespace (its veth goes with it); missing is fine."""
    run(["ip", "netns", "del", netns], check=False)


def teardown_all() -> None:
    """Every lab namespace, stray veth and the bridge; idempotent."""
    for netns in lab_netns_names():
        delete_host_network(netns)
    for veth in lab_veth_names():
        run(["ip", "link", "del", veth], check=False)
    if link_exists(labstate.BRIDGE):
        run(["ip", "link", "del", labstate.BRIDGE], check=False)
