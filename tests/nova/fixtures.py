"""Reusable pieces for tests that run kvmplace against the real Nova.

Nova's own functional harness (real nova-api, nova-conductor,
nova-scheduler and Placement in one process, SQLite, the fake virt driver)
plus a real ``kvmplace-conductor`` process on a private RabbitMQ virtual
host with its own SQLite database. Nothing here is mocked; what cannot
exist on one machine (hypervisors) is Nova's fake driver, Nova's choice.

These tests run in ``.nova-venv`` (tools/nova-venv.sh, tools/nova-tests.sh)
with ``python -m unittest``: Nova's TestCase clears its attributes in a
cleanup, which pytest's unittest plugin trips over.

Use::

    class MyTest(fixtures.KvmplaceNovaTestCase):
        COMPUTES = ('host1', 'host2', 'host3')
        def test_x(self):
            self.import_inventory({...})
            server = self._create_server(networks='none', host='host1')
            ...

Everything is skipped with the reason where RabbitMQ or rabbitmqctl is
missing (tools/services.sh starts RabbitMQ).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid as uuid_mod
from typing import Optional

import fixtures as fx
import oslo_messaging as messaging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKER = ('127.0.0.1', 5672)


def _port_open(addr) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


def broker_problem() -> Optional[str]:
    """Why a private vhost cannot be had here, or None."""
    if not _port_open(BROKER):
        return 'RabbitMQ is not listening on 127.0.0.1:5672 (tools/services.sh start)'
    if not shutil.which('rabbitmqctl') or os.geteuid() != 0:
        return 'needs root and rabbitmqctl to make a private vhost'
    return None


class PrivateVhost(fx.Fixture):
    """A RabbitMQ virtual host of one's own; ``url`` is its transport URL."""

    def _setUp(self):
        problem = broker_problem()
        if problem:
            raise unittest.SkipTest(problem)
        self.vhost = f'kvmplace-nova-{uuid_mod.uuid4().hex[:10]}'
        for argv in (['rabbitmqctl', 'add_vhost', self.vhost],
                     ['rabbitmqctl', 'set_permissions', '-p', self.vhost, 'guest',
                      '.*', '.*', '.*']):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        self.addCleanup(subprocess.run, ['rabbitmqctl', 'delete_vhost', self.vhost],
                        capture_output=True, timeout=60)
        self.url = f'rabbit://guest:guest@127.0.0.1:5672/{self.vhost}'


def kvmplace_python() -> str:
    """The interpreter that runs kvmplace's own processes (conductor, CLI):
    kvmplace's .venv when there is one (kvmplace and Nova installed apart,
    as in a cloud), else this one."""
    own = os.environ.get('KVMPLACE_PYTHON') or os.path.join(ROOT, '.venv', 'bin', 'python')
    return own if os.access(own, os.X_OK) else sys.executable


