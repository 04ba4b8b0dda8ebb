"""oslo.messaging plumbing shared by the conductor, the agents and the CLI.

Only plain data crosses RPC (dicts, lists, numbers, strings). Errors that
the other side should see as-is are KvmplaceError subclasses listed in
``ALLOWED_EXMODS`` so oslo.messaging re-raises them with their message on
the caller's side.

oslo.messaging registers some options (tracing) only on the global
``cfg.CONF``, so the services use the global CONF, set up at the cmd/ edge.

oslo.messaging itself (with eventlet and oslo.service under it) takes a
quarter of a second to import: it is imported here on first use, so that
an offline ``kvmplace select --inventory`` never pays for it. The command
line registers its options only when a command is about to use the bus
(:func:`register_opts` from get_transport, broker_problem and
kvmplace.cli.client): oslo.config reads option values from the already
parsed files when they are asked for, so a value set in ``--config-file``
is the same either way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from oslo_config import cfg

if TYPE_CHECKING:
    import oslo_messaging as messaging

AGENT_TOPIC = 'kvmplace-agent'
#: The conductor's topic for operators, the CLI and cloud schedulers.
CONDUCTOR_TOPIC = 'kvmplace-conductor'
#: The conductor's topic for the agents' casts (report_state,
#: migration_progress, migration_finished) and nothing else, so that a
#: compute host's broker account may publish there and not on
#: CONDUCTOR_TOPIC (doc/source/user/security.rst, "Broker accounts").
CONDUCTOR_REPORTS_TOPIC = 'kvmplace-conductor-reports'
ALLOWED_EXMODS = ['kvmplace.exception']

_TRANSPORTS: dict[int, messaging.Transport] = {}


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.messaging's options (transport_url, rabbit, ...).

    The services do it up front, so that the options show up (masked where
    secret) when a service logs its option values; the command line only
    before it reads one (see the module doc). Registering again is a no-op.
    """
    from oslo_messaging import opts as msg_opts
    for group, opts in msg_opts.list_opts():
        try:
            conf.register_opts(opts, group=group)
        except cfg.DuplicateOptError:
            pass


def get_transport(conf: cfg.ConfigOpts = cfg.CONF) -> messaging.Transport:
    """One RPC transport per ConfigOpts, created on first use."""
    import oslo_messaging as messaging
    key = id(conf)
    if key not in _TRANSPORTS:
        register_opts(conf)
        _TRANSPORTS[key] = messaging.get_rpc_transport(conf, allowed_remote_exmods=ALLOWED_EXMODS)
    return _TRANSPORTS[key]


def get_notification_transport(conf: cfg.ConfigOpts = cfg.CONF):
    import oslo_messaging as messaging
    register_opts(conf)
    return messaging.get_notification_transport(conf, allowed_remote_exmods=ALLOWED_EXMODS)


def get_client(topic: str, version: str, conf: cfg.ConfigOpts = cfg.CONF,
               timeout: int | None = None):
    """An RPC client for ``topic``; it signs every message when
    [message_auth] private_key_file is set (kvmplace.msgauth)."""
    import oslo_messaging as messaging
    target = messaging.Target(topic=topic, version=version)
    return signed(messaging.get_rpc_client(get_transport(conf), target, timeout=timeout),
                  conf, topic)


def signed(client, conf: cfg.ConfigOpts, topic: str):
    """``client`` signing as this process's role on ``topic``, or as it is
    when no private key is configured."""
    from kvmplace import msgauth
    signer = msgauth.client_signer(conf, topic)
    return client if signer is None else msgauth.SignedClient(client, signer)


def get_server(topic: str, server: str, endpoints: list, conf: cfg.ConfigOpts = cfg.CONF
               ) -> messaging.MessageHandlingServer:
    """An RPC server whose dispatcher checks each message's signature
    before any endpoint method runs (kvmplace.msgauth). It is what
    ``oslo_messaging.get_rpc_server`` builds, with that dispatcher; the
    executor is oslo.messaging's default (threading: eventlet never
    monkey-patches our processes)."""
    import oslo_messaging as messaging
    from oslo_messaging.rpc import server as rpc_server

    from kvmplace import msgauth
    target = messaging.Target(topic=topic, server=server)
    dispatcher = msgauth.AuthDispatcher(endpoints, msgauth.verifier_for(conf, topic, server))
    return rpc_server.RPCServer(get_transport(conf), target, dispatcher)


def broker_problem(conf: cfg.ConfigOpts = cfg.CONF, timeout: float = 2.0) -> str | None:
    """Why the broker of ``transport_url`` cannot be reached, or None.

    A plain TCP connect to each host of the URL: enough to tell "RabbitMQ
    is down" from "nobody serves this topic", which an RPC timeout cannot.
    The URL's password is never part of the answer.
    """
    import socket

    import oslo_messaging as messaging
    register_opts(conf)
    try:
        url = messaging.TransportURL.parse(conf, conf.transport_url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the answer
        return f'transport_url is not valid ({type(exc).__name__})'
    if not url.hosts:
        return 'transport_url names no broker host'
    problems = []
    for host in url.hosts:
        port = host.port or 5672
        try:
            with socket.create_connection((host.hostname, port), timeout=timeout):
                return None
        except OSError as exc:
            problems.append(f'{host.hostname}:{port}: {exc.strerror or exc}')
    return 'broker unreachable (' + '; '.join(problems) + ')'


def cleanup() -> None:
    for transport in _TRANSPORTS.values():
        transport.cleanup()
    _TRANSPORTS.clear()
