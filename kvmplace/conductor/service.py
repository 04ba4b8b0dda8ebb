"""Wire the conductor together and serve until told to stop."""
from __future__ import annotations

import socket
import sys

import oslo_messaging as messaging
from oslo_log import log as logging

from kvmplace import rpc
from kvmplace.agent import rpcapi as agent_rpcapi
from kvmplace.cmd import service
from kvmplace.conductor import decisions
from kvmplace.conductor import endpoint as conductor_endpoint
from kvmplace.conductor import hoststate
from kvmplace.conductor import manager as conductor_manager
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import KvmplaceError

LOG = logging.getLogger(__name__)


def build(conf) -> conductor_manager.ConductorManager:
    if not conf.conductor.host:
        conf.set_override('host', socket.gethostname(), group='conductor')
    db = db_api.Database(conf.database.connection)
    db.upgrade()
    db.check_writable()
    agents = agent_rpcapi.AgentAPI(timeout=conf.conductor.rpc_call_timeout_seconds)
    notifier = None
    if conf.conductor.notifications:
        notifier = messaging.Notifier(rpc.get_notification_transport(conf),
                                      publisher_id=f'kvmplace-conductor.{conf.conductor.host}')
    if conf.conductor.driver == 'nova':
        from kvmplace.conductor.drivers import nova as nova_driver
        from kvmplace.conductor.drivers import novaapi
        compute, placement = novaapi.load(conf)
        cloud = nova_driver.NovaDriver(conf, agents, compute, placement)
        manager = conductor_manager.ConductorManager(conf, db, cloud, notifier, cloud=cloud)
        cloud.start()
        return manager
    return conductor_manager.ConductorManager(conf, db, agents, notifier)


def servers_for(conf, manager: conductor_manager.ConductorManager,
                ) -> list[messaging.MessageHandlingServer]:
    """The operator server and the reports server, not started.

    Two topics so that broker permissions can tell an agent's report from
    an operator's request: the agents' casts on CONDUCTOR_REPORTS_TOPIC,
    everything else on CONDUCTOR_TOPIC (doc/source/user/security.rst).
    The Nova-facing endpoint (kvmplace.nova's filter and weigher) lives
    in its own namespace on the operator topic.
    """
    nova = decisions.NovaDecisions(conf, manager.db,
                                   hoststate.load_links(conf.conductor.topology_file))
    reports = conductor_endpoint.ReportsEndpoint(manager)
    operator_endpoints: list = [conductor_endpoint.ConductorEndpoint(manager),
                                decisions.NovaEndpoint(nova)]
    if conf.conductor.reports_on_operator_topic:
        operator_endpoints.append(reports)
    return [rpc.get_server(rpc.CONDUCTOR_TOPIC, conf.conductor.host, operator_endpoints,
                           conf=conf),
            rpc.get_server(rpc.CONDUCTOR_REPORTS_TOPIC, conf.conductor.host, [reports],
                           conf=conf)]


def run(conf) -> int:
    try:
        manager = build(conf)
    except KvmplaceError as exc:
        sys.stderr.write(f'kvmplace-conductor: error: {exc}\n')
        return 1
    try:
        servers = servers_for(conf, manager)   # reads [message_auth]'s key files
    except KvmplaceError as exc:
        sys.stderr.write(f'kvmplace-conductor: error: {exc}\n')
        manager.stop()
        return 1
    for server in servers:
        server.start()
    LOG.info('kvmplace-conductor %s serving on topics %s and %s', conf.conductor.host,
             rpc.CONDUCTOR_TOPIC, rpc.CONDUCTOR_REPORTS_TOPIC)
    resumed = manager.recover()
    if resumed:
        LOG.info('resumed %d unfinished migrations', len(resumed))
    manager.start_leases()
    sig = service.wait_for_signal()
    LOG.info('stopping on signal %s', sig)
    for server in servers:
        server.stop()
    for server in servers:
        server.wait()
    manager.stop()
    return 0
