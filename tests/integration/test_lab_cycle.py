"""``down`` leaves nothing behind; ``up`` works again and is quick."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from kvmplace.lab import netns, services
from kvmplace.lab import state as labstate
from kvmplace.lab.system import pids_in_netns
from tests.integration.conftest import GUESTS, HOSTS, LINKS_MBPS

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

UP_BUDGET_SECONDS = 60


def lab_processes() -> list[str]:
    """libvirtd/virtlogd/QEMU processes that belong to a lab host: their
    config or guest names carry the lab's marks."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "guest=lab-vm" in cmd or "kvmplace.lab.hostinit" in cmd:
            found.append(f"{pid}: {cmd[:80]}")
    return found


def test_down_leaves_nothing_and_up_works_again(lab):
    from kvmplace.lab import manager

    netns_paths = [netns.netns_path(h["netns"]) for h in lab["hosts"]]
    manager.down()
    # Twice: down is idempotent.
    manager.down()
    assert netns.lab_netns_names() == []
    assert not netns.link_exists(labstate.BRIDGE)
    assert netns.lab_veth_names() == []
    assert not any(os.path.exists(p) for p in netns_paths)
    assert lab_processes() == []
    assert not os.path.exists(labstate.STATE_DIR)
    assert labstate.load()["hosts"] == []

    started = time.monotonic()
    state = manager.up(hosts=HOSTS, links_mbps=LINKS_MBPS, guests_count=GUESTS,
                       with_services=True)
    elapsed = time.monotonic() - started
    print(f"up with {HOSTS} hosts and {GUESTS} guests: {elapsed:.1f} s "
          f"(steps: {state['timings_seconds']})")
    assert elapsed <= UP_BUDGET_SECONDS
    # One conductor and one agent per host, launched if their code exists.
    assert set(state["services"]) == {"conductor"} | {f"agent@{h['name']}"
                                                      for h in state["hosts"]}
    assert all(s["state"] in ("running", "not-available")
               for s in state["services"].values())
    assert len(state["hosts"]) == HOSTS and len(state["guests"]) == GUESTS
    # Guests run where the record of this fresh up says, and nowhere else.
    where = manager.locate_guests(state)
    assert where == {g["name"]: g["host"] for g in state["guests"]}
    assert sorted(set(where.values())) == [h["name"] for h in state["hosts"]]
    for host in state["hosts"]:
        assert pids_in_netns(netns.netns_path(host["netns"]))
        hostname = subprocess.run(["virsh", "-c", host["libvirt_uri"], "hostname"],
                                  capture_output=True, text=True, timeout=30)
        assert hostname.stdout.strip() == host["name"]
    # The fixture's record is now stale; refresh the pids it holds.
    lab.clear()
    lab.update(state)


def test_down_after_half_finished_up(lab):
    """A crash mid-up (simulated: namespaces and a daemon, no guests, no
    finished record) is still cleaned up completely; so are services whose
    record was lost."""
    from kvmplace.lab import libvirtd, manager

    os.remove(labstate.STATE_FILE)          # a crash lost the record
    manager.down()
    assert services.orphans() == [], "service processes outlived down"
    assert lab_processes() == []
    assert netns.lab_netns_names() == []
    netns.ensure_bridge()
    name, address = labstate.host_name(1), labstate.host_address(1)
    netns.create_host_network(name, labstate.host_veth(name), address)
    libvirtd.prepare_host_dir(name, address)
    libvirtd.start_host(name, name)
    libvirtd.wait_ready(address)
    assert not os.path.exists(labstate.STATE_FILE)   # nothing recorded
    manager.down()
    assert netns.lab_netns_names() == [] and not netns.link_exists(labstate.BRIDGE)
    assert lab_processes() == []
    assert services.orphans() == []
    state = manager.up(hosts=HOSTS, links_mbps=LINKS_MBPS, guests_count=GUESTS)
    lab.clear()
    lab.update(state)
