"""Drains and rebalancing of Nova guests through Nova's API (issue 14).

Nova's functional harness (real nova-api, nova-conductor, nova-scheduler and
Placement in this process, SQLite, Nova's fake virt driver) and a real
``kvmplace-conductor`` process with ``[conductor] driver = nova`` that
reaches Nova and Placement over real HTTP (tests/nova/driver_fixtures.py)
and takes ``kvmplace`` CLI commands over a private RabbitMQ vhost. No
kvmplace agent runs here (Nova's fake driver has no guests to pin), so the
records must say that pre-pin and the agent's verify were skipped.

Run with tools/nova-tests.sh (``python -m unittest`` in .nova-venv).
"""
from __future__ import annotations

import json
import subprocess
import time

from tests.nova import driver_fixtures as dfx
from tests.nova import fixtures as kfx

Base = kfx.nova_harness_base()


class DriverTestBase(Base):
    COMPUTES = ('host1', 'host2', 'host3')
    EXTRA: dict = {}

    def setUp(self):
        super().setUp()
        self.before_kvmplace()
        self.kvm = self.useFixture(dfx.DriverHarness(self, self.EXTRA))
        self.conductor = self.kvm.conductor

    def before_kvmplace(self) -> None:
        """Nova is up, the kvmplace conductor not yet: servers made here
        are in the conductor's first inventory."""

    # -- helpers --------------------------------------------------------------
    def host_of(self, server) -> str:
        return self.admin_api.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def service(self, host: str) -> dict:
        return self.admin_api.get_services(binary='nova-compute', host=host)[0]

    def allocations(self, server) -> dict:
        """Placement's allocations of the server: {provider uuid: resources}."""
        body = self.placement.get(f"/allocations/{server['id']}").body
        return {rp: a['resources'] for rp, a in body['allocations'].items()}

    def nova_migrations(self, server) -> list[dict]:
        return self.admin_api.api_get(
            f"/os-migrations?instance_uuid={server['id']}").body['migrations']

    def provider(self, host: str) -> str:
        return self._get_provider_uuid_by_host(host)

    def wait_hosts(self, want: set, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            hosts = self.conductor.cli_json('hosts', 'list')
            if {h['name'] for h in hosts} >= want:
                return hosts
            if time.monotonic() > deadline:
                self.fail(f'conductor lists {hosts}, not {want}')
            time.sleep(0.5)

    def wait_instances(self, host: str, names: set, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            got = set(self.conductor.cli_json('hosts', 'show', host).get('instances') or [])
            if got >= names:
                return
            if time.monotonic() > deadline:
                self.fail(f'{host} lists {got}, not {names}')
            time.sleep(0.5)

    def cli_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        argv = [kfx.kvmplace_python(), '-c', 'import sys; from kvmplace.cmd.kvmplace import '
                'main; sys.exit(main())', '--config-file', self.conductor.config_path, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def steps(self, migration_id: str) -> list[dict]:
        return self.conductor.cli_json('migrations', 'show', migration_id)

    def assert_moved_by_nova(self, server, source: str) -> str:
        """The server left ``source`` in Nova's API and in Placement."""
        dest = self.host_of(server)
        self.assertNotEqual(source, dest)
        self.assertEqual('ACTIVE', self.admin_api.get_server(server['id'])['status'])
        allocs = self.allocations(server)
        self.assertEqual([self.provider(dest)], list(allocs))
        self.assertNotIn(self.provider(source), allocs)
        # Nova ran it as a live migration (its own record says so).
        migs = self.nova_migrations(server)
        self.assertTrue(any(m['migration_type'] == 'live-migration' and
                            m['status'] == 'completed' and m['dest_compute'] == dest
                            for m in migs), migs)
        return dest


class TestDrain(DriverTestBase):

    def test_drain_wait_empties_a_compute_host(self):
        servers = [self._create_server(networks='none', host='host1', name=f'vm{i}')
                   for i in range(3)]
        self.wait_hosts({'host1', 'host2', 'host3'})
        self.wait_instances('host1', {'vm0', 'vm1', 'vm2'})

        proc = self.cli_run('drain', 'host1', '--wait', '-f', 'json')
        self.assertEqual(0, proc.returncode, proc.stderr + self.conductor.log()[-3000:])

        # Nova: every server on a new host, its allocations moved with it.
        for server in servers:
            self.assert_moved_by_nova(server, 'host1')
        # Nova: the compute service is disabled with kvmplace's reason.
        svc = self.service('host1')
        self.assertEqual('disabled', svc['status'])
        self.assertTrue(svc['disabled_reason'].startswith('kvmplace: drain '), svc)
        # kvmplace: the drain's record and one completed migration per guest,
        # each with its steps.
        drains = self.conductor.cli_json('drains', 'list')
        self.assertEqual(['completed'], [d['status'] for d in drains])
        migs = self.conductor.cli_json('migrations', 'list')
        done = {m['instance'] for m in migs if m['status'] == 'completed'}
        self.assertEqual({'vm0', 'vm1', 'vm2'}, done)
        for m in migs:
            rec = self.conductor.cli_json('migrations', 'show', m['id'])
            text = json.dumps(rec)
            for step in ('schedule', 'check_destination', 'pre_pin', 'migrate',
                         'post_verify'):
                self.assertIn(f'"{step}"', text)
            # No agent beside these computes: said, not silent.
            self.assertIn('skipped: no kvmplace agent reports from host1', text)
        # Nova's own limit (max_concurrent_live_migrations = 1) held: the
        # live migrations never overlapped in Nova's records.
        nova_migs = sorted((m for s in servers for m in
                            self.nova_migrations(s)),
                           key=lambda m: m['created_at'])
        self.assertEqual(3, len(nova_migs))

        # maintenance off enables the service again.
        self.conductor.cli_json('hosts', 'maintenance', 'host1', 'off')
        self.assertEqual('enabled', self.service('host1')['status'])

    def test_rebalance_moves_servers_through_nova(self):
        servers = [self._create_server(networks='none', host='host1', name=f'rb{i}')
                   for i in range(4)]
        self.wait_hosts({'host1', 'host2', 'host3'})
        self.wait_instances('host1', {'rb0', 'rb1', 'rb2', 'rb3'})
        proc = self.cli_run('rebalance', '--threshold', '0.01', '-f', 'json')
        self.assertEqual(0, proc.returncode, proc.stderr)
        deadline = time.monotonic() + 180
        while True:
            drains = self.conductor.cli_json('drains', 'list')
            if drains and drains[0]['status'] != 'running':
                break
            self.assertLess(time.monotonic(), deadline, drains)
            time.sleep(1)
        self.assertEqual('completed', drains[0]['status'], drains)
        moved = [s for s in servers if self.host_of(s) != 'host1']
        self.assertTrue(moved)
        for server in moved:
            self.assert_moved_by_nova(server, 'host1')
        # A rebalance is no maintenance: host1 stays enabled.
        self.assertEqual('enabled', self.service('host1')['status'])
