"""``kvmplace-agent --config-file F``: the compute agent of one host."""
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log

from kvmplace import conf as kvmplace_conf
from kvmplace import rpc


def main(argv=None) -> int:
    conf = cfg.CONF
    kvmplace_conf.register_opts(conf)
    log.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project='kvmplace',
         prog='kvmplace-agent')
    log.setup(conf, 'kvmplace-agent')
    from kvmplace.agent import service
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        agent = service.Agent(conf)     # reads [message_auth]'s key files
        agent.start()
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        print(f'kvmplace-agent: error: {exc}', file=sys.stderr)
        return 1
    stop.wait()
    agent.stop()
    rpc.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
