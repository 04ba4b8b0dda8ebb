"""[nova] and [placement]: how the conductor reaches a cloud's Nova and
Placement when ``[conductor] driver = nova``.

Authentication is keystoneauth1's, registered with its loading helpers
(the way Nova itself configures its [neutron] or [placement] clients):
``auth_type`` and the plugin's options (auth_url, username, password,
project, domain...), the session options (cafile, insecure, timeout...)
and the adapter options (region_name, valid_interfaces, endpoint_override,
service_type). [placement] holds adapter options only and shares [nova]'s
session and credentials.

keystoneauth1 (with requests and urllib3) takes a tenth of a second to
import, and only the conductor's Nova driver reads those options: the
command line registers [nova] and [placement] without them
(``register_opts(conf, clients=False)``), everything else with them.
"""
import copy

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'nova', title='Nova options',
    help='How the conductor talks to Nova when [conductor] driver = nova: '
         'the keystoneauth1 session and adapter, and how often it asks.')

PLACEMENT_GROUP = cfg.OptGroup(
    'placement', title='Placement options',
    help='Where the conductor reads allocation ratios and usage when '
         '[conductor] driver = nova. Adapter options only: the session and '
         'credentials are [nova]\'s.')

OPTS = [
    cfg.IntOpt(
        'inventory_interval_seconds', default=20, min=1,
        help='How often the conductor reads the cloud\'s inventory from Nova '
             '(compute services, hypervisors, servers per host with their '
             'flavors) and Placement (inventories, allocation ratios, '
             'usages). Keep it well under [scheduler] host_down_seconds: a '
             'host whose facts are older than that is down for kvmplace.'),
    cfg.FloatOpt(
        'poll_interval_seconds', default=1.0, min=0.1,
        help='How often a running migration\'s Nova record '
             '(GET /servers/{id}/migrations/{id}) is read for progress.'),
    cfg.IntOpt(
        'max_concurrent_live_migrations', default=1, min=1,
        help='Live migrations leaving one compute host at the same time. '
             'Set it to the nova-compute hosts\' [DEFAULT] '
             'max_concurrent_live_migrations (Nova\'s default is 1): Nova '
             'queues the rest on the compute host, where kvmplace\'s link '
             'admission and timeouts cannot see them. Applies to drains and '
             'rebalances too.'),
    cfg.IntOpt(
        'unreachable_timeout_seconds', default=300, min=1,
        help='How long one request to Nova or Placement is retried while '
             'the API cannot be reached (connection refused, 5xx) before it '
             'fails with one line. A migration waits meanwhile instead of '
             'failing; its record stays where it was.'),
    cfg.IntOpt(
        'default_link_mbps', default=10000, min=1,
        help='Link speed (megabits/s) of a compute host whose kvmplace agent '
             'does not report one (no agent beside nova-compute).'),
    cfg.StrOpt(
        'disabled_reason_prefix', default='kvmplace:',
        help='Start of the reason kvmplace gives Nova when it disables a '
             'compute service for maintenance. A service disabled with '
             'another reason is disabled (not in kvmplace maintenance) and '
             'is never enabled by kvmplace.'),
]

COMPUTE_SERVICE_TYPE = 'compute'
PLACEMENT_SERVICE_TYPE = 'placement'


#: The groups, for kvmplace.conf to register its own copies of.
GROUPS = (GROUP, PLACEMENT_GROUP)


def _adapter_opts(service_type: str) -> list:
    from keystoneauth1 import loading as ks_loading
    opts = copy.deepcopy(ks_loading.get_adapter_conf_options(include_deprecated=False))
    for opt in opts:
        if opt.dest == 'service_type':
            opt.default = service_type
    return opts


def _auth_opts() -> list:
    """The auth options the sample shows: the common ones plus the
    password plugin's (the usual service-user setup)."""
    from keystoneauth1 import loading as ks_loading
    opts = ks_loading.get_auth_common_conf_options()
    names = {o.dest for o in opts}
    return opts + [o for o in ks_loading.get_auth_plugin_conf_options('password')
                   if o.dest not in names]


def register_opts(conf: cfg.ConfigOpts, clients: bool = True) -> None:
    """[nova] and [placement]; with ``clients``, keystoneauth1's session,
    auth and adapter options in them too (see the module doc)."""
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)
    conf.register_group(PLACEMENT_GROUP)
    if not clients:
        return
    from keystoneauth1 import loading as ks_loading
    ks_loading.register_session_conf_options(conf, GROUP.name)
    ks_loading.register_auth_conf_options(conf, GROUP.name)
    ks_loading.register_adapter_conf_options(conf, GROUP.name, include_deprecated=False)
    conf.set_default('service_type', COMPUTE_SERVICE_TYPE, group=GROUP.name)
    ks_loading.register_adapter_conf_options(conf, PLACEMENT_GROUP.name,
                                             include_deprecated=False)
    conf.set_default('service_type', PLACEMENT_SERVICE_TYPE, group=PLACEMENT_GROUP.name)


def list_opts():
    from keystoneauth1 import loading as ks_loading
    return {GROUP: OPTS + ks_loading.get_session_conf_options() + _auth_opts()
            + _adapter_opts(COMPUTE_SERVICE_TYPE),
            PLACEMENT_GROUP: _adapter_opts(PLACEMENT_SERVICE_TYPE)}
