"""Guest boot artifacts: a Debian cloud kernel and a busybox initramfs.

Built once and cached under /var/cache/kvmplace-lab/ (``down`` keeps the
cache), so a second ``up`` spends no time here:
- the kernel comes from the Debian package archive with ``apt-get
  download`` (the versioned ``linux-image-*-cloud-amd64`` behind the
  ``linux-image-cloud-amd64`` metapackage) and ``dpkg-deb -x``: nothing is
  installed, no hooks run;
- the initramfs holds static busybox, the lab's /init and the memory
  dirtier (assets/dirtier.c, ``gcc -static``); its name carries a hash of
  its inputs, so editing the dirtier rebuilds it.
Also here: whether Linux boots under KVM on this machine (probed once,
cached), and qcow2 disks for guests with local storage.
"""
from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources

from kvmplace.lab import state as labstate
from kvmplace.lab.errors import LabError
from kvmplace.lab.system import run

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = "/bin/busybox"
QEMU = "/usr/bin/qemu-system-x86_64"
READY_MARKER = "kvmplace-guest: ready"
#: How long a Linux guest may take to reach /init under KVM before the lab
#: decides KVM cannot boot it here and uses TCG.
KVM_PROBE_SECONDS = 10.0


@dataclass(frozen=True)
class BootImage:
    """Paths a Linux guest's <os> element points at (visible on every host)."""

    kernel: str
    initrd: str
    kernel_version: str


def _asset(name: str) -> bytes:
    return resources.files("kvmplace.lab").joinpath("assets", name).read_bytes()


def kernel_package() -> str:
    """The versioned cloud kernel package the metapackage depends on."""
    out = run(["apt-cache", "depends", KERNEL_META_PACKAGE]).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip()
    raise LabError(f"apt-cache knows no kernel behind {KERNEL_META_PACKAGE}; "
                   "run apt-get update")


#: Kernel modules the guests load from their initramfs, in load order:
#: the panic device's driver, so that a guest kernel panic reaches libvirt
#: (the domain turns 'crashed', reason 'panicked') instead of a silent
#: reboot that nobody outside the guest would notice.
GUEST_MODULES = ("drivers/misc/pvpanic/pvpanic.ko", "drivers/misc/pvpanic/pvpanic-mmio.ko")


def ensure_kernel() -> tuple[str, str]:
    """(path to vmlinuz, version); downloaded and unpacked once (again when
    a cache from before GUEST_MODULES lacks the modules)."""
    kdir = os.path.join(labstate.CACHE_DIR, "kernel")
    found = sorted(glob.glob(os.path.join(kdir, "boot", "vmlinuz-*")))
    if found and all(os.path.exists(os.path.join(kdir, "modules", os.path.basename(m)))
                     for m in GUEST_MODULES):
        return found[-1], os.path.basename(found[-1])[len("vmlinuz-"):]
    package = kernel_package()
    os.makedirs(labstate.CACHE_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=labstate.CACHE_DIR) as tmp:
        # apt drops privileges to _apt for downloads; a root-only tmp dir
        # makes it fall back to root with a warning, which is harmless.
        os.chmod(tmp, 0o755)
        proc = subprocess.run(["apt-get", "download", package], cwd=tmp,
                              capture_output=True, text=True, timeout=600)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if proc.returncode != 0 or not debs:
            raise LabError(f"apt-get download {package} failed: "
                           f"{proc.stderr.strip().splitlines()[-1:]}")
        unpacked = os.path.join(tmp, "x")
        run(["dpkg-deb", "-x", debs[0], unpacked])
        os.makedirs(os.path.join(kdir, "boot"), exist_ok=True)
        vmlinuz = glob.glob(os.path.join(unpacked, "boot", "vmlinuz-*"))
        if not vmlinuz:
            raise LabError(f"{package} holds no /boot/vmlinuz-*")
        os.makedirs(os.path.join(kdir, "modules"), exist_ok=True)
        for module in GUEST_MODULES:
            paths = glob.glob(os.path.join(unpacked, "lib", "modules", "*", "kernel", module))
            if not paths:
                raise LabError(f"{package} holds no {module}")
            shutil.copy2(paths[0], os.path.join(kdir, "modules"))
        for path in glob.glob(os.path.join(unpacked, "boot", "*")):
            shutil.copy2(path, os.path.join(kdir, "boot"))
    return ensure_kernel()


def guest_module_paths() -> list[str]:
    """The cached GUEST_MODULES (ensure_kernel first), in load order."""
    kdir = os.path.join(labstate.CACHE_DIR, "kernel", "modules")
    return [os.path.join(kdir, os.path.basename(m)) for m in GUEST_MODULES]


