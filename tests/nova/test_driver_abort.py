"""Abort of a Nova live migration through kvmplace (issue 14).

Nova's harness with its FakeLiveMigrateDriver - Nova's own fake for its
abort and force-complete tests: a live migration runs about 5 s unless
aborted - and a driver=nova kvmplace-conductor over real HTTP
(tests/nova/driver_fixtures.py). Run with tools/nova-tests.sh.
"""
from __future__ import annotations

import time

import fixtures as fx

from tests.nova import test_driver_drain as base


def _held_live_migration(self, context, instance, dest, post_method, recover_method,
                         block_migration=False, migrate_data=None):
    """FakeLiveMigrateDriver.live_migration held until aborted or forced
    (up to 120 s instead of its 5 s), so that a CLI's abort, a process
    start away, cannot race the copy's end."""
    self._abort_migration = False
    self._migrating = True
    deadline = time.monotonic() + 120
    while self._migrating and time.monotonic() < deadline:
        time.sleep(0.1)
    if self._abort_migration:
        recover_method(context, instance, dest, migrate_data, migration_status='cancelled')
    else:
        post_method(context, instance, dest, block_migration, migrate_data)


class TestAbort(base.DriverTestBase):
    compute_driver = 'fake.FakeLiveMigrateDriver'
    COMPUTES = ('host1', 'host2')

    def setup_before_scheduler(self):
        # _IntegratedTestBase does not read compute_driver itself.
        self.flags(compute_driver=self.compute_driver)

    def setUp(self):
        self.useFixture(fx.MonkeyPatch('nova.virt.fake.FakeLiveMigrateDriver.live_migration',
                                       _held_live_migration))
        super().setUp()

    def test_abort_cancels_novas_migration_and_server_stays_on_source(self):
        server = self._create_server(networks='none', host='host1', name='ab0')
        self.wait_hosts({'host1', 'host2'})
        self.wait_instances('host1', {'ab0'})
        rec = self.conductor.cli_json('migrate', 'ab0', '--to', 'host2')
        mid = rec['id'] if isinstance(rec, dict) else rec[0]['id']
        # Hold until Nova runs the migration, then abort through kvmplace.
        deadline = time.monotonic() + 60
        while not any(m['status'] == 'running' for m in self.nova_migrations(server)):
            self.assertLess(time.monotonic(), deadline, self.nova_migrations(server))
            time.sleep(0.2)
        self.conductor.cli_json('migrations', 'abort', mid, '--wait')
        final = self.conductor.cli_json('migrations', 'show', mid)
        text = str(final)
        self.assertIn('aborted', text)
        # Nova: its migration cancelled, the server ACTIVE on its source,
        # its allocations on the source only.
        self.assertEqual(['cancelled'], [m['status'] for m in self.nova_migrations(server)])
        got = self.admin_api.get_server(server['id'])
        self.assertEqual(('host1', 'ACTIVE'), (got['OS-EXT-SRV-ATTR:host'], got['status']))
        self.assertEqual([self.provider('host1')], list(self.allocations(server)))
