"""Lab guests: what they are, their libvirt XML, and where they run.

Three kinds, all small because the machine has 2 cores:
- ``linux``: Debian cloud kernel + busybox initramfs; the kernel command line
  carries ``kvmplace.dirty_mibps`` and ``kvmplace.buffer_mib`` for the
  memory dirtier (assets/dirtier.c), so each guest's dirty rate is known.
- ``linux-disk``: the same plus a local qcow2 disk (not shared: each host
  has its own /var/lib/libvirt/images), for migrations that copy storage.
- ``firmware``: no kernel, no disk; SeaBIOS idles. Runs under KVM and
  dirties almost nothing.
Linux guests use KVM only where Linux boots under KVM (image.py probes it);
otherwise TCG (``<domain type='qemu'>``), which migrates just as well.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape, quoteattr

from kvmplace.lab import state as labstate
from kvmplace.lab.errors import LabError
from kvmplace.lab.image import READY_MARKER, BootImage, create_disk, fill_disk

KINDS = ("linux", "linux-disk", "firmware")
IMAGES_DIR = "/var/lib/libvirt/images"  # as seen inside a lab host
SERIAL_LOG = "/var/log/libvirt/qemu/{name}-serial.log"  # inside a lab host

#: Kernel arguments that keep a TCG guest intact across live migration.
#:
#: Why: under QEMU 7.2's TCG, a write the guest makes through a TLB entry
#: that outlives a migration dirty-bitmap sync is not marked dirty, so the
#: destination gets a stale copy of that page. The guest kernel runs
#: without page-table isolation here (qemu64 under TCG: "NOPTI"), so its
#: own mappings are global and stay in the TLB for good, and the pages it
#: writes all the time (timer rb-trees, run queues, the idle task's stack)
#: arrive stale: 19 of 36 plain libvirt live migrations of a guest dirtying
#: 40 MiB/s ended in a guest kernel oops or hang on the destination (idle
#: guests: 0 of 6; auto-converge, parallel streams and single-threaded TCG
#: made no difference). With ``pti=on`` every kernel entry and exit
#: switches CR3 and flushes those entries: 0 of 16 crashed. (KVM tracks
#: dirty pages in the hypervisor; there the argument only costs a little.)
#: tests/integration/test_lab.py::test_writing_guest_survives_migrations.
GUEST_KERNEL_SAFETY_ARGS = "pti=on"


@dataclass
class GuestSpec:
    """One guest as the lab makes it; also what state.json records."""

    name: str
    host: str
    kind: str = "linux"
    memory_mib: int = 256
    dirty_rate_mibps: int = 0
    buffer_mib: int = 0
    disk_mib: int = 0
    domain_type: str = "qemu"
    #: Fill the guest's free RAM with non-zero data at boot (dirtier.c):
    #: then nearly all of its memory crosses the wire, as for a guest that
    #: has used its RAM, and its memory size is what a migration moves.
    fill: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data["disk"] = self.disk_path if self.disk_mib else None
        return data

    @property
    def disk_path(self) -> str:
        """Path of the local disk inside the host (each host has its own)."""
        return os.path.join(IMAGES_DIR, f"{self.name}.qcow2")


#: The mix ``up --guests M`` cycles through. Sizes are small so four guests
#: boot in seconds under TCG; buffers hold non-zero data, so a migration
#: really moves about buffer_mib MiB even when the guest dirties nothing.
DEFAULT_MIX: tuple[dict, ...] = (
    {"kind": "linux", "memory_mib": 256, "dirty_rate_mibps": 40, "buffer_mib": 160},
    {"kind": "firmware", "memory_mib": 128},
    {"kind": "linux", "memory_mib": 256, "dirty_rate_mibps": 0, "buffer_mib": 128},
    {"kind": "linux-disk", "memory_mib": 192, "dirty_rate_mibps": 8, "buffer_mib": 64,
     "disk_mib": 64},
)


MIX_KEYS = ("kind", "memory_mib", "dirty_rate_mibps", "buffer_mib", "disk_mib", "fill")


def plan(count: int, hosts: list[str], dirty_rates: list[int] | None = None,
         linux_type: str = "qemu", firmware_type: str = "kvm",
         mix: list[dict] | None = None) -> list[GuestSpec]:
    """``count`` guests round-robin over ``hosts``, cycling DEFAULT_MIX.

    ``dirty_rates`` (optional, one per guest) overrides the mix's rate of
    the Linux guests; the buffer grows to hold at least 4 s of dirtying, so
    a sampling window never wraps round it.

    ``mix`` (optional) replaces DEFAULT_MIX and is not cycled: one guest per
    entry (``count`` is ignored), each entry with MIX_KEYS fields and
    optionally ``host`` (a lab host name or a 1-based host number) to place
    it instead of round-robin. Benchmarks use it for guests of chosen
    sizes on chosen hosts.
    """
    if not hosts:
        raise LabError("no hosts to place guests on")
    entries = [dict(e) for e in mix] if mix is not None else None
    if entries is not None:
        count = len(entries)
        for i, entry in enumerate(entries):
            unknown = set(entry) - set(MIX_KEYS) - {"host"}
            if unknown or entry.get("kind", "linux") not in KINDS:
                raise LabError(f"guest mix entry {i + 1}: unknown kind or fields "
                               f"{sorted(unknown) or entry.get('kind')}")
    specs = []
    for i in range(count):
        if entries is not None:
            entry_mix: dict = {"kind": "linux", "memory_mib": 256, "dirty_rate_mibps": 0,
                         "buffer_mib": 0, **entries[i]}
        else:
            entry_mix = dict(DEFAULT_MIX[i % len(DEFAULT_MIX)])
        host = entry_mix.pop("host", None)
        if host is None:
            host = hosts[i % len(hosts)]
        elif isinstance(host, int) and not isinstance(host, bool) and 1 <= host <= len(hosts):
            host = hosts[host - 1]
        elif host not in hosts:
            raise LabError(f"guest {i + 1}: no lab host {host!r}")
        if dirty_rates and i < len(dirty_rates) and entry_mix["kind"] != "firmware":
            entry_mix["dirty_rate_mibps"] = dirty_rates[i]
            entry_mix["buffer_mib"] = max(entry_mix["buffer_mib"], 4 * dirty_rates[i])
            entry_mix["memory_mib"] = max(entry_mix["memory_mib"], entry_mix["buffer_mib"] + 96)
        dtype = firmware_type if entry_mix["kind"] == "firmware" else linux_type
        specs.append(GuestSpec(name=f"{labstate.GUEST_PREFIX}{i + 1}",
                               host=host, domain_type=dtype, **entry_mix))
    return specs


def domain_xml(spec: GuestSpec, image: BootImage | None) -> str:
    """Libvirt domain XML for a lab guest.

    No ``<cpu mode='host-model'/>``: QEMU aborts on an MSR under nested KVM
    here; the default CPU model works for KVM and TCG alike. No NIC and no
    balloon: nothing in the guest needs them, and they only add migration
    state. A panic device (its driver is in the initramfs) and
    ``on_crash=preserve``: a guest kernel panic leaves the domain 'crashed'
    where libvirt, kvmplace's agent and the tests see it, instead of a
    reboot (panic=-1) that only the guest's console would tell.
    """
    os_parts = ["<type arch='x86_64' machine='pc'>hvm</type>"]
    if spec.kind in ("linux", "linux-disk"):
        if image is None:
            raise LabError(f"{spec.name}: a Linux guest needs a boot image")
        cmdline = (f"console=ttyS0 quiet panic=-1 {GUEST_KERNEL_SAFETY_ARGS} "
                   f"kvmplace.dirty_mibps={spec.dirty_rate_mibps} "
                   f"kvmplace.buffer_mib={spec.buffer_mib} "
                   # Without huge pages the kernel keeps small reserves, so the
                   # fill reaches all but ~14 MiB of any size (THP raises the
                   # watermarks to ~5 % of RAM, which would stay zero).
                   + ("kvmplace.fill=1 transparent_hugepage=never " if spec.fill else "")
                   + f"kvmplace.guest={spec.name}")
        os_parts += [f"<kernel>{escape(image.kernel)}</kernel>",
                     f"<initrd>{escape(image.initrd)}</initrd>",
                     f"<cmdline>{escape(cmdline)}</cmdline>"]
    else:
        os_parts.append("<boot dev='hd'/>")
    disk = ""
    if spec.disk_mib:
        disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                f"<source file={quoteattr(spec.disk_path)}/>"
                "<target dev='vda' bus='virtio'/></disk>")
    serial = SERIAL_LOG.format(name=spec.name)
    return f"""<domain type={quoteattr(spec.domain_type)}>
  <name>{escape(spec.name)}</name>
  <memory unit='MiB'>{spec.memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>{''.join(os_parts)}</os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>preserve</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disk}
    <serial type='file'><source path={quoteattr(serial)} append='on'/>
      <target port='0'/></serial>
    <console type='file'><source path={quoteattr(serial)} append='on'/>
      <target type='serial' port='0'/></console>
    <memballoon model='none'/>
    <panic model='isa'><address type='isa' iobase='0x505'/></panic>
  </devices>
