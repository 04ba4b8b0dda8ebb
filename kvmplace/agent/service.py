"""Wires the agent together: libvirt connection, host state, probe, dirty
rates, migrations, periodic reports and the RPC server.

Everything takes ``conf`` as an argument; only ``cmd/agent.py`` passes the
global ``cfg.CONF``. Tests build an Agent on a private ConfigOpts with the
libvirt test driver and a fake:// transport.
"""
from __future__ import annotations

import logging

import oslo_messaging as messaging
from typing import Optional

from kvmplace import rpc
from kvmplace.agent import dirtyrate
from kvmplace.agent import guest
from kvmplace.agent import host
from kvmplace.agent import manager
from kvmplace.agent import migration
from kvmplace.agent import numa
from kvmplace.agent import reporter

LOG = logging.getLogger(__name__)


class Agent:
    """One compute agent. ``start()`` runs it; ``stop()`` ends it."""

    def __init__(self, conf, notifier: Optional[reporter.ConductorNotifier] = None):
        self.conf = conf
        a = conf.agent
        self.connection = host.Connection(a.libvirt_uri)
        self.topology = numa.Topology(a.numa_topology_file, a.probe_baseline_mibps)
        self.pids = guest.PidResolver(a.libvirt_uri, a.qemu_pid_dir)
        self.dirty_rates = dirtyrate.DirtyRates()
        self.notifier = notifier or reporter.ConductorNotifier(conf)
        self.driver = migration.MigrationDriver(conf, self.connection, self.notifier,
                                                self.dirty_rates)
        self.host = host.HostState(conf, self.connection, self.topology, self.pids,
                                   self.dirty_rates.get, self.driver.active)
        self.probe = numa.BandwidthProbe(a.probe_seconds_per_node, a.probe_buffer_mib,
                                         a.probe_threads_per_node)
        self.manager = manager.AgentManager(conf, self.host, self.driver)
        self.server: Optional[messaging.MessageHandlingServer] = None
        self._tasks: list[reporter.Periodic] = []

    # -- periodic work -------------------------------------------------------
    def run_probe(self) -> dict[int, float]:
        """Measure the nodes whose bandwidth is not injected by the
        override file (no point measuring what an operator dictates)."""
        nodes = [n for n in self.host.numa_nodes() if n.get('bandwidth_source') != 'injected']
        measured = self.probe.run(nodes)
        if measured:
            self.topology.record(measured)
            LOG.info('NUMA write bandwidth (MiB/s): %s',
                     ', '.join(f'node {k}: {v:.0f}' for k, v in sorted(measured.items())))
        return measured

    def probe_interval_s(self) -> float:
        a = self.conf.agent
        return self.probe.interval_seconds(a.probe_interval_seconds,
                                           len(self.topology.measured) or 2,
                                           a.probe_max_duty_cycle)

    def sample_dirty_rates(self) -> dict[str, float]:
        return self.dirty_rates.sample(self.connection.get(), self.driver.active_uuids(),
                                       self.conf.agent.dirty_rate_calc_seconds)

    def report(self) -> bool:
        return self.notifier.report_state(self.host.build())

    def start_periodic(self) -> None:
        a = self.conf.agent
        if a.probe_enabled:
            self._tasks.append(reporter.Periodic('numa-probe', self.run_probe,
                                                 self.probe_interval_s))
        if a.dirty_rate_enabled:
            self._tasks.append(reporter.Periodic(
                'dirty-rate', self.sample_dirty_rates,
                lambda: float(a.dirty_rate_interval_seconds)))
        self._tasks.append(reporter.Periodic('report-state', self.report,
                                             lambda: float(a.report_interval_seconds)))
        for task in self._tasks:
            task.start()

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        self.connection.get()  # fail early, with libvirt's reason, if unreachable
        server = rpc.get_server(rpc.AGENT_TOPIC, self.conf.agent.host,
                                [manager.AgentEndpoint(self.manager)], conf=self.conf)
        server.start()
        self.server = server
        self.start_periodic()
        LOG.info('kvmplace-agent %s serving on topic %s (libvirt %s)', self.conf.agent.host,
                 rpc.AGENT_TOPIC, self.conf.agent.libvirt_uri)

    def stop(self) -> None:
        for task in self._tasks:
            task.stop()
        self._tasks.clear()
        if self.server is not None:
            self.server.stop()
            self.server.wait()
            self.server = None
        self.connection.close()
