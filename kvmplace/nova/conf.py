"""nova.conf's ``[kvmplace]`` group: how nova-scheduler talks to kvmplace.

These options live in Nova's configuration (nova-scheduler reads them), not
in kvmplace.conf. This module imports oslo.config only, so that the option
list can be generated (``oslo-config-generator --namespace kvmplace.nova``)
and tested without Nova installed.
"""
from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'kvmplace',
    title='kvmplace in nova-scheduler',
    help='How the kvmplace filter and weigher inside nova-scheduler reach the '
         'kvmplace conductor, which requests they apply to, and what they do '
         'when the conductor does not answer.')

FAIL_OPEN = 'fail-open'
FAIL_CLOSED = 'fail-closed'
OPERATIONS = ('live-migrate', 'migrate', 'evacuate', 'boot')
FILTERS = ('numa_health', 'link_speed', 'convergence')
WEIGHERS = ('migration_time', 'path_bandwidth', 'numa_health')

OPTS = [
    cfg.StrOpt(
        'transport_url', secret=True,
        help='oslo.messaging URL of the bus kvmplace-conductor listens on '
             '(topic "kvmplace-nova"). It may be Nova\'s own broker with another '
             'virtual host. Unset: Nova\'s [DEFAULT] transport_url.'),
    cfg.StrOpt(
        'control_exchange', default='openstack',
        help='The exchange kvmplace-conductor listens on: its [DEFAULT] '
             'control_exchange (oslo.messaging\'s default, "openstack"). Nova '
             'uses its own ("nova"), so it is named here.'),
    cfg.StrOpt(
        'message_auth_private_key_file',
        help='Ed25519 private key (PEM; `kvmplace keys create --role operator`) '
             'that signs nova-scheduler\'s calls to the kvmplace conductor, as '
             'operator "<file name without extension>": the conductor accepts them '
             'when <name>.pub is in its [message_auth] operator_keys_dir. Unset: '
             'calls go unsigned, and a conductor with [message_auth] required = '
             'true refuses them (the failure policy then applies).'),
    cfg.FloatOpt(
        'timeout_seconds', default=2.0, min=0.05,
        help='How long one scheduling request waits for the conductor\'s answer. '
             'The answer takes milliseconds; past this the failure policy applies.'),
    cfg.StrOpt(
        'failure_policy', default=FAIL_OPEN, choices=(FAIL_OPEN, FAIL_CLOSED),
        help='What the filter and weigher do when the conductor does not answer '
             '(timeout, broker down, error): "fail-open" lets Nova decide as if '
             'kvmplace were absent and logs one warning line per request; '
             '"fail-closed" passes no host, so the request ends in NoValidHost with '
             'the reason in nova-scheduler\'s log.'),
    cfg.ListOpt(
        'operations', default=['live-migrate'], item_type=cfg.types.String(choices=OPERATIONS),
        help='Which scheduling requests kvmplace judges: live-migrate (default), '
             'migrate (cold migration and resize), evacuate, boot. For any other '
             'request the filter passes every host and the weigher gives every host '
             'the same weight, without asking the conductor.'),
    cfg.ListOpt(
        'filters', default=list(FILTERS), item_type=cfg.types.String(choices=FILTERS),
        help='kvmplace filters run for Nova (capacity - RAM, vCPUs, disk - stays with '
             'Nova and Placement): numa_health, link_speed, convergence.'),
    cfg.ListOpt(
        'weighers', default=list(WEIGHERS), item_type=cfg.types.String(choices=WEIGHERS),
        help='kvmplace weighers whose multiplier-weighted sum is the KvmplaceWeigher\'s '
             'raw value: migration_time, path_bandwidth, numa_health. Their '
             'multipliers are the conductor\'s [scheduler] options.'),
    cfg.FloatOpt(
        'weight_multiplier', default=1.0,
        help='Multiplier of KvmplaceWeigher in Nova\'s weighing. Nova normalizes '
             'each weigher\'s values to 0..1 and adds multiplier x value, so a '
             'multiplier larger than the sum of the other enabled weighers\' '
             'multipliers lets kvmplace\'s ranking decide among the hosts that '
             'pass all filters. 0 disables the weigher\'s effect.'),
    cfg.FloatOpt(
        'default_dirty_rate_mibps', default=10.0, min=0.0,
        help='Dirty rate (MiB/s) assumed for a guest no kvmplace agent reports; '
             'it decides whether a migration over a path converges.'),
    cfg.IntOpt(
        'max_fact_age_seconds', default=3600, min=1,
        help='A host fact (agent report or imported) older than this is unknown, '
             'not healthy: the host passes the kvmplace filter (Nova decides) but '
             'ranks below every host with fresh facts.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    if GROUP.name not in conf:
        conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help))
    for opt in OPTS:
        try:
            conf.register_opt(opt, group=GROUP.name)
        except cfg.DuplicateOptError:
            pass


def list_opts():
    """Entry point for oslo-config-generator (namespace ``kvmplace.nova``)."""
    return [(GROUP, OPTS)]