class KvmplaceConductor(fx.Fixture):
    """A real ``kvmplace-conductor`` process on ``transport_url``.

    ``config_path`` is its kvmplace.conf (broker, SQLite database), which the
    ``kvmplace`` CLI takes too; :meth:`stop` and :meth:`start` end and
    restart the process (by its pid) on the same database.
    """

    def __init__(self, transport_url: str, workdir: str, extra: Optional[dict] = None,
                 keys_dir: Optional[str] = None):
        super().__init__()
        self.transport_url = transport_url
        self.workdir = workdir
        self.extra = extra or {}
        #: With ``keys_dir`` (:func:`make_keys`), the conductor requires
        #: signed messages ([message_auth] required = true) and takes them
        #: from the operators there: the CLI and call() sign as "cli".
        self.keys_dir = keys_dir
        self.proc: Optional[subprocess.Popen] = None
        self._client = None
        self._transport = None

    def _setUp(self):
        self.config_path = os.path.join(self.workdir, 'kvmplace.conf')
        self.log_path = os.path.join(self.workdir, 'kvmplace-conductor.log')
        self.db_path = os.path.join(self.workdir, 'kvmplace.sqlite')
        sections = {
            'DEFAULT': {'transport_url': self.transport_url, 'debug': 'true',
                        'log_file': self.log_path},
            'conductor': {'host': 'nova-test-conductor', 'notifications': 'false'},
            'database': {'connection': f'sqlite:///{self.db_path}'},
        }
        self.cli_configs: list[str] = []
        if self.keys_dir:
            sections['message_auth'] = {
                'required': 'true',
                'operator_keys_dir': os.path.join(self.keys_dir, 'operators'),
                'host_keys_dir': os.path.join(self.keys_dir, 'hosts')}
            cli_config = os.path.join(self.workdir, 'cli.conf')
            _write_conf(cli_config, {'message_auth': {'private_key_file': self.cli_key()}})
            self.cli_configs = ['--config-file', cli_config]
        for section, opts in self.extra.items():
            sections.setdefault(section, {}).update(opts)
        _write_conf(self.config_path, sections)
        self.addCleanup(self._close_client)
        self.addCleanup(self.stop)
        self.start()

    def start(self) -> None:
        argv = [kvmplace_python(), '-c', 'import sys; from kvmplace.cmd.conductor import main; '
                'sys.exit(main())', '--config-file', self.config_path]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.call('list_facts', timeout=2)
                return
            except (messaging.MessagingTimeout, messaging.MessageDeliveryFailure) as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError('kvmplace-conductor did not start:\n'
                                         + self.log()) from exc

    def call(self, method: str, timeout: float = 30, **kwargs):
        """Call the conductor's ``kvmplace-nova`` namespace directly (what
        the CLI's decisions/hosts commands call), without a CLI process."""
        if self._client is None:
            # The process's CONF (Nova's, in the harness): oslo.messaging
            # registers some of its options only there.
            from oslo_config import cfg
            conf = cfg.CONF
            self._transport = messaging.get_rpc_transport(conf, url=self.transport_url)
            self._client = messaging.get_rpc_client(self._transport, messaging.Target(
                exchange='openstack', topic='kvmplace-conductor', namespace='kvmplace-nova',
                version='1.0'))
            if self.keys_dir:
                from kvmplace.nova import adapter as adapter_mod
                self._client = adapter_mod._signed(self._client, self.cli_key())
        return self._client.prepare(timeout=timeout, retry=0).call({}, method, **kwargs)

    def _close_client(self) -> None:
        if self._client is not None:
            self._transport.cleanup()
            self._client = None

    def cli_key(self) -> str:
        return os.path.join(self.keys_dir or '', 'operators', 'cli.key')

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as fh:
                return fh.read()
        except OSError:
            return ''

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Run ``kvmplace --config-file <conductor's conf> ARGS``; its stdout."""
        argv = [kvmplace_python(), '-c', 'import sys; from kvmplace.cmd.kvmplace import main; '
                'sys.exit(main())', '--config-file', self.config_path, *self.cli_configs,
                *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AssertionError(f'kvmplace {" ".join(args)} exited {proc.returncode}: '
                                 f'{proc.stderr.strip()}')
        return proc.stdout

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, '-f', 'json'))

    def import_inventory(self, inventory: dict) -> dict:
        path = os.path.join(self.workdir, f'inventory-{uuid_mod.uuid4().hex[:6]}.json')
        with open(path, 'w', encoding='utf-8') as fh:
            json.dump(inventory, fh)
        return self.cli_json('hosts', 'import', path)

    def decisions(self, instance_uuid: Optional[str] = None) -> list[dict]:
        """What ``kvmplace decisions list [--instance UUID] -f json`` prints."""
        return self.call('list_decisions', instance_uuid=instance_uuid)


def inventory_host(name: str, link_mbps: float = 10000, health: float = 1.0,
                   nodes: int = 2, memory_mib: int = 65536) -> dict:
    """One host in the inventory format, every NUMA node at ``health``."""
    per_node = memory_mib // nodes
    return {'name': name, 'link_mbps': link_mbps, 'vcpus': 16 * nodes, 'vcpus_used': 0,
            'memory_mib': memory_mib, 'memory_used_mib': 0,
            'numa': [{'id': i, 'cpus': f'{16 * i}-{16 * i + 15}', 'memory_mib': per_node,
                      'free_memory_mib': per_node,
                      'bandwidth_mibps': 27000 * health, 'baseline_mibps': 27000}
                     for i in range(nodes)]}


def star(hosts: list[dict], switch: str = 'tor-1') -> dict:
    """An inventory: ``hosts`` each on one link (its link_mbps) to ``switch``."""
    return {'hosts': hosts,
            'links': [{'a': h['name'], 'b': switch, 'mbps': h['link_mbps']} for h in hosts]}


def nova_harness_base():
    """Nova's _IntegratedTestBase, with the three workarounds OPENSTACK.md
    records applied; imported lazily so this module loads without Nova."""
    from nova.tests.functional import integrated_helpers

    class Base(integrated_helpers._IntegratedTestBase):
        compute_driver = 'fake.MediumFakeDriver'
        ADMIN_API = True
        microversion = 'latest'
        # Casts stay casts, as in a cloud: a live migration's NoValidHost
        # then ends in the migration record, not in the API's answer.
        CAST_AS_CALL = False
        #: Nova compute host names started (instead of the harness's 'compute').
        COMPUTES: tuple[str, ...] = ()

        def setup_before_scheduler(self) -> None:
            """Set flags nova-scheduler reads at start (enabled_filters...)."""

        def setUp(self):
            paste = _api_paste_ini()
            if paste:
                self.flags(api_paste_config=paste, group='wsgi')
            super().setUp()

        def _setup_compute_service(self):
            # Only the named computes: the harness's default 'compute' would
            # be one more candidate kvmplace knows nothing about.
            return None

        def _setup_services(self):
            self.setup_before_scheduler()
            super()._setup_services()
            for name in self.COMPUTES:
                self._start_compute(name)

    return Base


