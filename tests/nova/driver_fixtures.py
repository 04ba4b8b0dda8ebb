"""Pieces for the Nova driver's tests (test_driver_*.py), on top of
tests/nova/fixtures.py.

The kvmplace conductor runs as its own process (``[conductor] driver =
nova``) and reaches Nova and Placement **over real HTTP**: :class:`HttpFront`
serves the harness's in-process nova-api and Placement (which the harness
itself reaches through wsgi-intercept) on 127.0.0.1 ports. The front stands
in for keystonemiddleware's auth_token: it adds the identity headers that
auth_token sets after checking a token (an admin service user), so kvmplace
is configured as a real deployment would be, minus Keystone: ``auth_type =
none`` and ``endpoint_override``. Stopping the front makes the APIs
unreachable for kvmplace (connection refused) while Nova goes on running.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import fixtures as fx
import requests

from tests.nova import fixtures as kfx

#: What auth_token would set for kvmplace's service user (admin).
NOVA_IDENTITY = {'X-Auth-User': 'admin', 'X-User-Id': 'admin', 'X-Auth-Project-Id': 'admin',
                 'X-Project-Id': 'admin', 'X-Roles': 'reader,member,admin'}
PLACEMENT_IDENTITY = {'X-Auth-Token': 'admin'}
_HOP = {'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host',
        'content-encoding'}


class HttpFront(fx.Fixture):
    """Serve ``target`` (an intercepted base URL) at http://127.0.0.1:PORT.

    Nova's harness runs under eventlet, so the front is eventlet's own WSGI
    server on a green socket (a thread blocked in select.poll would stop
    every green thread of the process, Nova included).
    """

    def __init__(self, target: str, identity: dict):
        super().__init__()
        self.target = target.rstrip('/')
        self.identity = identity
        self.port: Optional[int] = None
        self._green = None
        self._sock = None
        self.requests: list[tuple[str, str]] = []

    def _app(self, environ, start_response):
        method = environ['REQUEST_METHOD']
        path = environ.get('PATH_INFO', '')
        if environ.get('QUERY_STRING'):
            path += '?' + environ['QUERY_STRING']
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else None
        headers = {k[5:].replace('_', '-').title(): v for k, v in environ.items()
                   if k.startswith('HTTP_') and k[5:].replace('_', '-').lower() not in _HOP}
        if environ.get('CONTENT_TYPE'):
            headers['Content-Type'] = environ['CONTENT_TYPE']
        headers.update(self.identity)
        self.requests.append((method, path))
        resp = requests.request(method, self.target + path, data=body, headers=headers)
        out = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP]
        start_response(f'{resp.status_code} {resp.reason}', out)
        return [resp.content]

    def _setUp(self):
        self.start()
        self.addCleanup(self.stop)

    def start(self) -> None:
        import eventlet
        import eventlet.wsgi
        self._sock = eventlet.listen(('127.0.0.1', self.port or 0))
        self.port = self._sock.getsockname()[1]
        # No keep-alive: a pooled connection would outlive stop() and keep
        # serving, so "unreachable" would not be.
        self._green = eventlet.spawn(eventlet.wsgi.server, self._sock, self._app,
                                     log_output=False, keepalive=False)

    def stop(self) -> None:
        """Close the port (connection refused) until :meth:`start`, which
        opens the same port again."""
        if self._green is not None:
            self._green.kill()
            self._sock.close()
            self._green = self._sock = None

    def url(self, path: str = '') -> str:
        return f'http://127.0.0.1:{self.port}{path}'


class DriverConductor(kfx.KvmplaceConductor):
    """kvmplace-conductor with ``[conductor] driver = nova``; ready when it
    lists the cloud's compute hosts."""

    def __init__(self, transport_url: str, workdir: str, nova_url: str, placement_url: str,
                 extra: Optional[dict] = None):
        sections = {
            'conductor': {'driver': 'nova', 'monitor_interval_seconds': '1'},
            'nova': {'auth_type': 'none', 'endpoint_override': nova_url,
                     'inventory_interval_seconds': '2', 'poll_interval_seconds': '0.2',
                     'unreachable_timeout_seconds': '120'},
            'placement': {'endpoint_override': placement_url},
        }
        for section, opts in (extra or {}).items():
            sections.setdefault(section, {}).update(opts)
        super().__init__(transport_url, workdir, sections)

    def start(self) -> None:
        import subprocess
        argv = [kfx.kvmplace_python(), '-c', 'import sys; from kvmplace.cmd.conductor import '
                'main; sys.exit(main())', '--config-file', self.config_path]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.cli_json('hosts', 'list'):
                    return
            except AssertionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError('kvmplace-conductor did not start:\n' + self.log())
            time.sleep(0.5)


class DriverHarness(fx.Fixture):
    """Fronts for Nova and Placement, a private vhost and a driver=nova
    conductor, for a running Nova harness test case ``test``."""

    def __init__(self, test, extra: Optional[dict] = None):
        super().__init__()
        self.test = test
        self.extra = extra

    def _setUp(self):
        nova_base = self.test.api_fixture.base_url           # http://<host>:80/v2.1
        root, _, version = nova_base.rpartition('/')
        self.nova = self.useFixture(HttpFront(root, NOVA_IDENTITY))
        placement = self.test.placement_fixture.endpoint     # http://<uuid>/placement
        proot, _, pname = placement.rpartition('/')
        self.placement = self.useFixture(HttpFront(proot, PLACEMENT_IDENTITY))
        self.vhost = self.useFixture(kfx.PrivateVhost())
        # KVMPLACE_NOVA_KEEP=1 keeps the conductor's log and database.
        self.workdir = (kfx.tmpdir() if os.environ.get('KVMPLACE_NOVA_KEEP')
                        else self.useFixture(fx.TempDir()).path)
        self.conductor = self.useFixture(DriverConductor(
            self.vhost.url, self.workdir, self.nova.url(f'/{version}'),
            self.placement.url(f'/{pname}'), self.extra))


__all__ = ['HttpFront', 'DriverConductor', 'DriverHarness', 'NOVA_IDENTITY']
