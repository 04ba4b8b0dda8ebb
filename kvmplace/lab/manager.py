"""Bring the lab up, report on it, take it down.

``up`` records every step in state.json as it goes; ``down`` removes what
the record names *and* whatever matches the lab's naming (namespaces
``lab-h*``, veths ``lab-h*-br``, the bridge, processes inside those
namespaces), so it also cleans up after a crashed or half-finished ``up``.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import time
from collections.abc import Callable

from kvmplace.lab import broker, guests, image, libvirtd, netns, numa, pki, services
from kvmplace.lab import state as labstate
from kvmplace.lab.errors import LabError
from kvmplace.lab.system import (REQUIRED_PACKAGES, ensure_packages, kill_pids,
                                 pids_in_netns, require_root_linux, run)

LOG = logging.getLogger(__name__)

DEFAULT_LINKS_MBPS = (10000, 1000, 200)
GUEST_BOOT_TIMEOUT = 60.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def leftovers() -> bool:
    """True if anything of a lab exists (record, namespace, bridge)."""
    return (os.path.exists(labstate.STATE_FILE) or bool(netns.lab_netns_names())
            or netns.link_exists(labstate.BRIDGE))


def up(hosts: int = 3, links_mbps: list[int] | None = None, guests_count: int = 4,
       with_services: bool = False, dirty_rates: list[int] | None = None,
       linux_accel: str = "auto", host_memory_mib: int = numa.DEFAULT_HOST_MEMORY_MIB,
       recreate: bool = False, install: bool = True,
       progress: Progress = _quiet, mix: list[dict] | None = None) -> dict:
    """Build the lab; returns the recorded state (see state.public_view).

    ``links_mbps`` gives each host's link speed in Mbit/s (cycled if shorter
    than ``hosts``). ``mix`` lists the guests explicitly (guests.plan);
    then ``guests_count`` is ignored. ``linux_accel`` is ``auto`` (KVM if Linux boots under
    KVM here, else TCG), ``kvm`` or ``tcg``. With ``recreate`` an existing
    lab is taken down first; otherwise an existing lab is an error.
    """
    require_root_linux()
    if hosts < 1 or hosts > 200:
        raise LabError("--hosts must be between 1 and 200")
    if guests_count < 0:
        raise LabError("--guests must not be negative")
    links = list(links_mbps or DEFAULT_LINKS_MBPS)
    if any(rate <= 0 for rate in links):
        raise LabError("link speeds must be positive Mbit/s figures")
    if linux_accel not in ("auto", "kvm", "tcg"):
        raise LabError("linux accel must be auto, kvm or tcg")
    if install:
        installed = ensure_packages(REQUIRED_PACKAGES)
        if installed:
            progress(f"installed {' '.join(installed)}")
    if leftovers():
        if not recreate:
            raise LabError("a lab already exists; run `kvmplace-lab down` first "
                           "(or `up --recreate`)")
        progress("taking the existing lab down")
        down()

    try:
        return _build(hosts, links, guests_count, with_services, dirty_rates, linux_accel,
                      host_memory_mib, progress, mix)
    except LabError as exc:
        _mark_failed()
        raise LabError(f"{exc} (the lab is half up: `kvmplace-lab down` cleans up)") from None
    except BaseException:
        _mark_failed()
        raise


def _mark_failed() -> None:
    state = labstate.load()
    if state.get("phase") == "starting":
        state["phase"] = "failed"
        labstate.save(state)


def _build(hosts: int, links: list[int], guests_count: int, with_services: bool,
           dirty_rates: list[int] | None, linux_accel: str, host_memory_mib: int,
           progress: Progress, mix: list[dict] | None = None) -> dict:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - started, 2)

    state = labstate.empty_state()
    state["timings_seconds"] = timings
    state["phase"] = "starting"
    os.makedirs(labstate.STATE_DIR, exist_ok=True)
    state["broker"] = broker.start(os.path.join(labstate.STATE_DIR, "rabbitmq.log"))
    labstate.save(state)

    progress("preparing guest images")
    if mix is not None:
        guests_count = len(mix)
    boot = image.ensure_boot_image() if guests_count else None
    linux_type = _linux_domain_type(linux_accel, boot)
    firmware_type = "kvm" if image.kvm_available() else "qemu"
    mark("images")

    progress(f"creating {hosts} hosts")
    netns.ensure_bridge()
    # A fresh CA per lab; a client directory for the root namespace, so
    # tests and operators can dial any host's qemu+tls listener.
    ca = pki.make_ca(pki.CA_DIR)
    pki.make_client_dir(ca, pki.CLIENT_DIR, "kvmplace lab client")
    peers = {labstate.host_name(i): labstate.host_address(i) for i in range(1, hosts + 1)}
    for index in range(1, hosts + 1):
        state["hosts"].append(_make_host(index, links[(index - 1) % len(links)], peers))
        labstate.save(state)
    mark("hosts_created")
    for host in state["hosts"]:
        libvirtd.wait_ready(host["address"])
        host.update({f"{d}_pid": pid for d, pid in libvirtd.daemon_pids(host["name"]).items()})
    mark("libvirtd_ready")
    labstate.save(state)

    specs = guests.plan(guests_count, [h["name"] for h in state["hosts"]], dirty_rates,
                        linux_type=linux_type, firmware_type=firmware_type, mix=mix)
    for host in state["hosts"]:
        on_host = [s for s in specs if s.host == host["name"]]
        used = sum(s.memory_mib for s in on_host)
        numa.write(host["name"], numa.topology(host_memory_mib, (used, 0)))
    if specs:
        progress(f"starting {len(specs)} guests (Linux guests: {linux_type})")
        state["guests"] = [s.to_dict() for s in specs]
        state["guest_kernel_args"] = guests.GUEST_KERNEL_SAFETY_ARGS
        labstate.save(state)
        _start_guests(state, specs, boot)
        mark("guests_started")
        guests.wait_all_ready(specs, GUEST_BOOT_TIMEOUT)
        mark("guests_ready")

    progress("waiting for RabbitMQ")
    broker.wait(state["broker"])
    mark("broker_ready")
    state["config_file"] = services.write_config(state)
    if with_services:
        state["services"] = services.start(state)
        missing = [n for n, e in state["services"].items() if e["state"] == "not-available"]
        if missing:
            progress("services not started (not implemented yet): " + ", ".join(missing)
                     + f"; config written to {state['config_file']}")
    else:
        state["services"] = services.describe(state)
    state["phase"] = "up"
    state["up_seconds"] = round(time.monotonic() - started, 2)
    labstate.save(state)
    return state


def _linux_domain_type(accel: str, boot: image.BootImage | None) -> str:
    if accel == "kvm":
        if not image.kvm_available():
            raise LabError("/dev/kvm is not usable: cannot run guests under KVM")
        return "kvm"
    if accel == "tcg" or boot is None:
        return "qemu"
    return "kvm" if image.linux_boots_under_kvm(boot) else "qemu"


def _make_host(index: int, link_mbps: int, peers: dict[str, str]) -> dict:
    name = labstate.host_name(index)
    address = labstate.host_address(index)
    veth = labstate.host_veth(name)
    netns.create_host_network(name, veth, address)
    netns.shape(name, veth, link_mbps)
    host_uuid = libvirtd.prepare_host_dir(name, address, peers)
    libvirtd.start_host(name, name)
    return {"name": name, "address": address, "netns": name, "veth": veth,
            "link_mbps": link_mbps, "libvirt_uri": labstate.libvirt_uri(address),
            "libvirt_tls_uri": labstate.libvirt_tls_uri(address),
            "pki_dir": pki.host_pki_dir(name),
            "host_uuid": host_uuid, "numa_file": labstate.numa_file(name)}


def _start_guests(state: dict, specs: list[guests.GuestSpec],
                  boot: image.BootImage | None) -> None:
    """Define and start guests, one thread per host (QEMU start-up overlaps)."""
    libvirt = libvirt_module()

    uris = {h["name"]: h["libvirt_uri"] for h in state["hosts"]}

    def start_on(host: str) -> None:
        conn = libvirt.open(uris[host])
        try:
            for spec in specs:
                if spec.host == host:
                    guests.start(conn, spec, boot)
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(uris)) as pool:
        for future in [pool.submit(start_on, h) for h in {s.host for s in specs}]:
            try:
                future.result()
            except libvirt.libvirtError as exc:
                raise LabError(f"starting guests failed: {exc}") from None


def libvirt_module():
    """libvirt-python, with its default error handler silenced.

    By default libvirt prints every error to stderr, even ones the caller
    handles (a poll racing a finished migration); errors still raise.
    """
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def status(live: bool = True) -> dict:
    """The lab's status; with ``live``, each guest's host is looked up on the
    hosts' libvirtds (guests move when tests or kvmplace migrate them)."""
    state = labstate.load()
    if live and state.get("hosts"):
        where = locate_guests(state)
        for guest in state.get("guests", []):
            guest["host"] = where.get(guest["name"])
        services.refresh(state.get("services", {}))
    return state


