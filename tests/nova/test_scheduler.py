"""kvmplace's filter and weigher inside the real nova-scheduler.

Nova's functional harness (nova-api, nova-conductor, nova-scheduler,
Placement; fake virt driver) with a real kvmplace-conductor on a private
RabbitMQ vhost, host facts from ``kvmplace hosts import``. Run with
tools/nova-tests.sh (``python -m unittest`` in .nova-venv).

The cloud (Nova compute host names; facts imported):

* host1: the source; 10 GbE, healthy NUMA nodes.
* host2: most free RAM (Nova's RAM weigher picks it), but on 1 GbE: a
  migration there takes about 4x longer, and a guest dirtying 100 MiB/s
  would never converge (1 GbE x 0.6 efficiency = 71.5 MiB/s).
* host3: 10 GbE, healthy: kvmplace's best host. A filler guest uses RAM.
* host4: 10 GbE, every NUMA node at 20 % of its baseline write bandwidth
  (degraded). A filler guest uses RAM.
"""
from __future__ import annotations

import re

from tests.nova import fixtures as kfx

COMPUTES = ('host1', 'host2', 'host3', 'host4')


def inventory() -> dict:
    return kfx.star([kfx.inventory_host('host1'),
                     kfx.inventory_host('host2', link_mbps=1000),
                     kfx.inventory_host('host3'),
                     kfx.inventory_host('host4', health=0.2)])


Base = kfx.nova_harness_base()


class _KvmplaceNovaTest(Base):
    COMPUTES = COMPUTES
    #: KvmplaceFilter enabled and the weigher's multiplier > 0
    KVMPLACE = True
    #: [kvmplace] options for this test class
    KVMPLACE_FLAGS: dict = {'weight_multiplier': 10.0}

    def setup_before_scheduler(self):
        self.kvm = self.useFixture(kfx.KvmplaceNova(self, enabled=self.KVMPLACE,
                                                    **self.KVMPLACE_FLAGS))
        self.kvm.conductor.import_inventory(inventory())

    def setUp(self):
        super().setUp()
        # Fillers: host3 and host4 have less free RAM (and CPU, disk) than
        # host2, so Nova's own weighers prefer host2.
        for host in ('host3', 'host4'):
            self._create_server(networks='none', host=host, name=f'filler-{host}')
        self.server = self._create_server(networks='none', host='host1', name='guest')
        self.calls_before = self.kvm.adapter.calls

    def host_of(self, server) -> str:
        return self.api.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def scheduler_log(self) -> str:
        return self.stdlog.logger.output

    def assert_no_traceback(self):
        """No traceback from or through kvmplace. The only one allowed is
        Nova's own: its conductor logs a live migration's NoValidHost (a
        cast) with a traceback, with or without kvmplace."""
        entries = re.split(r'\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)', self.scheduler_log())
        for entry in entries:
            if 'Traceback' not in entry:
                continue
            self.assertNotIn('kvmplace', entry)
            self.assertIn('[oslo_messaging.rpc.server] Exception during message handling',
                          entry)
            self.assertTrue(entry.rstrip().endswith(
                'nova.exception.NoValidHost: No valid host was found. There are not enough '
                'hosts available.'), entry[-500:])


