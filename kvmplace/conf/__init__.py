"""oslo.config options, one module per option group.

``register_opts(conf)`` registers every group on ``conf``. The global
``cfg.CONF`` is only touched at the ``cmd/`` edge; library code takes a
``ConfigOpts`` as an argument so tests can build their own.
"""
from oslo_config import cfg

from kvmplace.conf import conductor
from kvmplace.conf import estimator
from kvmplace.conf import scheduler

_MODULES = (scheduler, estimator, conductor)


def register_opts(conf: cfg.ConfigOpts) -> None:
    for module in _MODULES:
        module.register_opts(conf)


def new_conf(args: list[str] | None = None,
             config_files: list[str] | None = None) -> cfg.ConfigOpts:
    """A private, fully registered ConfigOpts (tests, offline CLI)."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args or [], project='kvmplace', default_config_files=config_files or [],
         default_config_dirs=[])
    return conf
