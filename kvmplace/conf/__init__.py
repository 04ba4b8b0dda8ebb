"""oslo.config options, one module per option group.

``register_opts(conf)`` registers every group on ``conf``. The global
``cfg.CONF`` is only touched at the ``cmd/`` edge; library code takes a
``ConfigOpts`` as an argument so tests can build their own.
"""
from oslo_config import cfg

from kvmplace.conf import agent
from kvmplace.conf import conductor
from kvmplace.conf import estimator
from kvmplace.conf import message_auth
from kvmplace.conf import nova
from kvmplace.conf import scheduler

_MODULES = (scheduler, estimator, conductor, agent, nova, message_auth)


def register_opts(conf: cfg.ConfigOpts, nova_clients: bool = True) -> None:
    """Every group's options. ``nova_clients=False`` leaves keystoneauth1's
    options out of [nova] and [placement]: the command line never talks to
    Nova, and keystoneauth1 is slow to import (kvmplace.conf.nova)."""
    for module in _MODULES:
        groups = nova.GROUPS if module is nova else module.list_opts()
        for group in groups:
            _register_own_group(conf, group)
        if module is nova:
            nova.register_opts(conf, clients=nova_clients)
        else:
            module.register_opts(conf)


def _register_own_group(conf: cfg.ConfigOpts, group: cfg.OptGroup) -> None:
    """Register a copy of ``group`` that belongs to ``conf`` alone.

    oslo.config keeps each option's override and default in the OptGroup
    object, and ``register_group`` copies the group only shallowly: a
    module-level group registered on two ConfigOpts would share them, so a
    ``set_override`` on one conf (a test's, the CLI's) would change every
    other. The module's own ``register_group`` is then a no-op and its
    ``register_opts`` finds this copy by name.
    """
    if group.name in conf:
        return
    conf.register_group(cfg.OptGroup(group.name, title=group.title, help=group.help,
                                     dynamic_group_owner=group.dynamic_group_owner,
                                     driver_option=group.driver_option))


def new_conf(args: list[str] | None = None,
             config_files: list[str] | None = None) -> cfg.ConfigOpts:
    """A private, fully registered ConfigOpts (tests, offline CLI)."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args or [], project='kvmplace', default_config_files=config_files or [],
         default_config_dirs=[])
    return conf