def locate_guests(state: dict) -> dict[str, str | None]:
    """Guest name -> the host where it is running now (None: nowhere)."""
    libvirt = libvirt_module()

    found: dict[str, str | None] = {g["name"]: None for g in state.get("guests", [])}
    for host in state.get("hosts", []):
        try:
            conn = libvirt.open(host["libvirt_uri"])
        except libvirt.libvirtError:
            continue
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                if dom.name() in found:
                    found[dom.name()] = host["name"]
        finally:
            conn.close()
    return found


def host_record(name: str) -> dict:
    for host in labstate.load().get("hosts", []):
        if host["name"] == name:
            return host
    raise LabError(f"no lab host named {name}")


def connect(host: str):
    """A libvirt connection to a lab host, from the root namespace."""
    return libvirt_module().open(host_record(host)["libvirt_uri"])


def slow_node(host: str, node: int, bandwidth_mibps: int | None) -> list[dict]:
    """Inject a NUMA node's measured bandwidth (None: back to baseline)."""
    host_record(host)
    return numa.set_bandwidth(host, node, bandwidth_mibps)


def set_link(host: str, link_mbps: int) -> dict:
    """Change a host's link speed while the lab runs."""
    state = labstate.load()
    for record in state.get("hosts", []):
        if record["name"] == host:
            netns.shape(record["netns"], record["veth"], link_mbps)
            record["link_mbps"] = link_mbps
            labstate.save(state)
            if state.get("config_file"):
                services.write_config(state)
            return record
    raise LabError(f"no lab host named {host}")


