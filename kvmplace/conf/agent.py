"""[agent]: the compute agent on each host.

The agent talks to one libvirt daemon (``libvirt_uri``) and reads /proc and
/sys of the machine it runs on. In the lab the agent of every emulated host
runs in the root namespace and reaches its host's libvirtd over TCP; PIDs
are global there, so /proc still shows that host's QEMU processes.
"""
import socket

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'agent',
    title='Compute agent options',
    help='How the compute agent reads its host, measures NUMA memory '
         'bandwidth and guest dirty rates, and drives live migrations.')

TIMEOUT_ACTIONS = ('abort', 'post-copy')
NON_SHARED_DISK_MODES = ('full', 'incremental')

OPTS = [
    cfg.StrOpt(
        'host', default=socket.gethostname(), sample_default='<hostname>',
        help='Name of this compute host: the RPC server name on topic '
             'kvmplace-agent and the "name" of the host state it reports. '
             'Must be unique in the cloud.'),
    cfg.StrOpt(
        'libvirt_uri', default='qemu:///system',
        help='libvirt connection URI of the hypervisor this agent manages. '
             'A remote URI (qemu+tcp://ADDR:PORT/system) is fine when the '
             'QEMU processes are visible in this machine\'s /proc (the '
             'lab).'),
    cfg.StrOpt(
        'peer_libvirt_uri', default='',
        help='libvirt URI other hosts\' libvirtd use to reach this host '
             'for a peer-to-peer migration (returned by check_destination). '
             'Empty: libvirt_uri when it names a remote host, else '
             'qemu+tcp://<migration_address>/system.'),
    cfg.StrOpt(
        'migration_address', default='',
        help='Address the incoming migration stream connects to '
             '(returned by check_destination as tcp://ADDRESS). Empty: the '
             'host part of libvirt_uri, else the address of '
             'link_interface. Needed because QEMU otherwise advertises the '
             'hostname, which other hosts may not resolve.'),
    cfg.BoolOpt(
        'enabled', default=True,
        help='Whether the scheduler may place guests here (reported as the '
             'host\'s "enabled").'),
    cfg.IntOpt(
        'report_interval_seconds', default=10, min=1,
        help='How often the host state is cast to the conductor '
             '(report_state). The conductor marks a host down when it has '
             'not reported for a few intervals.'),
    cfg.StrOpt(
        'numa_topology_file', default='',
        help='JSON file that replaces the NUMA topology libvirt reports: a '
             'list of nodes {"id", "cpus", "memory_mib", '
             '"free_memory_mib", "bandwidth_mibps", "baseline_mibps"}, any '
             'field optional but id and cpus. Re-read at every report, so a '
             'test or an operator (e.g. from pcm-memory) can inject '
             'bandwidth figures; injected figures win over the probe.'),
    cfg.StrOpt(
        'link_interface', default='',
        help='Network interface that carries migrations; its speed is read '
             'from /sys/class/net/IF/speed (megabits per second).'),
    cfg.IntOpt(
        'link_mbps', default=0, min=0,
        help='Speed of the migration link in megabits per second. 0: read '
             'it from link_interface. Set it where the kernel does not know '
             '(veth pairs, tc-shaped links, bonds).'),
    cfg.IntOpt(
        'fallback_link_mbps', default=1000, min=1,
        help='Link speed reported when neither link_mbps nor the '
             'interface\'s speed is known.'),
    cfg.StrOpt(
        'qemu_pid_dir', default='/run/libvirt/qemu',
        help='Where libvirt writes <domain>.pid for QEMU. Only used when '
             'libvirt_uri is local; the PID is checked against the guest\'s '
             'UUID before it is trusted. Otherwise the PID comes from the '
             'QEMU monitor (vCPU thread ids) or a /proc scan.'),
    cfg.BoolOpt(
        'probe_enabled', default=True,
        help='Measure each NUMA node\'s memory write bandwidth at start and '
             'periodically: a node whose memory has slowed down slows every '
             'migration whose QEMU main thread runs there.'),
    cfg.FloatOpt(
        'probe_seconds_per_node', default=0.25, min=0.01, max=10.0,
        help='How long one node is measured, in seconds.'),
    cfg.IntOpt(
        'probe_buffer_mib', default=64, min=1, max=4096,
        help='Memory written by each probe thread per pass, in MiB. Larger '
             'than the last-level cache so that DRAM, not cache, is '
             'measured.'),
    cfg.IntOpt(
        'probe_threads_per_node', default=1, min=1, max=256,
        help='Writer threads per node, each pinned to the node\'s CPUs. '
             'One thread rarely saturates a node but keeps the probe '
             'gentle on the guests.'),
    cfg.IntOpt(
        'probe_interval_seconds', default=900, min=10,
        help='How often the probe runs after the first time, in seconds. '
             'Stretched when needed so that probe_max_duty_cycle holds.'),
    cfg.FloatOpt(
        'probe_max_duty_cycle', default=0.01, min=0.0001, max=0.5,
        help='Largest fraction of wall time the probe may run (0.01: at '
             'most 1 %), so that measuring does not itself slow the guests.'),
    cfg.FloatOpt(
        'probe_baseline_mibps', default=0.0, min=0.0,
        help='Healthy write bandwidth of one node in MiB/s. 0: the best '
             'node\'s latest measurement, so health is relative to the best '
             'node.'),
    cfg.BoolOpt(
        'dirty_rate_enabled', default=True,
        help='Sample each running guest\'s dirty rate with libvirt\'s '
             'page-sampling calculation (virDomainStartDirtyRateCalc). '
             'Without it (or where unsupported) the rate comes from the '
             'guest\'s last migration job.'),
    cfg.IntOpt(
        'dirty_rate_interval_seconds', default=60, min=5,
        help='How often each guest\'s dirty rate is sampled, in seconds.'),
    cfg.IntOpt(
        'dirty_rate_calc_seconds', default=1, min=1, max=60,
        help='Length of one dirty-rate sample, in seconds.'),
    cfg.FloatOpt(
        'progress_interval_seconds', default=1.0, min=0.1, max=1.0,
        help='How often a running migration\'s job statistics are read and '
             'cast to the conductor as migration_progress (at most 1 s, as '
             'fresh as an operator\'s "watch -n 1 virsh domjobinfo").'),
    cfg.FloatOpt(
        'post_verify_settle_seconds', default=1.0, min=0.0, max=30.0,
        help='After the checks pass, post_verify watches the guest this '
             'long before it answers: a guest whose memory arrived damaged '
             'typically panics within milliseconds of resuming, and that '
             'must make the migration fail, not pass. Needs a panic device '
             'in the guest (pvpanic) so that libvirt sees the panic. 0: '
             'answer at once.'),
    cfg.IntOpt(
        'completion_timeout_seconds_per_gib', default=800, min=1,
        help='A migration may take this many seconds per GiB of guest '
             'memory plus copied disk before timeout_action is applied.'),
    cfg.IntOpt(
        'progress_timeout_seconds', default=150, min=1,
        help='If the remaining data has not reached a new low for this '
             'many seconds the migration is stuck and timeout_action is '
             'applied.'),
    cfg.IntOpt(
        'downtime_step_stalled_iterations', default=3, min=1,
        help='Step QEMU\'s downtime limit up one rung of the ladder (see '
             '[estimator] downtime_tolerance_pct) after this many polls that '
             'each saw a new pre-copy iteration but no new low of the data '
             'remaining at an iteration\'s start: the job is not converging '
             'at the limit the model chose. Polls inside one long iteration '
             'do not count (its remaining data falls until QEMU re-reads the '
             'dirty pages). Like Nova\'s live_migration_downtime_steps, but '
             'never above [estimator] max_downtime_ms - '
             'switchover_overhead_ms. Also the least number of polls between '
             'two steps.'),
    cfg.FloatOpt(
        'downtime_step_late_factor', default=1.5, min=1.0,
        help='Also step the limit up when a migration has run this many '
             'times its predicted time (the model at the chosen limit, with '
             'the live bandwidth), at most once every '
             'downtime_step_stalled_iterations polls.'),
    cfg.StrOpt(
        'timeout_action', default='abort', choices=TIMEOUT_ACTIONS,
        help='What a completion or progress timeout does: "abort" cancels '
             'the job and leaves the guest on the source; "post-copy" '
             'switches to post-copy when the policy allows it (else '
             'aborts).'),
    cfg.StrOpt(
        'non_shared_disk_mode', default='full', choices=NON_SHARED_DISK_MODES,
        help='How local disks are copied when storage is not shared: '
             '"full" (VIR_MIGRATE_NON_SHARED_DISK) or "incremental" '
             '(VIR_MIGRATE_NON_SHARED_INC, needs the same backing file on '
             'the destination).'),
    cfg.DictOpt(
        'peers', default={}, sample_default='cn-b:10.0.0.2,cn-c:10.0.0.3',
        help='The hosts this agent may migrate guests to, as '
             'NAME:ADDRESS pairs (NAME the peer\'s [agent] host, ADDRESS '
             'the address or DNS name its libvirt URI and migration '
             'address use). A migrate request is refused unless its '
             'dest_host is listed and the host part of its dest_uri and '
             'migrate_uri is that peer\'s name or address: anyone who can '
             'publish on the message bus could otherwise send a guest to a '
             'machine of their choosing. Empty: no migration is started. '
             'The agent trusts its own configuration only, not a list sent '
             'over the bus. Related: [agent] migration_tls.'),
    cfg.BoolOpt(
        'migration_tls', default=True,
        help='Encrypt QEMU\'s migration stream itself (VIR_MIGRATE_TLS), '
             'not only libvirt\'s control connection: a qemu+tls '
             'peer_libvirt_uri protects the commands between the two '
             'libvirtds, but guest memory and copied disks still cross the '
             'network in clear unless this is set. Both hosts need QEMU '
             'certificates (qemu.conf migrate_tls_x509_cert_dir); without '
             'them the migration fails at its start and the guest stays on '
             'the source. Set on the source host: it chooses the flags. '
             'Related: peer_libvirt_uri, migration_address. On by '
             'default for deployments; a closed test network (the lab) may '
             'turn it off.'),
    cfg.BoolOpt(
        'precreate_disk_pools', default=True,
        help='In check_destination, make sure a libvirt "dir" storage pool '
             'covers the directory of every local disk of the incoming '
             'guest, so that libvirt pre-creates the disk image for a '
             'non-shared-storage migration.'),
    cfg.ListOpt(
        'image_directories', default=['/var/lib/libvirt/images'],
        help='Directories under which check_destination may prepare a '
             'libvirt "dir" storage pool for the local disks of an '
             'incoming guest (precreate_disk_pools). A disk elsewhere is '
             'refused: the path arrives over the message bus, and a pool '
             'makes libvirt create files in its directory. Absolute, '
             'normalized paths; a disk counts when its directory is one of '
             'these or below one.'),
    cfg.IntOpt(
        'max_storage_pools', default=16, min=0,
        help='Most storage pools check_destination defines on this host '
             '(pools that already exist for a directory are reused and '
             'not counted again). 0: never define one.'),
    cfg.ListOpt(
        'shared_storage_paths', default=[],
        help='Path prefixes whose files every host sees (NFS and the '
             'like). Disks under them, on a network file system, or of '
             'type "network" count as shared storage.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
