"""[estimator]: constants of the pre-copy migration model.

The defaults reproduce the rates commonly seen for one KVM live migration
(1 GbE about 75 MB/s, 10 GbE about 300 MB/s, 10 GbE with the QEMU main
thread on a NUMA node whose memory has slowed about 100 MB/s). Each one is
an option because real labs differ: on the project lab the link efficiency
is near 1.0, not 0.6.
"""
from oslo_config import cfg

GROUP = cfg.OptGroup(
    'estimator',
    title='Migration model',
    help='Constants of the pre-copy model that predicts migration time, '
         'downtime and convergence.')

OPTS = [
    cfg.FloatOpt(
        'link_efficiency', default=0.6, min=0.01, max=1.0,
        help='Fraction of a link\'s nominal rate that one migration gets '
             'through TCP and QEMU framing. 0.6 turns 1 GbE into about '
             '72 MiB/s, close to the 75 MB/s a 1 GbE migration typically '
             'reaches.'),
    cfg.FloatOpt(
        'stream_cap_mibps', default=300.0, min=1.0,
        help='The most one migration connection carries, in MiB/s (it is '
             'CPU-bound in the QEMU migration thread): one connection '
             'typically reaches about 300 MB/s on 10 GbE, which is why QEMU '
             'offers multifd.'),
    cfg.IntOpt(
        'multifd_connections', default=1, min=1, max=64,
        help='Parallel migration connections (multifd). The stream cap is '
             'multiplied by this.'),
    cfg.IntOpt(
        'max_downtime_ms', default=500, min=1,
        help='Largest acceptable pause of the guest at switch-over, in ms. '
             'Pre-copy stops iterating once what is left can be sent within '
             'this time.'),
    cfg.IntOpt(
        'max_rounds', default=30, min=1,
        help='Pre-copy rounds after which a migration that has not '
             'converged is considered stuck.'),
    cfg.FloatOpt(
        'bandwidth_cap_mibps', default=0.0, min=0.0,
        help='Policy cap on one migration\'s bandwidth in MiB/s; 0 means '
             'no cap.'),
    cfg.BoolOpt(
        'allow_auto_converge', default=False,
        help='Allow QEMU auto-converge (throttle the guest\'s vCPUs) so '
             'that migrations whose dirty rate exceeds the bandwidth still '
             'converge.'),
    cfg.BoolOpt(
        'allow_post_copy', default=False,
        help='Allow switching to post-copy when pre-copy does not '
             'converge: short downtime, but a network failure during '
             'post-copy loses the guest.'),
    cfg.IntOpt(
        'auto_converge_initial_pct', default=20, min=1, max=99,
        help='First vCPU throttle of auto-converge in percent (QEMU '
             'cpu-throttle-initial).'),
    cfg.IntOpt(
        'auto_converge_increment_pct', default=10, min=1, max=99,
        help='Throttle increase per round of auto-converge in percent '
             '(QEMU cpu-throttle-increment).'),
    cfg.IntOpt(
        'switchover_overhead_ms', default=0, min=0,
        help='Fixed cost added to every downtime and total time (device '
             'state, resume on the destination), in ms. Calibrate from '
             'measured migrations.'),
    cfg.BoolOpt(
        'choose_downtime_limit', default=True,
        help='Choose QEMU\'s downtime limit per migration (see '
             'downtime_tolerance_pct). Off: QEMU always gets max_downtime_ms '
             '- switchover_overhead_ms, and the agent never steps it, as '
             'before this option existed; the model then predicts at that '
             'limit (replaying migrations recorded that way needs it off).'),
    cfg.FloatOpt(
        'downtime_tolerance_pct', default=3.0, min=0.0, max=100.0,
        help='How much longer, in percent of the predicted time at the '
             'largest downtime limit (max_downtime_ms - '
             'switchover_overhead_ms), a migration may be predicted to take '
             'so that QEMU gets a smaller limit. The limit is the smallest of '
             '50, 100, ... 300, 600, 1200 ... ms (and the largest) whose '
             'predicted time is within this tolerance (or '
             'downtime_tolerance_seconds, whichever is larger). Why: the '
             'switch-over cost is not fixed on a busy host (on the lab the '
             'pauses ran 245-711 ms under a 500 ms budget), while a guest '
             'that dirties little converges as fast at 50 ms; the smaller '
             'the part of the pause QEMU controls, the smaller the pause. '
             '0 with downtime_tolerance_seconds 0 keeps a smaller limit only '
             'when it costs no predicted time at all. The agent steps the '
             'limit up when a migration does not converge (see [agent] '
             'downtime_step_stalled_iterations).'),
    cfg.FloatOpt(
        'downtime_tolerance_seconds', default=0.2, min=0.0,
        help='The least time, in seconds, a migration may be predicted to '
             'lose to a smaller downtime limit; see downtime_tolerance_pct. '
             'Keeps short migrations (a few seconds, where 3 percent is '
             'less than one poll of the agent) from always getting the '
             'largest limit.'),
    cfg.FloatOpt(
        'setup_seconds', default=0.0, min=0.0,
        help='Fixed cost at the start of every migration (connection, '
             'destination QEMU start), in seconds. Calibrate from measured '
             'migrations.'),
    cfg.FloatOpt(
        'migration_overhead_seconds', default=0.0, min=0.0,
        help='Seconds a migration\'s record lasts beyond its libvirt job '
             '(destination check, pre-pinning, post-verify and its settle '
             'window), used by drain plans for the time each migration holds '
             'its links. The prior of what finished drains teach when '
             'learn_concurrency is on. See kvmplace.planner.concurrency.'),
    cfg.FloatOpt(
        'stream_contention', default=0.0, min=0.0, max=3.0,
        help='Slowdown of a migration stream per other migration on its '
             'source or destination host: its rate is divided by '
             '1 + stream_contention x (others). 0: parallel streams do not '
             'slow each other; 1: the hosts\' CPUs carry a fixed total. The '
             'prior of what finished drains teach when learn_concurrency is '
             'on.'),
    cfg.FloatOpt(
        'drain_start_lag_seconds', default=0.0, min=0.0,
        help='Seconds between a drain\'s decision to start a migration (at '
             'its start, or when another ends) and the migration\'s record, '
             'and between the last migration\'s end and the drain\'s. The '
             'prior of what finished drains teach when learn_concurrency is '
             'on.'),
    cfg.FloatOpt(
        'drain_pace', default=1.0, min=0.05, max=10.0,
        help='Pace of a migration during a drain against its estimate, with '
             'no other migration on its hosts (the estimated job time over '
             'the measured one): below 1 when the hosts are busier during '
             'drains than when the estimator was calibrated. The prior of '
             'what finished drains teach when learn_concurrency is on.'),
    cfg.BoolOpt(
        'drain_shared_source', default=False,
        help='Plan the migrations a drain runs side by side out of one source '
             'as one pool that ends together: after its longest member\'s '
             'solo time (at drain_pace) plus stream_contention x the other '
             'members\' (seen where the hosts\' CPUs bound the streams: their '
             'pre-copies converge together). Off: each stream ends by its own '
             'data, its rate divided by 1 + stream_contention x (others). '
             'A pool member holds on its links what it sends at the pool\'s '
             'pace (its data over the pool\'s time), not its full rate, so '
             'several may share a link. Learning reads stream_contention in '
             'the model chosen here. See kvmplace.planner.concurrency.'),
    cfg.BoolOpt(
        'learn_concurrency', default=True,
        help='Learn migration_overhead_seconds, stream_contention and '
             'drain_start_lag_seconds and drain_pace from the conductor\'s finished '
             'drains '
             '(weighed against the configured values by '
             'learning_prior_migrations; with drain_shared_source a pool '
             'of migrations that ended together counts once for '
             'stream_contention, its one end being what it measured) and '
             'plan drains with them.'),
    cfg.BoolOpt(
        'learn_path_throughput', default=True,
        help='Learn each (source, destination) path\'s throughput from the '
             'migrations the conductor finishes, and predict that path from '
             'it instead of from link rate x link_efficiency. Migrations held '
             'to a bandwidth cap, post-copy ones and very small ones teach '
             'nothing.'),
    cfg.FloatOpt(
        'learning_weight', default=0.5, min=0.01, max=1.0,
        help='Weight of the newest measurement in a path\'s learned '
             'throughput (exponentially weighted mean); 1.0 keeps only the '
             'last migration.'),
    cfg.FloatOpt(
        'learning_prior_migrations', default=3.0, min=0.0,
        help='How many migrations\' worth of weight the nominal figure (link '
             'rate x link_efficiency, at most the stream cap) keeps against a '
             'path\'s learned one: after n migrations the path is predicted '
             'at (n x learned + k x nominal) / (n + k). One migration is a '
             'noisy witness (on the lab the same move took 2.4 s and 4.9 s); '
             '0 trusts the first measurement at once. See '
             'kvmplace.conductor.learning.'),
    cfg.IntOpt(
        'learned_max_age_seconds', default=7 * 86400, min=0,
        help='A path\'s learned throughput is used for this long after the '
             'last migration that taught it; after that the path is predicted '
             'from link rate x link_efficiency again until a new migration '
             'crosses it. Links get upgraded, re-cabled and re-routed; a '
             'figure nobody has confirmed for a week should not outrank the '
             'inventory. 0 keeps learned figures for ever. Operators can also '
             'forget a path at once: kvmplace paths forget.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