def down(keep_broker: bool = False, progress: Progress = _quiet) -> None:
    """Remove everything the lab made; safe to run any number of times."""
    require_root_linux()
    state = labstate.load()
    services.stop(state.get("services", {}))
    names = sorted(set(netns.lab_netns_names())
                   | {h["netns"] for h in state.get("hosts", []) if h.get("netns")})
    # Everything a host runs (libvirtd, virtlogd, QEMU, agents) is inside its
    # network namespace; no need to ask libvirt to destroy guests one by one.
    pids = [pid for name in names for pid in pids_in_netns(netns.netns_path(name))]
    pids += services.orphans()
    pids += [p for h in state.get("hosts", []) for p in
             (h.get("libvirtd_pid"), h.get("virtlogd_pid")) if p and _ours(p, h)]
    if pids:
        progress(f"stopping {len(set(pids))} processes")
        kill_pids(sorted(set(pids)))
    progress("removing namespaces and the bridge")
    netns.teardown_all()
    if not keep_broker:
        broker.stop(state.get("broker", {}))
    _remove_state_dir()


def _ours(pid: int, host: dict) -> bool:
    """A recorded pid is killed only if it still looks like that host's daemon
    (the namespace may be gone after a crash, and pids get reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return os.path.basename(cmd) in ("libvirtd", "virtlogd")


def _remove_state_dir() -> None:
    """Files last; unmount anything still mounted below the state dir first."""
    if not os.path.exists(labstate.STATE_DIR):
        return
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for mount in sorted((m for m in mounts if m.startswith(labstate.STATE_DIR + "/")),
                        reverse=True):
        run(["umount", "-l", mount], check=False)
    shutil.rmtree(labstate.STATE_DIR, ignore_errors=True)
