"""Fixtures for functional tests: real RabbitMQ, real libvirtd, real QEMU.

Each test module gets its own RabbitMQ virtual host, so casts to the shared
topic ``kvmplace-conductor-reports`` cannot be consumed by a conductor another test
session runs on the same broker, and nothing stays behind. Guests run on the
root namespace's libvirtd (``qemu:///system``) under unique names.
Everything is skipped, with the reason, where a component is missing.
"""
from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid as uuid_mod

import oslo_messaging as messaging
import pytest

import kvmplace.conf
from kvmplace import rpc

BROKER = ('127.0.0.1', 5672)
_MESSAGING_OPTS = [
    ('oslo_messaging.transport', '_transport_opts', None),
    ('oslo_messaging.rpc.client', '_client_opts', None),
    ('oslo_messaging.rpc.dispatcher', '_dispatcher_opts', None),
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics', 'oslo_messaging_metrics'),
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing', 'oslo_messaging_tracing'),
]


def register_messaging_opts(conf) -> None:
    """oslo.messaging registers some options only on the global CONF
    (LAB.md); a private ConfigOpts used for RPC needs them too."""
    for module, attr, group in _MESSAGING_OPTS:
        conf.register_opts(getattr(importlib.import_module(module), attr), group=group)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll ``predicate`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout_s:.0f} s waiting for {what}')
        time.sleep(interval_s)


def _port_open(addr) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope='module')
def broker_url():
    """A private RabbitMQ vhost for this module: rabbit://.../<vhost>."""
    if not _port_open(BROKER):
        pytest.skip('RabbitMQ is not listening on 127.0.0.1:5672 (tools/services.sh start)')
    if not shutil.which('rabbitmqctl') or os.geteuid() != 0:
        pytest.skip('needs root and rabbitmqctl to make a private vhost')
    vhost = f'kvmplace-test-{uuid_mod.uuid4().hex[:10]}'
    for argv in (['rabbitmqctl', 'add_vhost', vhost],
                 ['rabbitmqctl', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    yield f'rabbit://guest:guest@127.0.0.1:5672/{vhost}'
    subprocess.run(['rabbitmqctl', 'delete_vhost', vhost], capture_output=True, timeout=60)


@pytest.fixture(scope='module')
def client_conf(broker_url):
    """The test's own side of RPC (a private ConfigOpts)."""
    yield from make_client_conf(broker_url)


def make_client_conf(broker_url: str, lab_keys: bool = False):
    """A private ConfigOpts on ``broker_url``; with ``lab_keys``, it plays
    the lab's conductor for message authentication (kvmplace.msgauth):
    signs with the lab's conductor key - what the lab's agents obey - and
    believes the lab's hosts and operators."""
    conf = kvmplace.conf.new_conf()
    register_messaging_opts(conf)
    conf.set_override('transport_url', broker_url)
    if lab_keys:
        use_lab_keys(conf, 'conductor')
    yield conf
    transport = rpc._TRANSPORTS.pop(id(conf), None)
    if transport is not None:
        transport.cleanup()


def use_lab_keys(conf, role: str) -> None:
    """Sign as the lab's ``conductor`` or operator ``lab``, and trust the
    lab's keys (kvmplace.lab.services writes them with the configs)."""
    from kvmplace.lab import services
    private = services.CONDUCTOR_KEY if role == 'conductor' else services.OPERATOR_KEY
    for name, value in (('private_key_file', private),
                        ('conductor_public_key_file', services.CONDUCTOR_PUBLIC_KEY),
                        ('operator_keys_dir', services.OPERATOR_KEYS_DIR),
                        ('host_keys_dir', services.HOST_KEYS_DIR)):
        conf.set_override(name, value, group='message_auth')


class RecordingConductor:
    """RPC endpoint on topic kvmplace-conductor-reports (where agents cast)
    that keeps every cast."""

    target = messaging.Target(version='1.0')

    def __init__(self):
        self.casts: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def _keep(self, name: str, **kwargs) -> None:
        with self.lock:
            self.casts.append((name, kwargs))

    def report_state(self, ctxt, host_state):
        self._keep('report_state', host_state=host_state)

    def migration_progress(self, ctxt, migration_id, progress):
        self._keep('migration_progress', migration_id=migration_id, progress=progress)

    def migration_finished(self, ctxt, migration_id, result):
        self._keep('migration_finished', migration_id=migration_id, result=result)

    def named(self, name: str, **match) -> list[dict]:
        with self.lock:
            return [kw for n, kw in self.casts if n == name and
                    all(kw.get(k) == v for k, v in match.items())]


@pytest.fixture(scope='module')
def conductor(client_conf):
    endpoint = RecordingConductor()
    server = rpc.get_server(rpc.CONDUCTOR_REPORTS_TOPIC, 'test-conductor', [endpoint],
                            conf=client_conf)
    server.start()
    yield endpoint
    server.stop()
    server.wait()


def agent_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), 'kvmplace-agent')
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-c', 'import sys; from kvmplace.cmd.agent import main; '
                                  'sys.exit(main())']


class AgentProcess:
    """A kvmplace-agent process started by a test, ended by its pid."""

    def __init__(self, config_path: str | list[str], log_path: str):
        self.log_path = log_path
        paths = [config_path] if isinstance(config_path, str) else config_path
        argv = agent_command() + [arg for path in paths for arg in ('--config-file', path)]
        with open(log_path, 'ab') as log:
            self.proc = subprocess.Popen(argv,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        with open(self.log_path, encoding='utf-8', errors='replace') as fh:
            return fh.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def write_agent_config(path, broker_url: str, **agent_opts) -> str:
    lines = ['[DEFAULT]', f'transport_url = {broker_url}', '', '[agent]']
    lines += [f'{k} = {v}' for k, v in agent_opts.items()]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)
