"""[scheduler]: which filters and weighers run, and their thresholds."""
from oslo_config import cfg

GROUP = cfg.OptGroup(
    'scheduler',
    title='Scheduler options',
    help='Which filters and weighers choose a migration target, and the '
         'thresholds they apply.')

DEFAULT_FILTERS = ['enabled', 'maintenance', 'not_source', 'ram', 'vcpu',
                   'cpu_model', 'link_speed', 'numa_health', 'convergence']
DEFAULT_WEIGHERS = ['migration_time', 'path_bandwidth', 'numa_health',
                    'free_ram']

OPTS = [
    cfg.ListOpt(
        'enabled_filters', default=DEFAULT_FILTERS,
        help='Filters to run, in order, by entry-point name in the '
             '"kvmplace.scheduler.filters" namespace. A name that is not '
             'installed stops start-up. Cheap filters first: a host leaves '
             'the candidate list at the first filter that rejects it.'),
    cfg.ListOpt(
        'enabled_weighers', default=DEFAULT_WEIGHERS,
        help='Weighers to run, by entry-point name in the '
             '"kvmplace.scheduler.weighers" namespace. Each weigher\'s raw '
             'values are min-max normalized to 0..1 across the candidates, '
             'then multiplied by its multiplier option.'),
    cfg.FloatOpt(
        'ram_allocation_ratio', default=1.0, min=0.1,
        help='Virtual RAM a host may hand out per MiB of physical RAM. '
             '1.0 means no overcommit (advisable for migration targets).'),
    cfg.FloatOpt(
        'cpu_allocation_ratio', default=4.0, min=0.1,
        help='Virtual CPUs a host may hand out per physical CPU.'),
    cfg.IntOpt(
        'reserved_host_memory_mib', default=0, min=0,
        help='Memory held back on every host for the hypervisor, in MiB.'),
    cfg.IntOpt(
        'min_link_mbps', default=1000, min=0,
        help='The link_speed filter rejects hosts whose migration link is '
             'slower than this, in megabits per second (as '
             '/sys/class/net/IF/speed reports). 0 disables the check.'),
    cfg.FloatOpt(
        'numa_health_threshold', default=0.6, min=0.0, max=1.0,
        help='The numa_health filter wants at least one NUMA node whose '
             'measured write bandwidth is this fraction of its baseline or '
             'more (health = measured / baseline). A slowed node typically '
             'runs at about one third of its baseline, and a 10 GbE '
             'migration through it at about 100 MB/s instead of 300.'),
    cfg.IntOpt(
        'host_down_seconds', default=60, min=1,
        help='A host that has not reported its state for this long is '
             'down and rejected by the "enabled" filter.'),
    cfg.ListOpt(
        'cpu_model_order',
        default=['Westmere', 'SandyBridge', 'IvyBridge', 'Haswell',
                 'Broadwell', 'Skylake-Server', 'Cascadelake-Server',
                 'Cooperlake', 'Icelake-Server', 'SapphireRapids'],
        help='CPU models from oldest to newest. A guest can move to a host '
             'whose model is the same or newer in this list; a model not in '
             'the list only matches itself.'),
    cfg.FloatOpt(
        'migration_time_weight_multiplier', default=-1.0,
        help='Multiplier of the migration_time weigher (raw: predicted '
             'seconds). Negative prefers faster migrations.'),
    cfg.FloatOpt(
        'path_bandwidth_weight_multiplier', default=0.5,
        help='Multiplier of the path_bandwidth weigher (raw: widest-path '
             'Mbit/s from the source).'),
    cfg.FloatOpt(
        'numa_health_weight_multiplier', default=1.0,
        help='Multiplier of the numa_health weigher (raw: health of the '
             'destination\'s best NUMA node with room, 0..1).'),
    cfg.FloatOpt(
        'free_ram_weight_multiplier', default=1.0,
        help='Multiplier of the free_ram weigher (raw: free MiB after '
             'placing the guest). Negative packs instead of spreading.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
