"""The conductor's records on PostgreSQL: schema and every operation.

The documentation says any SQLAlchemy URL works; until these tests, only
SQLite ran. PostgreSQL differs where it matters to kvmplace: it enforces
column types and lengths, compares timestamps as timestamps, and runs
transactions side by side instead of one at a time. The schema is made
the way the conductor makes it at start (Database.upgrade, then
check_writable, as kvmplace.conductor.service.build does), so the alembic
revisions themselves are under test too.
"""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from kvmplace.conductor import validate
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import DatabaseError, InvalidInput, KvmplaceError, NotFound

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def db(pg_url: str) -> db_api.Database:
    """A database brought to the newest revision by the conductor's code."""
    d = db_api.Database(pg_url)
    d.upgrade()
    d.check_writable()
    yield d
    d.engine.dispose()


def _head() -> str:
    scripts = os.path.join(os.path.dirname(db_api.__file__), 'alembic')
    return ScriptDirectory(scripts).get_current_head()


def test_upgrade_reaches_head_and_is_idempotent(db: db_api.Database) -> None:
    db.upgrade()  # a restarting conductor upgrades again: nothing to do, no error
    with db.engine.connect() as conn:
        assert conn.execute(sa.text('SELECT version_num FROM alembic_version')).scalar() == _head()
        assert db.engine.dialect.name == 'postgresql'
        tables = set(sa.inspect(conn).get_table_names())
    assert {'hosts', 'migrations', 'migration_steps', 'drains', 'path_throughput'} <= tables


def test_hosts(db: db_api.Database) -> None:
    state = {'name': 'h1', 'memory_mib': 2 ** 40, 'numa': [{'id': 0, 'cpus': '0-3'}],
             'note': 'Grüße, 主机'}
    db.report_host('h1', state, 1700000000.125)
    db.report_host('h0', {'name': 'h0'}, 1.0)
    assert [h['name'] for h in db.list_hosts()] == ['h0', 'h1']
    row = db.get_host('h1')
    assert row['state'] == state and row['reported_at'] == 1700000000.125
    db.set_maintenance('h1', True, 'new DIMMs')
    assert db.get_host('h1')['maintenance'] is True
    db.set_maintenance('h1', False, 'ignored when off')
    row = db.get_host('h1')
    assert row['maintenance'] is False and row['maintenance_reason'] is None
    with pytest.raises(NotFound):
        db.get_host('nope')


def test_migration_steps_and_events(db: db_api.Database) -> None:
    rec = db.create_migration('vm1', 'h1', 'h2', {'max_downtime_ms': 300}, conductor='c1',
                              instance_uuid='6f1c3c1e-0000-4000-8000-000000000001')
    assert rec['status'] == 'queued' and rec['attempts'] == []
    with pytest.raises(KvmplaceError, match='already migrating'):
        db.create_migration('vm1', 'h1', None, {})
    step = db.add_step(rec['id'], 'check_destination', 'h2')
    db.finish_step(step, 'ok', data={'cpus': '0-1'})
    db.add_step(rec['id'], 'abort_requested', None, finished=True)  # an event
    db.update_migration(rec['id'], status='migrating', dest='h2')
    done = db.update_migration(rec['id'], status='completed', result={'downtime_ms': 41})
    assert done['started_at'] and done['finished_at'] >= done['started_at']
    full = db.get_migration(rec['id'][:8])  # operators paste short ids
    assert [(s['seq'], s['name'], s['status']) for s in full['steps']] == [
        (0, 'check_destination', 'ok'), (1, 'abort_requested', 'running')]
    assert full['steps'][0]['data'] == {'cpus': '0-1'}
    assert full['steps'][1]['finished_at'] is not None
    again = db.create_migration('vm1', 'h2', None, {})  # finished: a new one may start
    assert [m['id'] for m in db.unfinished_migrations()] == [again['id']]
    assert [m['id'] for m in db.list_migrations(status='completed')] == [rec['id']]
    assert len(db.list_migrations(instance='vm1')) == 2


def test_drains(db: db_api.Database) -> None:
    drain = db.create_drain('drain', 'h1', {'initial': {'migrations': []}})
    with pytest.raises(KvmplaceError, match=f'already draining \\(drain {drain["id"]}\\)'):
        db.create_drain('drain', 'h1', {})
    other = db.create_drain('rebalance', None, {'moves': []})
    db.update_drain(drain['id'], status='completed')
    assert db.get_drain(drain['id'])['finished_at'] is not None
    assert [d['id'] for d in db.list_drains(status='running')] == [other['id']]
    db.create_drain('drain', 'h1', {})  # the first one ended: h1 may drain again


def test_path_throughput(db: db_api.Database) -> None:
    db.record_path_rate('h1', 'h2', 100.0, 0.5, None)
    row = db.record_path_rate('h1', 'h2', 200.0, 0.5, 'm-2')
    assert row['mibps'] == pytest.approx(150.0) and row['samples'] == 2
    assert row['last_mibps'] == 200.0 and row['last_migration_id'] == 'm-2'
    db.record_path_rate('h2', 'h1', 90.5, 0.5)
    assert db.path_rates() == {('h1', 'h2'): pytest.approx(150.0), ('h2', 'h1'): 90.5}
    assert [(r['source'], r['dest']) for r in db.list_path_rates()] == [('h1', 'h2'),
                                                                         ('h2', 'h1')]


def test_overlapping_migrations(db: db_api.Database) -> None:
    def started(instance: str, source: str, dest: str) -> str:
        mid = db.create_migration(instance, source, dest, {})['id']
        db.update_migration(mid, status='migrating', dest=dest)
        return mid

    a = started('vm-a', 'h1', 'h2')
    b = started('vm-b', 'h2', 'h3')      # shares h2 with a, both running
    c = started('vm-c', 'h4', 'h5')      # shares nothing
    assert {m['id'] for m in db.overlapping_migrations(a)} == {b}
    db.update_migration(a, status='completed')
    later = started('vm-d', 'h1', 'h3')  # started after a finished
    assert {m['id'] for m in db.overlapping_migrations(a)} == {b}
    assert {m['id'] for m in db.overlapping_migrations(later)} == {b}
    assert db.overlapping_migrations(c) == []
    queued = db.create_migration('vm-e', 'h1', None, {})['id']
    assert db.overlapping_migrations(queued) == []  # never started: nothing to compare


def test_text_postgresql_cannot_store_is_refused_in_one_line(db: db_api.Database) -> None:
    """PostgreSQL enforces column lengths (SQLite does not) and takes no NUL
    in text. The RPC boundary refuses both before the database sees them;
    a length that still gets through is a DatabaseError line."""
    db.report_host('h1', {}, 1.0)
    for bad in ('a\x00b', 'x' * 256):
        with pytest.raises(InvalidInput, match='without NUL'):
            validate.text('reason', bad)
    with pytest.raises(DatabaseError, match='value too long for type character varying'):
        db.set_maintenance('h1', True, 'x' * 256)
    assert db.get_host('h1')['maintenance'] is False  # rolled back
