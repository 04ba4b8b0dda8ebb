"""/proc readers, on this process and on a fake /proc tree."""
from __future__ import annotations

import os
import threading

from kvmplace import objects
from kvmplace.agent import procfs

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'


def _fake_proc(root, pid: int, args: list[str], cpus: str, tids=()):
    base = root / str(pid)
    (base / 'task' / str(pid)).mkdir(parents=True)
    (base / 'cmdline').write_bytes(b'\0'.join(a.encode() for a in args) + b'\0')
    status = f'Name:\tqemu\nTgid:\t{pid}\nPid:\t{pid}\nCpus_allowed_list:\t{cpus}\n'
    (base / 'status').write_text(status)
    (base / 'task' / str(pid) / 'status').write_text(status)
    for tid in tids:
        (root / str(tid)).mkdir()
        (root / str(tid) / 'status').write_text(f'Name:\tCPU 0/KVM\nTgid:\t{pid}\n')


def test_affinity_of_a_real_thread_follows_sched_setaffinity():
    cpu = min(os.sched_getaffinity(0))
    box = {}

    def worker():
        os.sched_setaffinity(0, {cpu})
        tid = threading.get_native_id()
        box['seen'] = procfs.thread_affinity(os.getpid(), tid)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert box['seen'] == str(cpu)
    main = procfs.affinity_cpus(os.getpid())
    assert set(main) == os.sched_getaffinity(0)


def test_fake_tree_lookups(tmp_path):
    _fake_proc(tmp_path, 4242, ['/usr/bin/qemu-system-x86_64', '-name', 'guest=vm1',
                                '-uuid', UUID], '1', tids=(4250,))
    _fake_proc(tmp_path, 4300, ['/usr/bin/sleep', '100'], '0-1')
    root = str(tmp_path)
    assert procfs.thread_affinity(4242, proc_root=root) == '1'
    assert procfs.tgid_of(4250, proc_root=root) == 4242
    assert procfs.is_qemu_of(4242, UUID.upper(), proc_root=root)
    assert not procfs.is_qemu_of(4300, UUID, proc_root=root)
    assert procfs.find_qemu_pids(UUID, proc_root=root) == [4242]
    assert procfs.find_qemu_pids('not-a-uuid', proc_root=root) == []
    assert procfs.thread_affinity(99999, proc_root=root) is None


def test_cpu_count_covers_every_cpu_we_may_run_on():
    assert procfs.cpu_count_online() > max(os.sched_getaffinity(0))
    assert objects.format_cpu_list(sorted(os.sched_getaffinity(0)))