def build_dirtier(out_dir: str) -> str:
    """Compile assets/dirtier.c statically; returns the binary's path."""
    src = os.path.join(out_dir, "dirtier.c")
    with open(src, "wb") as f:
        f.write(_asset("dirtier.c"))
    binary = os.path.join(out_dir, "dirtier")
    run(["gcc", "-static", "-O2", "-Wall", "-o", binary, src])
    return binary


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    digest.update(_asset("dirtier.c"))
    digest.update(_asset("init"))
    for module in guest_module_paths():
        with open(module, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    with open(BUSYBOX, "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:12]


def ensure_initrd() -> str:
    """The guests' initramfs (gzip'd newc cpio), built once per input set."""
    path = os.path.join(labstate.CACHE_DIR, f"initrd-{_inputs_digest()}.gz")
    if os.path.exists(path):
        return path
    os.makedirs(labstate.CACHE_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=labstate.CACHE_DIR) as tmp:
        root = os.path.join(tmp, "root")
        for sub in ("bin", "dev", "proc", "sys", "tmp", "modules"):
            os.makedirs(os.path.join(root, sub))
        for module in guest_module_paths():
            shutil.copy2(module, os.path.join(root, "modules"))
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        shutil.copy2(build_dirtier(tmp), os.path.join(root, "bin", "dirtier"))
        with open(os.path.join(root, "init"), "wb") as f:
            f.write(_asset("init"))
        os.chmod(os.path.join(root, "init"), 0o755)
        # The kernel opens /dev/console before /init runs; without the node
        # /init's output (the ready marker) would go nowhere.
        os.mknod(os.path.join(root, "dev", "console"), 0o600 | stat.S_IFCHR,
                 os.makedev(5, 1))
        names = sorted(os.path.relpath(os.path.join(d, n), root)
                       for d, dirs, files in os.walk(root) for n in dirs + files)
        proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                              input=("\n".join(["."] + names) + "\n").encode(),
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise LabError(f"cpio failed: {proc.stderr.decode().strip()}")
        partial = path + ".part"
        with gzip.open(partial, "wb", compresslevel=1) as f:
            f.write(proc.stdout)
        os.replace(partial, path)
    return path


def ensure_boot_image() -> BootImage:
    kernel, version = ensure_kernel()    # first: the initrd holds its modules
    return BootImage(kernel=kernel, initrd=ensure_initrd(), kernel_version=version)


def kvm_available() -> bool:
    """Whether the lab's QEMU may open /dev/kvm.

    Root's access is the right question here, and only here: every lab
    host's libvirtd runs QEMU as root (``user``/``group`` in its own
    qemu.conf, see libvirtd.py), and the KVM boot probe below runs QEMU as
    root too. Anything started under another libvirtd must ask that daemon
    (``kvmplace.lab.accel.domain_type``).
    """
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def linux_boots_under_kvm(image: BootImage) -> bool:
    """Whether a Linux guest reaches /init under KVM here (probed once, cached).

    On nested or para-virtualised KVM (e.g. ``kvm_pvm``, which uses shadow
    paging) the guest kernel's early boot can crawl: it was seen taking
    50 s to print its first line. The lab then uses TCG for Linux guests;
    firmware-only guests still use KVM.
    """
    if not kvm_available():
        return False
    cache = os.path.join(labstate.CACHE_DIR, "kvm-probe.json")
    key = f"{image.kernel_version} {os.stat(QEMU).st_mtime_ns} {os.uname().release}"
    try:
        with open(cache) as f:
            recorded = json.load(f)
        if recorded.get("key") == key:
            return bool(recorded["boots"])
    except (OSError, ValueError, KeyError):
        pass
    boots, seconds = _probe_kvm_boot(image)
    with open(cache, "w") as f:
        json.dump({"key": key, "boots": boots, "seconds": seconds,
                   "limit_seconds": KVM_PROBE_SECONDS}, f)
    return boots


def _probe_kvm_boot(image: BootImage) -> tuple[bool, float]:
    with tempfile.TemporaryDirectory() as tmp:
        console = os.path.join(tmp, "console.log")
        argv = [QEMU, "-accel", "kvm", "-m", "128", "-display", "none",
                "-no-reboot", "-serial", f"file:{console}", "-kernel", image.kernel,
                "-initrd", image.initrd, "-append", "console=ttyS0 quiet panic=-1"]
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.monotonic() - start < KVM_PROBE_SECONDS:
                if proc.poll() is not None:
                    break
                if _console_ready(console):
                    return True, time.monotonic() - start
                time.sleep(0.1)
            return False, time.monotonic() - start
        finally:
            proc.kill()
            proc.wait()


def _console_ready(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return READY_MARKER.encode() in f.read()
    except OSError:
        return False


def create_disk(path: str, size_mib: int) -> None:
    """A qcow2 disk filled with non-zero data, so copying it moves real bytes.

    Guests with a local disk migrate with VIR_MIGRATE_NON_SHARED_DISK; libvirt
    then needs the destination image to exist already (it only pre-creates
    volumes that live in a storage pool): call this for the destination path
    (guests.prepare_disk_on) before such a migration.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    run(["qemu-img", "create", "-q", "-f", "qcow2", path, f"{size_mib}M"])


def fill_disk(path: str, size_mib: int) -> None:
    run(["qemu-io", "-f", "qcow2", "-c", f"write -q -P 0xa5 0 {size_mib}M", path])
