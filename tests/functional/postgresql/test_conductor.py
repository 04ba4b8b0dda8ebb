"""The real kvmplace-conductor on PostgreSQL, driven over RabbitMQ.

One process, started the way an operator starts it (a config file with
``[database] connection = postgresql+psycopg2://...``), on a private
RabbitMQ vhost. It makes its schema at start; then an agent's report (a
cast, as kvmplace-agent sends it) and an operator's maintenance flag (a
call) must land in PostgreSQL - read back both over RPC and straight from
the database - and a request for an unknown guest must come back as the
conductor's one-line error.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Iterator

import pytest
import sqlalchemy as sa

from kvmplace.conductor import rpcapi
from kvmplace.exception import NotFound
from tests.functional.conftest import wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def conductor(pg_url: str, broker_url: str, client_conf,
              tmp_path) -> Iterator[rpcapi.ConductorAPI]:
    """A running kvmplace-conductor on ``pg_url``; its RPC client."""
    config = tmp_path / 'kvmplace.conf'
    config.write_text(f'[DEFAULT]\ntransport_url = {broker_url}\n\n'
                      f'[database]\nconnection = {pg_url}\n\n'
                      '[conductor]\nhost = pg-conductor\nnotifications = false\n')
    binary = os.path.join(os.path.dirname(sys.executable), 'kvmplace-conductor')
    with open(tmp_path / 'conductor.log', 'wb') as log:
        proc = subprocess.Popen([binary, '--config-file', str(config)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    api = rpcapi.ConductorAPI(conf=client_conf, timeout=5)

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / 'conductor.log').read_text()
        try:
            return api.list_hosts({}) == []
        except Exception:  # noqa: BLE001 - not serving yet (MessagingTimeout)
            return False
    try:
        wait_for(answers, 90, 'the conductor to answer on PostgreSQL', 0.5)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_reports_and_calls_are_recorded_in_postgresql(conductor: rpcapi.ConductorAPI,
                                                      pg_url: str) -> None:
    conductor.report_state({}, {'name': 'pg-h1', 'link_mbps': 10000, 'vcpus': 2,
                                'memory_mib': 1024, 'numa': [], 'instances': [],
                                'reported_at': time.time(), 'libvirt_uri': 'test:///default'})
    wait_for(lambda: [h['name'] for h in conductor.list_hosts({})] == ['pg-h1'], 60,
             'the report of pg-h1')
    conductor.set_maintenance({}, 'pg-h1', True, 'firmware')
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                'SELECT maintenance, maintenance_reason, state FROM hosts '
                "WHERE name = 'pg-h1'")).one()
    finally:
        engine.dispose()
    assert row.maintenance is True and row.maintenance_reason == 'firmware'
    assert row.state['memory_mib'] == 1024
    with pytest.raises(NotFound) as err:  # rebuilt from the conductor's reply
        conductor.migrate({}, 'no-such-guest')
    assert 'unknown instance "no-such-guest"' in str(err.value).splitlines()[0]


def test_only_rpc_methods_are_callable_and_refusals_leave_no_traceback(
        conductor: rpcapi.ConductorAPI, tmp_path) -> None:
    """Anyone on the bus is a client: internals of the conductor (learn,
    which would poison the learned path rates, notify_final, locate,
    start_migration, _drive...) are refused by the real process, and an
    expected error (InvalidInput, NotFound) is the caller's: no traceback
    in the conductor's log for it. (oslo.messaging itself logs a refused
    unknown method as an ERROR with its traceback: a probe is worth a line.)"""
    from oslo_messaging.rpc.dispatcher import NoSuchMethod
    import oslo_messaging as messaging
    from kvmplace.exception import InvalidInput
    forged = {'id': '00000000-0000-4000-8000-000000000001', 'source': 'a', 'dest': 'b',
              'policy': {}, 'estimate': {'inputs': {'memory_mib': 1024}},
              'result': {'status': 'completed', 'elapsed_seconds': 900.0,
                         'data_mib': 1024, 'memory_mib': 1024}}
    for method, kwargs in (('learn', {'rec': forged}), ('notify_final', {'record': forged}),
                           ('locate', {'instance': 'x', 'hosts': ['a']}),
                           ('start_migration', {'instance': 'x', 'dest': None,
                                                'policy': None}),
                           ('_drive', {'migration_id': forged['id']}), ('stop', {})):
        with pytest.raises((NoSuchMethod, messaging.RemoteError)) as err:
            conductor.client.prepare(version='1.1').call({}, method, **kwargs)
        kind = err.value.exc_type if isinstance(err.value, messaging.RemoteError) \
            else type(err.value).__name__
        assert kind == 'NoSuchMethod', (method, err.value)
    assert conductor.list_path_rates({}) == []
    assert conductor.list_hosts({}) == []            # still serving (stop was refused)
    before = len((tmp_path / 'conductor.log').read_text())
    with pytest.raises(InvalidInput) as bad:
        conductor.list_migrations({}, status='aborting')
    assert bad.value.field == 'status'
    with pytest.raises(NotFound):
        conductor.get_host({}, 'no-such-host')
    assert conductor.list_hosts({}) == []            # the log has caught up
    log = (tmp_path / 'conductor.log').read_text()[before:]
    assert 'Traceback' not in log and ' ERROR ' not in log, log
