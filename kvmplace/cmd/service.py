"""What every kvmplace service does at start: config, logging, signals."""
from __future__ import annotations

import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

import kvmplace.conf
from kvmplace import rpc



def prepare(argv: list[str], name: str) -> cfg.ConfigOpts:
    """Register options and logging on the global CONF and parse argv.

    The global CONF lives here, at the cmd edge: oslo.messaging registers
    its own options only there (see LAB.md).
    """
    conf = cfg.CONF
    kvmplace.conf.register_opts(conf)
    rpc.register_opts(conf)
    logging.register_options(conf)
    try:
        conf(argv, project='kvmplace', prog=name)
    except (cfg.Error, OSError) as exc:
        sys.stderr.write(f'{name}: error: {" ".join(str(exc).split())}\n')
        sys.exit(2)
    logging.setup(conf, 'kvmplace')
    # OpenStack convention: with debug on, every option value at start
    # (secret ones - transport_url, [database] connection - are masked).
    conf.log_opt_values(logging.getLogger(name), logging.DEBUG)
    return conf


def wait_for_signal() -> int:
    """Block until SIGTERM or SIGINT; return the signal number."""
    stop = threading.Event()
    got = {}

    def handler(signum, _frame):
        got['sig'] = signum
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(3600):
        pass
    return got.get('sig', 0)
