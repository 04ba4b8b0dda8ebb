"""The Nova driver when Nova says no, when Nova is away, with kvmplace's
Nova filter on, and what reaches the agents (issue 14).

Nova's functional harness (real nova-api, nova-conductor, nova-scheduler
and Placement in this process; Nova's fake virt drivers) and a real
``kvmplace-conductor`` process with ``[conductor] driver = nova`` reaching
Nova and Placement over real HTTP (tests/nova/driver_fixtures.py), driven
by the ``kvmplace`` CLI over a private RabbitMQ vhost. What is faked, and
why, is said per class. Run with tools/nova-tests.sh.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import fixtures as fx

from tests.nova import fixtures as kfx
from tests.nova import test_driver_drain as base

#: Released by TestNovaUnreachable once Nova's API is back; until then
#: every live migration of the fake driver stays 'running'.
_RELEASE = threading.Event()
_TERMINAL = ('completed', 'failed', 'aborted')


def _held_until_released(self, context, instance, dest, post_method, recover_method,
                         block_migration=False, migrate_data=None):
    """FakeLiveMigrateDriver.live_migration held while _RELEASE is clear
    (at most 120 s), so that Nova's API can go away while a migration
    runs - a copy cannot be held on the fake driver otherwise."""
    self._abort_migration = False
    self._migrating = True
    deadline = time.monotonic() + 120
    while not _RELEASE.is_set() and self._migrating and time.monotonic() < deadline:
        time.sleep(0.1)
    if self._abort_migration:
        recover_method(context, instance, dest, migrate_data, migration_status='cancelled')
    else:
        post_method(context, instance, dest, block_migration, migrate_data)


class _FaultsBase(base.DriverTestBase):

    def flavor(self, ram_mb: int) -> str:
        """The harness's flavor with that much RAM."""
        return next(f['id'] for f in self.api.get_flavors() if f['ram'] == ram_mb)

    def wait_migration(self, mid: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.conductor.cli_json('migrations', 'show', mid)
            if rec['status'] in _TERMINAL:
                return rec
            self.assertLess(time.monotonic(), deadline, rec)
            time.sleep(0.5)

    def wait_drain(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            drains = self.conductor.cli_json('drains', 'list')
            if drains and drains[0]['status'] != 'running':
                return drains[0]
            self.assertLess(time.monotonic(), deadline, drains)
            time.sleep(0.5)

    def migrate(self, instance: str) -> dict:
        """``kvmplace migrate INSTANCE`` (kvmplace picks the host); the final record."""
        rec = self.conductor.cli_json('migrate', instance)
        return self.wait_migration(rec['id'])


class TestNovaRefuses(_FaultsBase):
    """A destination Nova refuses -> the next-ranked host, and the record
    says which host was refused and why.

    Nothing is faked beyond Nova's fake virt driver. The conductor reads
    Nova's inventory once at start (every 600 s after), so its view of the
    cloud is deliberately behind Nova's, as between two refreshes in a
    cloud. The cloud: host1 the source; host2 with one tiny guest, host3
    with a medium one, so kvmplace ranks host2 first (most room).
    """
    # (host_down_seconds above it: a host is not "down" for kvmplace only
    # because its facts are as old as the test)
    EXTRA = {'nova': {'inventory_interval_seconds': '600'},
             'scheduler': {'host_down_seconds': '900'}}

    def before_kvmplace(self):
        group = self.api.post_server_groups({'name': 'apart', 'policy': 'anti-affinity'})
        self.apart = self._create_in_group('apart0', 'host1', group['id'])
        self.peer = self._create_in_group('apart-peer', 'host2', group['id'])
        self.plain = self._create_server(networks='none', host='host1', name='plain0',
                                         flavor_id=self.flavor(512))
        self._create_server(networks='none', host='host3', name='filler',
                            flavor_id=self.flavor(4096))

    def _create_in_group(self, name: str, host: str, group_id: str) -> dict:
        body = self._build_server(name=name, networks='none', host=host,
                                  flavor_id=self.flavor(512))
        server = self.admin_api.post_server({'server': body,
                                             'os:scheduler_hints': {'group': group_id}})
        return self._wait_for_state_change(server, 'ACTIVE')

    def test_refused_destination_goes_to_next_ranked_host(self):
        self.wait_hosts({'host1', 'host2', 'host3'})
        ranked = [r['host'] for r in self.conductor.cli_json('select', 'plain0')['ranked']]
        self.assertEqual(['host2', 'host3'], ranked)

        # 1. The planned host was disabled in Nova meanwhile (by an
        #    operator, after kvmplace's last look): check_destination asks
        #    Nova, is refused, and the next-ranked host takes the guest.
        svc = self.service('host2')
        self.admin_api.put_service(svc['id'], {'status': 'disabled',
                                               'disabled_reason': 'operator: fan check'})
        rec = self.migrate('plain0')
        self.assertEqual('completed', rec['status'], rec)
        self.assertEqual('host3', rec['dest'])
        self.assert_moved_by_nova(self.plain, 'host1')
        self.assertEqual('host3', self.host_of(self.plain))
        self.assertEqual(
            [('host2', False, 'nova-compute on host2 is disabled in Nova (operator: fan check)'),
             ('host3', True, None)],
            [(a['host'], a['ok'], a['reason']) for a in rec['attempts']])
        checks = [(s['host'], s['status']) for s in rec['steps']
                  if s['name'] == 'check_destination']
        self.assertEqual([('host2', 'refused'), ('host3', 'ok')], checks)
        # Nova never saw a request for host2.
        self.assertEqual(['host3'], [m['dest_compute'] for m in self.nova_migrations(self.plain)])
        self.admin_api.put_service(svc['id'], {'status': 'enabled'})

        # 2. Nova's scheduler refuses the host kvmplace ranked first
        #    (anti-affinity: apart0's group peer runs on host2, which
        #    kvmplace does not model). Nova ends its migration 'error'; the
        #    guest never left host1; kvmplace records the refusal with Nova's
        #    reason and goes on to host3.
        rec = self.migrate('apart0')
        self.assertEqual('completed', rec['status'], rec)
        self.assertEqual('host3', self.host_of(self.apart))
        self.assert_moved_by_nova(self.apart, 'host1')
        attempts = [(a['host'], a['ok']) for a in rec['attempts']]
        self.assertEqual([('host2', False), ('host3', True)], attempts)
        self.assertRegex(rec['attempts'][0]['reason'],
                         r'^Nova refused host2: No valid host was found')
        self.assertEqual('migrate', rec['attempts'][0].get('step'))
        migrates = [(s['host'], s['status']) for s in rec['steps'] if s['name'] == 'migrate']
        self.assertEqual([('host1', 'refused'), ('host1', 'ok')], migrates)
        nova = sorted(self.nova_migrations(self.apart), key=lambda m: m['id'])
        # (Nova's refused record names no dest_compute: the scheduler
        # refused before Nova's conductor set it.)
        self.assertEqual(['error', 'completed'], [m['status'] for m in nova])
        self.assertEqual('host3', nova[1]['dest_compute'])
        self.assertEqual('host2', self.host_of(self.peer))
        self.assertNotIn('Traceback', self.conductor.log())


class TestNovaUnreachable(_FaultsBase):
    """Nova's API away mid-drain, for longer than a request's retries.

    Nova's FakeLiveMigrateDriver, with its live migration held until the
    test releases it (_held_until_released): the only way to have a copy
    "running" while the API goes away. The API goes away by stopping the
    HTTP front kvmplace reaches it through (connection refused; Nova runs
    on). ``[nova] unreachable_timeout_seconds = 3``: each request is asked
    again for 3 s, then fails with one line.
    """
    compute_driver = 'fake.FakeLiveMigrateDriver'
    EXTRA = {'nova': {'unreachable_timeout_seconds': '3'}}

    def setup_before_scheduler(self):
        # _IntegratedTestBase does not read compute_driver itself.
        self.flags(compute_driver=self.compute_driver)

    def setUp(self):
        _RELEASE.clear()
        self.addCleanup(_RELEASE.set)
        self.useFixture(fx.MonkeyPatch('nova.virt.fake.FakeLiveMigrateDriver.live_migration',
                                       _held_until_released))
        super().setUp()

    def test_drain_survives_nova_api_outage(self):
        servers = [self._create_server(networks='none', host='host1', name=f'out{i}')
                   for i in range(3)]
        self.wait_hosts({'host1', 'host2', 'host3'})
        self.wait_instances('host1', {'out0', 'out1', 'out2'})
        drain = self.conductor.cli_json('drain', 'host1')
        self.assertEqual('running', drain['status'])
        deadline = time.monotonic() + 60
        while not any(m['status'] == 'running' for s in servers
                      for m in self.nova_migrations(s)):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)

        # Nova's API goes away while a migration runs.
        self.kvm.nova.stop()
        outage_start = time.monotonic()
        # A command that needs Nova now: one line naming what failed, no
        # traceback, non-zero exit.
        proc = self.cli_run('hosts', 'maintenance', 'host3', 'on')
        self.assertNotEqual(0, proc.returncode)
        err = proc.stderr.strip()
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertRegex(err, r'Nova API unreachable \(GET /os-services')
        # The records stay readable and unfinished (resumable): the drain
        # runs, no migration of it has ended.
        self.assertEqual('running', self.conductor.cli_json('drains', 'list')[0]['status'])
        migs = self.conductor.cli_json('migrations', 'list')
        self.assertTrue(migs)
        self.assertEqual([], [m for m in migs if m['status'] in _TERMINAL], migs)
        # Followed through the outage: the running migration's watcher
        # gave up on a request (one warning line) and kept following.
        deadline = time.monotonic() + 60
        while not re.search(r'WARNING kvmplace\.conductor\.drivers\.nova .*migration '
                            r'\w{8}: Nova API unreachable', self.conductor.log()):
            self.assertLess(time.monotonic(), deadline, self.conductor.log()[-2000:])
            time.sleep(0.5)
        self.assertGreater(time.monotonic() - outage_start, 3.0)

        # Nova is back: the held copy completes, the drain goes on to the end.
        self.kvm.nova.start()
        _RELEASE.set()
        drain = self.wait_drain()
        self.assertEqual('completed', drain['status'], drain)
        for server in servers:
            self.assert_moved_by_nova(server, 'host1')
        migs = self.conductor.cli_json('migrations', 'list')
        self.assertEqual(['completed'] * 3, [m['status'] for m in migs], migs)
        self.assertEqual({'out0', 'out1', 'out2'}, {m['instance'] for m in migs})
        # host3 was not put in maintenance by the failed command.
        self.assertEqual('enabled', self.service('host3')['status'])
        log = self.conductor.log()
        self.assertNotIn('Traceback', log)
        self.assertRegex(log, r'Nova API unreachable \(\w+ /[^\n]*; asking again in \d+ s')


class TestFilterAndAgents(_FaultsBase):
    """kvmplace's Nova filter and weigher (issue 13) enabled in
    nova-scheduler, and a recording agent beside every nova-compute.

    The filter and weigher are the real ones, asking this same conductor
    (its ``kvmplace-nova`` namespace) once per scheduling request. The
    agents are faked (tests/nova/recording_agent.py): a separate process
    serving real oslo.messaging RPC servers on the agents' topic for host1,
    host2 and host3 on the conductor's vhost, reporting each host and its
    guests (by Nova's instance UUID) like an agent, answering the pinning
    and verify calls, and recording *every* method called. Nova's fake
    virt driver runs no QEMU, so a real agent would have nothing to pin;
    what matters here is which calls reach an agent at all.
    """

    def setup_before_scheduler(self):
        from kvmplace.nova import conf as kconf
        from nova import conf as nova_conf
        kconf.register_opts(nova_conf.CONF)
        kfx.configure_scheduler(self, enabled=True)

    def before_kvmplace(self):
        self.servers = [self._create_server(networks='none', host='host1', name=f'ag{i}')
                        for i in range(3)]

    def setUp(self):
        super().setUp()
        from kvmplace.nova import adapter as adapter_mod
        from nova import conf as nova_conf
        self.flags(group='kvmplace', transport_url=self.kvm.vhost.url, timeout_seconds=10.0,
                   weight_multiplier=10.0)
        self.adapter = adapter_mod.Adapter(nova_conf.CONF)
        adapter_mod.reset_adapter(self.adapter)
        self.addCleanup(adapter_mod.reset_adapter, None)
        self.addCleanup(lambda: self.adapter._client is not None
                        and self.adapter._client.transport.cleanup())
        self.record_path = os.path.join(self.kvm.workdir, 'agent-calls.jsonl')
        self.agent = self._start_agent()

    def _start_agent(self) -> subprocess.Popen:
        guests = [{'name': self.admin_api.get_server(s['id'])['OS-EXT-SRV-ATTR:instance_name'],
                   'uuid': s['id'], 'memory_mib': 512, 'vcpus': 1} for s in self.servers]
        hosts_path = os.path.join(self.kvm.workdir, 'agent-hosts.json')
        with open(hosts_path, 'w', encoding='utf-8') as fh:
            json.dump({'host1': guests, 'host2': [], 'host3': []}, fh)
        proc = subprocess.Popen(
            [kfx.kvmplace_python(), '-m', 'tests.nova.recording_agent', '--transport-url',
             self.kvm.vhost.url, '--hosts', hosts_path, '--record', self.record_path],
            cwd=kfx.ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.kvm.workdir, 'agent.log'), 'w', encoding='utf-8'),
            start_new_session=True)

        def stop():
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.addCleanup(stop)
        deadline = time.monotonic() + 60
        while not all((self.conductor.cli_json('hosts', 'show', h).get('state') or {})
                      .get('agent') for h in ('host1', 'host2', 'host3')):
            self.assertIsNone(proc.poll(), 'recording agent exited')
            self.assertLess(time.monotonic(), deadline, 'no agent report reached the conductor')
            time.sleep(0.5)
        return proc

    def calls(self) -> list[dict]:
        with open(self.record_path, encoding='utf-8') as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def test_drain_passes_kvmplace_filter_and_touches_agents_only_to_pin_and_verify(self):
        calls_before = self.adapter.calls
        proc = self.cli_run('drain', 'host1', '--wait', '-f', 'json')
        self.assertEqual(0, proc.returncode, proc.stderr + self.conductor.log()[-3000:])
        migs = {m['instance']: m for m in self.conductor.cli_json('migrations', 'list')}
        self.assertEqual({'ag0', 'ag1', 'ag2'}, set(migs))

        # 3. Every kvmplace-driven migration went through Nova's scheduler
        #    with KvmplaceFilter on, and landed on kvmplace's chosen host.
        for server in self.servers:
            mig = migs[server['name']]
            self.assertEqual('completed', mig['status'], mig)
            self.assertEqual(mig['dest'], self.assert_moved_by_nova(server, 'host1'))
            # The filter ran for it: one decision for this server, made
            # for the host kvmplace asked Nova for, and it passed there.
            decisions = self.conductor.decisions(server['id'])
            self.assertEqual(1, len(decisions), decisions)
            shown = self.conductor.cli_json('decisions', 'show', decisions[0]['id'][:8])
            self.assertEqual(('live-migrate', 'host1', mig['dest']),
                             (shown['operation'], shown['source'], shown['best']))
            self.assertEqual([], shown['result']['rejected'])
            # ... and the conductor knew it for its own planned move.
            self.assertEqual((mig['id'], mig['dest']),
                             (shown['result']['planned']['migration_id'],
                              shown['result']['planned']['host']))
            self.assertEqual([mig['dest']], [r['host'] for r in shown['result']['ranked']])
        # One RPC call to kvmplace per Nova scheduling request.
        self.assertEqual(3, self.adapter.calls - calls_before)
        self.assertNotIn('KvmplaceFilter: host', self.stdlog.logger.output)

        # 4. What reached the agents: pinning on the source and verify on
        #    the destination, by libvirt domain name; nothing that moves or
        #    stops a guest.
        calls = [c for c in self.calls() if c['method'] != 'get_host_state']
        methods = {c['method'] for c in calls}
        self.assertLessEqual(methods, {'pre_pin', 'restore_pin', 'post_verify'}, calls)
        for server in self.servers:
            domain = self.admin_api.get_server(server['id'])['OS-EXT-SRV-ATTR:instance_name']
            mine = [(c['host'], c['method']) for c in calls
                    if c['kwargs'].get('instance') == domain]
            dest = migs[server['name']]['dest']
            self.assertEqual([('host1', 'pre_pin'), (dest, 'post_verify')], mine)
        for forbidden in ('migrate', 'abort', 'get_job', 'check_destination'):
            self.assertNotIn(forbidden, methods)
        # The records say the steps ran through the agent, not skipped.
        for mig in migs.values():
            text = json.dumps(self.conductor.cli_json('migrations', 'show', mig['id']))
            self.assertNotIn('skipped: no kvmplace agent', text)