</domain>
"""


def host_path(host: str, inside_path: str) -> str:
    """Where a path inside a lab host lives in the root namespace."""
    from kvmplace.lab.hostinit import PRIVATE_DIRS
    for sub, target in PRIVATE_DIRS.items():
        if inside_path == target or inside_path.startswith(target + "/"):
            return os.path.join(labstate.host_dir(host), sub,
                                os.path.relpath(inside_path, target))
    return inside_path


def prepare_disk_on(host: str, spec: GuestSpec, fill: bool = False) -> str:
    """Create the guest's qcow2 on ``host`` (a migration destination needs it
    to exist for VIR_MIGRATE_NON_SHARED_DISK); returns the root-ns path."""
    path = host_path(host, spec.disk_path)
    if not os.path.exists(path):
        create_disk(path, spec.disk_mib)
        if fill:
            fill_disk(path, spec.disk_mib)
    return path


def start(conn, spec: GuestSpec, image: BootImage | None) -> None:
    """Define (persistent) and start ``spec`` on the host behind ``conn``."""
    if spec.disk_mib:
        prepare_disk_on(spec.host, spec, fill=True)
    dom = conn.defineXML(domain_xml(spec, image))
    dom.create()


def ready(spec: GuestSpec, host: str | None = None) -> bool:
    """True once a Linux guest's /init has printed its marker (firmware
    guests are ready as soon as they run)."""
    if spec.kind == "firmware":
        return True
    log = host_path(host or spec.host, SERIAL_LOG.format(name=spec.name))
    try:
        with open(log, "rb") as f:
            return READY_MARKER.encode() in f.read()
    except OSError:
        return False


def wait_all_ready(specs: list[GuestSpec], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = [s for s in specs if not ready(s)]
    while pending:
        if time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise LabError(f"guests did not boot within {timeout:.0f} s: {names} "
                           f"(console logs under {labstate.STATE_DIR}/<host>/log/qemu/)")
        time.sleep(0.1)
        pending = [s for s in pending if not ready(s)]