class TestKvmplaceChooses(_KvmplaceNovaTest):
    """One Nova harness for several requests in a row (set-up is costly)."""

    def test_kvmplace_decides_live_migrations_and_leaves_boots(self):
        # 1. Live migration without a host: kvmplace's best host, host3 (Nova
        #    alone picks host2: TestWithoutKvmplace). One RPC call for the
        #    whole request (filter and weigher share it), one decision.
        self._live_migrate(self.server)
        self.assertEqual('host3', self.host_of(self.server))
        self.assertEqual(1, self.kvm.adapter.calls - self.calls_before)
        decisions = self.kvm.conductor.decisions(self.server['id'])
        self.assertEqual(1, len(decisions))
        self.assertEqual(('host3', 'live-migrate', 'host1'),
                         (decisions[0]['best'], decisions[0]['operation'],
                          decisions[0]['source']))
        shown = self.kvm.conductor.cli_json('decisions', 'show', decisions[0]['id'][:8])
        self.assertEqual(['host3', 'host2'], [r['host'] for r in shown['result']['ranked']])
        self.assertEqual({'host4': 'numa_health'},
                         {r['host']: r['filter'] for r in shown['result']['rejected']})
        # The degraded host's rejection is in nova-scheduler's log, with
        # kvmplace's filter and reason.
        self.assertRegex(self.scheduler_log(),
                         r'KvmplaceFilter: host host4 rejected for instance '
                         + re.escape(self.server['id']) + r' by kvmplace filter numa_health: '
                         r'best NUMA node with room runs at 20% of its baseline')

        # 2. Explicit host that kvmplace rejects (microversion >= 2.30, not
        #    forced: the scheduler validates it) -> NoValidHost, guest stays.
        self.api.post_server_action(
            self.server['id'], {'os-migrateLive': {'host': 'host4', 'block_migration': 'auto'}})
        self._wait_for_migration_status(self.server, ['error'])
        self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual('host3', self.host_of(self.server))
        self.assertIn('NoValidHost', self.scheduler_log())
        self.assertEqual(2, self.kvm.adapter.calls - self.calls_before)

        # 3. Again without a host, from host3: host4 (degraded) is never
        #    chosen, though it is the other 10 GbE host.
        self._live_migrate(self.server)
        self.assertEqual('host1', self.host_of(self.server))   # 10 GbE beats 1 GbE
        self.assertEqual(3, self.kvm.adapter.calls - self.calls_before)
        self.assertEqual(3, len(self.kvm.conductor.decisions(self.server['id'])))

        # 4. Boots are not in [kvmplace] operations: no call, no decision,
        #    and a boot onto the degraded host is not refused by kvmplace.
        before = self.kvm.adapter.calls
        booted = self._create_server(networks='none', host='host4', name='booted')
        self.assertEqual('host4', booted['OS-EXT-SRV-ATTR:host'])
        self._create_server(networks='none', name='booted-anywhere')
        self.assertEqual(before, self.kvm.adapter.calls)
        self.assertEqual([], self.kvm.conductor.decisions(booted['id']))
        self.assert_no_traceback()


class TestConvergence(_KvmplaceNovaTest):
    # A guest no agent reports is assumed to dirty 100 MiB/s: more than the
    # 1 GbE path to host2 carries.
    KVMPLACE_FLAGS = {'weight_multiplier': 10.0, 'default_dirty_rate_mibps': 100.0}

    def test_non_converging_path_rejected_with_reason_in_log(self):
        self._live_migrate(self.server)
        self.assertEqual('host3', self.host_of(self.server))
        self.assertRegex(self.scheduler_log(),
                         r'KvmplaceFilter: host host2 rejected for instance \S+ by kvmplace '
                         r'filter convergence: would not converge: dirty rate 100 MiB/s')
        self._live_migrate(self.server)   # from host3: host2 does not converge, host4 sick
        self.assertEqual('host1', self.host_of(self.server))


class TestWithoutKvmplace(_KvmplaceNovaTest):
    """The same cloud and request, KvmplaceFilter removed and the weigher's
    multiplier at 0: Nova's own choice (most free RAM) is host2."""
    KVMPLACE = False

    def test_nova_alone_chooses_most_free_ram(self):
        self._live_migrate(self.server)
        self.assertEqual('host2', self.host_of(self.server))
        self.assertEqual(0, self.kvm.adapter.calls - self.calls_before)


class TestFailOpen(_KvmplaceNovaTest):
    KVMPLACE_FLAGS = {'weight_multiplier': 10.0, 'timeout_seconds': 1.0}

    def test_conductor_stopped_nova_schedules_with_one_warning(self):
        self.kvm.conductor.stop()
        self._live_migrate(self.server)
        # Nova decided as if kvmplace were absent: its own choice.
        self.assertEqual('host2', self.host_of(self.server))
        warnings = re.findall(r'kvmplace: .*fail-open: Nova schedules instance '
                              + re.escape(self.server['id']), self.scheduler_log())
        self.assertEqual(1, len(warnings))
        self.assertEqual(1, self.kvm.adapter.calls - self.calls_before)
        self.assert_no_traceback()


class TestFailClosed(_KvmplaceNovaTest):
    KVMPLACE_FLAGS = {'weight_multiplier': 10.0, 'timeout_seconds': 1.0,
                      'failure_policy': 'fail-closed'}

    def test_conductor_stopped_no_valid_host_boots_untouched(self):
        self.kvm.conductor.stop()
        self.api.post_server_action(
            self.server['id'], {'os-migrateLive': {'host': None, 'block_migration': 'auto'}})
        self._wait_for_migration_status(self.server, ['error'])
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        log = self.scheduler_log()
        self.assertIn('failure_policy fail-closed: no host passes for instance '
                      + self.server['id'], log)
        self.assertIn('NoValidHost', log)
        self.assertEqual(1, self.kvm.adapter.calls - self.calls_before)
        # Boots are untouched, even fail-closed with the conductor gone.
        server = self._create_server(networks='none', name='booted')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(1, self.kvm.adapter.calls - self.calls_before)
        self.assert_no_traceback()
