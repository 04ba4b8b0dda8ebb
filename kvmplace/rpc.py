"""oslo.messaging plumbing shared by the conductor, the agents and the CLI.

Only plain data crosses RPC (dicts, lists, numbers, strings). Errors that
the other side should see as-is are KvmplaceError subclasses listed in
``ALLOWED_EXMODS`` so oslo.messaging re-raises them with their message on
the caller's side.

oslo.messaging registers some options (tracing) only on the global
``cfg.CONF``, so the services use the global CONF, set up at the cmd/ edge.
"""
from __future__ import annotations

import oslo_messaging as messaging
from oslo_config import cfg

AGENT_TOPIC = 'kvmplace-agent'
CONDUCTOR_TOPIC = 'kvmplace-conductor'
ALLOWED_EXMODS = ['kvmplace.exception']

_TRANSPORTS: dict[int, messaging.Transport] = {}


def get_transport(conf: cfg.ConfigOpts = cfg.CONF) -> messaging.Transport:
    """One RPC transport per ConfigOpts, created on first use."""
    key = id(conf)
    if key not in _TRANSPORTS:
        _TRANSPORTS[key] = messaging.get_rpc_transport(conf, allowed_remote_exmods=ALLOWED_EXMODS)
    return _TRANSPORTS[key]


def get_notification_transport(conf: cfg.ConfigOpts = cfg.CONF):
    return messaging.get_notification_transport(conf, allowed_remote_exmods=ALLOWED_EXMODS)


def get_client(topic: str, version: str, conf: cfg.ConfigOpts = cfg.CONF,
               timeout: int | None = None) -> messaging.RPCClient:
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(get_transport(conf), target, timeout=timeout)


def get_server(topic: str, server: str, endpoints: list, conf: cfg.ConfigOpts = cfg.CONF
               ) -> messaging.MessageHandlingServer:
    """An RPC server with the threading executor (eventlet is deprecated)."""
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(get_transport(conf), target, endpoints,
                                    executor='threading')


def cleanup() -> None:
    for transport in _TRANSPORTS.values():
        transport.cleanup()
    _TRANSPORTS.clear()