def _api_paste_ini() -> Optional[str]:
    """Nova's api-paste.ini: pip puts it under the environment's etc/nova/."""
    for base in (sys.prefix, os.path.dirname(os.path.dirname(sys.executable))):
        path = os.path.join(base, 'etc', 'nova', 'api-paste.ini')
        if os.path.exists(path):
            return path
    return None


class KvmplaceNova(fx.Fixture):
    """A private vhost + a real kvmplace-conductor + nova.conf's [kvmplace]
    and [filter_scheduler] lines, as doc/source/user/nova.rst gives them.

    ``test`` is the Nova test case (for ``flags``). After setUp,
    ``self.adapter`` is the nova-scheduler process's kvmplace adapter
    (``.calls`` counts its RPC calls) and ``self.conductor`` the conductor.
    """

    def __init__(self, test, enabled: bool = True, **kvmplace_flags):
        super().__init__()
        self.test = test
        self.enabled = enabled
        self.kvmplace_flags = kvmplace_flags

    def _setUp(self):
        from kvmplace.nova import adapter as adapter_mod
        from kvmplace.nova import conf as kconf
        from nova import conf as nova_conf
        self.vhost = self.useFixture(PrivateVhost())
        # KVMPLACE_NOVA_KEEP=1 keeps the conductor's log and database.
        self.workdir = (tmpdir() if os.environ.get('KVMPLACE_NOVA_KEEP')
                        else self.useFixture(fx.TempDir()).path)
        # Signed messages required, as in production (security.rst): the
        # conductor takes operators "cli" (CLI, call()) and "nova-scheduler".
        keys_dir = make_keys(self.workdir)
        self.conductor = self.useFixture(KvmplaceConductor(self.vhost.url, self.workdir,
                                                           keys_dir=keys_dir))
        kconf.register_opts(nova_conf.CONF)
        flags = {'transport_url': self.vhost.url, 'timeout_seconds': 5.0,
                 'message_auth_private_key_file': os.path.join(
                     keys_dir, 'operators', 'nova-scheduler.key')}
        flags.update(self.kvmplace_flags)
        self.test.flags(group='kvmplace', **flags)
        configure_scheduler(self.test, self.enabled)
        self.adapter = adapter_mod.Adapter(nova_conf.CONF)
        adapter_mod.reset_adapter(self.adapter)
        self.addCleanup(adapter_mod.reset_adapter, None)
        self.addCleanup(self._cleanup_transport)

    def _cleanup_transport(self):
        client = self.adapter._client
        if client is not None:
            client.transport.cleanup()


def configure_scheduler(test, enabled: bool) -> None:
    """nova.conf's [filter_scheduler] with kvmplace (or without: filter not
    enabled, weigher multiplier 0 - Nova's own choice)."""
    from nova import conf as nova_conf
    conf = nova_conf.CONF
    filters = list(conf.filter_scheduler.enabled_filters)
    filters = [f for f in filters if f != 'KvmplaceFilter']
    if enabled:
        filters.append('KvmplaceFilter')
    test.flags(group='filter_scheduler',
               available_filters=['nova.scheduler.filters.all_filters',
                                  'kvmplace.nova.scheduler.KvmplaceFilter'],
               enabled_filters=filters,
               weight_classes=['nova.scheduler.weights.all_weighers',
                               'kvmplace.nova.scheduler.KvmplaceWeigher'])
    if not enabled:
        test.flags(group='kvmplace', weight_multiplier=0.0)


def _write_conf(path: str, sections: dict) -> None:
    with open(path, 'w', encoding='utf-8') as fh:
        for section, opts in sections.items():
            fh.write(f'[{section}]\n')
            fh.writelines(f'{k} = {val}\n' for k, val in opts.items())
            fh.write('\n')


def make_keys(workdir: str) -> str:
    """Operators "cli" and "nova-scheduler"'s key pairs (kvmplace.msgauth)
    and an empty host key directory, under ``workdir``/keys."""
    from kvmplace import msgauth
    keys_dir = os.path.join(workdir, 'keys')
    for name in ('cli', 'nova-scheduler'):
        msgauth.create_keypair(os.path.join(keys_dir, 'operators'), name)
    os.makedirs(os.path.join(keys_dir, 'hosts'), exist_ok=True)
    return keys_dir


def tmpdir() -> str:
    return tempfile.mkdtemp(prefix='kvmplace-nova-', dir='/var/tmp')


__all__ = ['PrivateVhost', 'KvmplaceConductor', 'KvmplaceNova', 'nova_harness_base',
           'inventory_host', 'star', 'configure_scheduler', 'broker_problem',
           'messaging']
