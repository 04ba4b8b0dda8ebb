"""``kvmplace doctor``: what is misconfigured or broken, one line each.

Checks, in the order an operator would chase them: configuration and
plugins, the database, the message broker (TCP, then AMQP login), the
conductor, each agent's reports (stale or missing), the agents' clocks,
and libvirt on each host (through its agent, and directly where a URI is
given). Every check says ok or what is wrong and what to do.
"""
from __future__ import annotations

import time
from typing import Callable

from kvmplace.cli import base, client, render
from kvmplace.exception import KvmplaceError

CLOCK_SKEW_SECONDS = 5.0


def _check(results: list, name: str, fn: Callable[[], str | None]) -> bool:
    try:
        problem = fn()
    except KvmplaceError as exc:
        problem = ' '.join(str(exc).split())[:240]
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        problem = f'{type(exc).__name__}: {" ".join(str(exc).split())[:200]}'
    results.append({'check': name, 'ok': problem is None, 'detail': problem or 'ok'})
    return problem is None


class Doctor(base.Lister):
    """Tell what is misconfigured: broker, database, conductor, agents, clocks, libvirt."""

    def add_arguments(self, parser):
        parser.add_argument('--libvirt-uri', action='append', default=[], metavar='URI',
                            help='also check this libvirt URI directly (repeatable)')
        parser.add_argument('--timeout', type=float, default=5.0, metavar='SECONDS',
                            help='per-check timeout (default 5)')
        return parser

    def compute(self, args):
        conf = self.app.conf
        results: list[dict] = []
        _check(results, 'config', lambda: None if self.app.options.config_file else
               'no --config-file given: using defaults only')

        def plugins():
            from kvmplace.scheduler import manager
            manager.SchedulerManager(conf)
            return None
        _check(results, 'plugins', plugins)

        def database():
            import sqlalchemy as sa
            from kvmplace.conductor.db import api
            url = sa.engine.make_url(conf.database.connection)
            if url.get_backend_name() == 'sqlite' and url.database not in (None, '', ':memory:'):
                import os
                if not os.path.exists(url.database):
                    return (f'{url.database} does not exist (the conductor creates it; '
                            'is this the conductor\'s configuration?)')
            db = api.Database(conf.database.connection)
            with db.session() as s:
                s.execute(sa.text('SELECT 1'))
            return None
        _check(results, 'database', database)
        if results[-1]['ok']:
            _leases(results, conf)

        from kvmplace import rpc
        broker_ok = _check(results, 'broker', lambda: rpc.broker_problem(conf, args.timeout))
        if broker_ok:
            broker_ok = _check(results, 'broker-login', lambda: _amqp_login(conf, args.timeout))
        hosts = None
        if broker_ok:
            api = None

            def conductor():
                nonlocal hosts, api
                from kvmplace.conductor import rpcapi
                api = rpcapi.ConductorAPI(conf=conf, timeout=max(1, int(args.timeout)))
                try:
                    hosts = client.call(api.list_hosts)
                except KvmplaceError as exc:
                    if 'did not answer' in str(exc):
                        return ('no conductor answers on topic kvmplace-conductor: is '
                                'kvmplace-conductor running with this transport_url?')
                    raise
                return None
            _check(results, 'conductor', conductor)
        if hosts is not None:
            if not hosts:
                results.append({'check': 'agents', 'ok': False,
                                'detail': 'no agent has ever reported: start kvmplace-agent '
                                          'on each compute host'})
            for h in hosts:
                _check(results, f'agent {h["name"]}', lambda h=h: None if h['up'] else (
                    f'not reporting for {h["seconds_since_report"]:.0f} s (host_down_seconds '
                    f'{conf.scheduler.host_down_seconds}): is kvmplace-agent running there?'
                    if h['seconds_since_report'] is not None else 'never reported'))
            from kvmplace.agent import rpcapi as agent_rpcapi
            agents = agent_rpcapi.AgentAPI(conf=conf, timeout=max(1, int(args.timeout)))
            for h in hosts:
                if not h['up']:
                    continue
                _check(results, f'libvirt {h["name"]}', lambda h=h: _agent_libvirt(agents, h))
                _check(results, f'clock {h["name"]}', lambda h=h: _clock(api, h))
        for uri in args.libvirt_uri:
            _check(results, f'libvirt {uri}', lambda uri=uri: _libvirt(uri))
        return {'ok': all(r['ok'] for r in results), 'checks': results}

    def rows(self, data):
        return ['check', 'ok', 'detail'], [
            [r['check'], render.Cell(r['ok'], 'ok' if r['ok'] else 'FAIL'),
             render.Cell(r['detail'], '' if r['ok'] else render.safe(r['detail']))]
            for r in data['checks']]

    def table_notes(self, data):
        failed = sum(1 for r in data['checks'] if not r['ok'])
        return [f"kvmplace doctor: {len(data['checks'])} checks, {failed} failed"]

    def run(self, parsed_args) -> int:
        # The report is the answer (stdout, for monitoring); a failed check
        # exits 1 without an error line.
        super().run(parsed_args)
        return 0 if self.document['ok'] else 1


