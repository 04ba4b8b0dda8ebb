"""[conductor] and [database]: the migration workflow and its records."""
from oslo_config import cfg

GROUP = cfg.OptGroup(
    'conductor', title='Conductor options',
    help='How the conductor drives migrations across the agents.')

DB_GROUP = cfg.OptGroup(
    'database', title='Database options',
    help='Where the conductor keeps host states and migration records.')

DRIVERS = ('libvirt', 'nova')

OPTS = [
    cfg.StrOpt(
        'driver', default='libvirt', choices=DRIVERS,
        help='How migrations are carried out. "libvirt": the kvmplace agents '
             'migrate guests with libvirt themselves (a standalone KVM '
             'cluster). "nova": in an OpenStack cloud, every migration is a '
             'Nova live migration asked through Nova\'s API (see [nova]); '
             'the inventory comes from Nova and Placement, and the kvmplace '
             'agents beside nova-compute only pre-pin and verify.'),
    cfg.StrOpt(
        'host', sample_default='<hostname>',
        help='Name of this conductor (RPC server name).'),
    cfg.IntOpt(
        'max_attempts', default=3, min=1,
        help='Destinations tried per migration: when a destination refuses '
             'the precheck, the next-ranked host is tried, up to this many '
             'hosts in all.'),
    cfg.IntOpt(
        'max_concurrent_per_source', default=2, min=1,
        help='Migrations leaving one host at the same time. Each outgoing '
             'stream costs the source a CPU in its QEMU migration thread.'),
    cfg.IntOpt(
        'max_concurrent_per_dest', default=2, min=1,
        help='Migrations entering one host at the same time.'),
    cfg.IntOpt(
        'max_concurrent_total', default=8, min=1,
        help='Migrations running in the whole cluster at the same time.'),
    cfg.FloatOpt(
        'link_reserve_fraction', default=0.0, min=0.0, max=0.9,
        help='Fraction of every link kept free of migration traffic. The '
             'conductor never starts a migration that would push a link '
             'beyond (1 - this) of its capacity.'),
    cfg.IntOpt(
        'rpc_call_timeout_seconds', default=60, min=1,
        help='Timeout of one RPC call to an agent (precheck, pin, verify).'),
    cfg.IntOpt(
        'migration_timeout_seconds', default=3600, min=10,
        help='A migration the conductor has heard nothing about for this '
             'long is checked with the source agent and failed if no job runs.'),
    cfg.IntOpt(
        'answer_timeout_seconds', default=300, min=1,
        help='How long the conductor keeps asking agents that do not answer '
             '(agent or libvirtd down, broker away) when it needs their answer '
             'to record a true outcome: a destination asked to verify a guest '
             'whose copy has completed (the guest cannot go back to its source '
             'by then, so the record stays "verifying" meanwhile and is failed '
             'only when this runs out), and the source and destination asked '
             'where a guest runs during a rollback.'),
    cfg.IntOpt(
        'monitor_interval_seconds', default=2, min=1,
        help='How often the conductor checks running migrations whose agent '
             'has gone quiet (progress normally arrives as casts).'),
    cfg.IntOpt(
        'takeover_seconds', default=20, min=2, max=3600,
        help='Lease time of the migrations, drains and rebalances this '
             'conductor drives (kvmplace.conductor.leases). The conductor '
             'renews its leases every quarter of this; when it dies, another '
             'conductor on the same database adopts its records within this '
             'time (plus a quarter of it, its own look interval) and resumes '
             'them. Conductors\' clocks must agree to well within it (NTP), '
             'and each needs its own [conductor] host.'),
    cfg.IntOpt(
        'workers', default=8, min=1,
        help='Threads that run migration workflows.'),
    cfg.StrOpt(
        'topology_file',
        help='JSON or YAML file with {"links": [{"a", "b", "mbps"}, ...]} '
             'describing switches and links (the inventory\'s "links"). '
             'Without it every host hangs off one switch by its own link '
             'speed as its agent reports it.'),
    cfg.BoolOpt(
        'notifications', default=True,
        help='Emit oslo.messaging notifications (kvmplace.migration.start, '
             '.progress, .end, .error).'),
    cfg.BoolOpt(
        'reports_on_operator_topic', default=True,
        help='Also accept the agents\' casts (report_state, '
             'migration_progress, migration_finished) on the operator topic '
             'kvmplace-conductor, as agents older than the topic '
             'kvmplace-conductor-reports send them. Harmless to a host '
             'account that may not publish on kvmplace-conductor (it cannot '
             'reach either endpoint there); turn it off once every agent '
             'sends on kvmplace-conductor-reports, so that only agents\' '
             'accounts can report host states at all.'),
]

DB_OPTS = [
    cfg.StrOpt(
        'connection', default='sqlite:////var/lib/kvmplace/kvmplace.sqlite', secret=True,
        help='SQLAlchemy URL of the database. SQLite for one conductor; '
             'PostgreSQL (postgresql+psycopg2://user:password@host/dbname, '
             'driver: pip install kvmplace[postgresql]) for production and for '
             'several conductors sharing one database. Both are tested; other '
             'SQLAlchemy back ends (MySQL) are not. The conductor creates and '
             'upgrades the schema itself at start. Never logged: it may hold a '
             'password.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)
    conf.register_group(DB_GROUP)
    conf.register_opts(DB_OPTS, group=DB_GROUP)


def list_opts():
    return {GROUP: OPTS, DB_GROUP: DB_OPTS}
