"""Fixtures for tests that need the multi-host lab (``pytest -m lab``).

One lab per test session: three hosts with different link speeds and four
guests (see kvmplace.lab.guests.DEFAULT_MIX), brought up on first use and
taken down at the end of the session. Tests that need the lab are marked
``lab`` and skipped, with the reason, where the lab cannot run: not root,
no QEMU (neither /dev/kvm nor a qemu binary), no libvirt-python.
Set KVMPLACE_LAB_TESTS=0 to skip them on purpose.

Guests move during the session (tests migrate them); ask where a guest is
with ``kvmplace.lab.measure.where(name)``, not from the recorded state.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import time

import pytest

#: The session lab: host i has link LINKS_MBPS[i-1].
LINKS_MBPS = [10000, 1000, 200]
HOSTS = len(LINKS_MBPS)
GUESTS = 4


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None if it can."""
    if os.environ.get("KVMPLACE_LAB_TESTS", "1") == "0":
        return "lab tests disabled (KVMPLACE_LAB_TESTS=0)"
    if os.uname().sysname != "Linux":
        return "the lab needs Linux"
    if os.geteuid() != 0:
        return "the lab needs root (namespaces, bridge, libvirtd)"
    if not os.path.exists("/dev/kvm") and not shutil.which("qemu-system-x86_64"):
        return "neither /dev/kvm nor qemu-system-x86_64 is available"
    if importlib.util.find_spec("libvirt") is None:
        return "libvirt-python is not installed"
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "lab: needs the multi-host lab (root, libvirt, QEMU, namespaces)")


def pytest_collection_modifyitems(config, items):
    reason = lab_unavailable_reason()
    if reason is None:
        if any("lab" in item.keywords for item in items):
            # One lab user at a time (benchmarks, other test sessions).
            from kvmplace.lab import lock
            lock.acquire("pytest")
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


def _healthy_session_lab() -> dict | None:
    """The lab that is up already, if it has this session's shape (a lab
    from before hosts served libvirt over TLS does not)."""
    from kvmplace.lab import guests, manager
    from kvmplace.lab import state as labstate

    state = labstate.load()
    if (state.get("phase") != "up"
            or [h["link_mbps"] for h in state["hosts"]] != LINKS_MBPS
            or not all(h.get("libvirt_tls_uri") for h in state["hosts"])
            # Guests booted without the arguments that keep TCG guests
            # intact across migration (see guests.GUEST_KERNEL_SAFETY_ARGS).
            or state.get("guest_kernel_args") != guests.GUEST_KERNEL_SAFETY_ARGS
            or len(state.get("guests", [])) != GUESTS):
        return None
    where = manager.locate_guests(state)
    return state if all(where.values()) else None


@pytest.fixture(scope="session")
def lab():
    """The session's lab, up; yields the recorded state (state.load()).

    This machine is shared: a lab of the right shape that is already up is
    reused (and left up); otherwise one is brought up (replacing any other
    lab) and taken down at the end of the session.
    """
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from kvmplace.lab import manager

    existing = _healthy_session_lab()
    if existing is not None:
        # The agents' config files follow this checkout's options (a lab
        # brought up by older code lacks e.g. [agent] peers); options a
        # running older agent does not know are ignored by oslo.config.
        from kvmplace.lab import services
        services.write_config(existing)
        yield existing
        return
    started = time.monotonic()
    state = manager.up(hosts=HOSTS, links_mbps=LINKS_MBPS, guests_count=GUESTS,
                       recreate=True)
    state["fixture_up_seconds"] = time.monotonic() - started
    try:
        yield state
    finally:
        manager.down()


@pytest.fixture
def lab_host_by_link(lab):
    """Host name for a link speed in Mbit/s (the lab's hosts are all different)."""
    by_speed = {h["link_mbps"]: h["name"] for h in lab["hosts"]}
    return by_speed.__getitem__