def _amqp_login(conf, timeout: float) -> str | None:
    import kombu
    import oslo_messaging as messaging
    url = messaging.TransportURL.parse(conf, conf.transport_url)
    host = url.hosts[0]
    ssl = None
    try:
        if conf.oslo_messaging_rabbit.ssl:
            ssl = True
    except Exception:  # noqa: BLE001 - rabbit options not registered
        ssl = None
    conn = kombu.Connection(hostname=host.hostname, port=host.port or 5672,
                            userid=host.username or 'guest', password=host.password or 'guest',
                            virtual_host=url.virtual_host or '/', connect_timeout=timeout,
                            ssl=ssl)
    try:
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - classify for the operator
        text = str(exc)
        if 'ACCESS_REFUSED' in text or 'auth' in text.lower():
            return 'the broker refused the login in transport_url (user or password wrong)'
        return f'AMQP handshake failed: {text.splitlines()[0][:150]}'
    finally:
        conn.release()
    return None


def _agent_libvirt(agents, host: dict) -> str | None:
    from kvmplace.exception import MessageAuthFailed
    try:
        state = agents.get_host_state({}, host['name'])
    except MessageAuthFailed as exc:
        # Agents obey the conductor's key only (security.rst).
        return (f'{exc}: agents answer only the conductor\'s key; run kvmplace doctor '
                'with the conductor\'s configuration to check them')
    if not state.get('libvirt_uri'):
        return 'the agent answers but reports no libvirt connection'
    return None


def _clock(api, host: dict) -> str | None:
    detail = client.call(api.get_host, host['name'])
    agent_time = (detail.get('state') or {}).get('reported_at')
    if agent_time is None:
        return None
    received = time.time() - (detail.get('seconds_since_report') or 0.0)
    skew = agent_time - received
    if abs(skew) > CLOCK_SKEW_SECONDS:
        return (f'clock differs from this machine by {skew:+.1f} s: fix NTP; host '
                'liveness and migration times are judged by timestamps')
    return None


def _libvirt(uri: str) -> str | None:
    import libvirt
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        return f'cannot connect: {str(exc).splitlines()[0]}'
    try:
        conn.getHostname()
    finally:
        conn.close()
    return None


def _leases(results: list, conf) -> None:
    """Which conductor owns what, and when its lease expires
    (kvmplace.conductor.leases); a failure when a lease expired and no
    conductor adopted the record."""
    from kvmplace.conductor import leases
    from kvmplace.conductor.db import api
    detail = None

    def check() -> str | None:
        nonlocal detail
        entries = leases.owners(api.Database(conf.database.connection), time.time())
        detail = '; '.join(
            f"{e['owner'] or 'no conductor'} owns {e['migrations']} migrations and "
            f"{e['drains']} drains, lease expires in {e['expires_in_seconds']} s"
            for e in entries) or 'no active migration or drain'
        return leases.describe(entries)
    if _check(results, 'leases', check):
        results[-1]['detail'] = detail
