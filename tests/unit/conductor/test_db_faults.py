"""The conductor's database on a full, read-only or corrupt disk.

What must hold (issue 6/7, fault tolerance): a write that cannot be made
is one clear error line (DatabaseError, which reaches the CLI as
``kvmplace: error: ...``), the records written before stay intact
(SQLite's integrity check passes), the conductor refuses to start on a
database it cannot write, and a migration or drain that was running when
the database failed is resumed - not abandoned - once it works again.

The real thing (a full tmpfs under a running conductor, a read-only
mount at start) is tests/integration/test_faults.py; here SQLite's own
limits make the same errors deterministic: ``max_page_count`` makes it
report "database or disk is full", ``query_only`` "attempt to write a
readonly database".
"""
from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import event

from kvmplace import conf as kconf
from kvmplace.conductor import drain as drain_exec
from kvmplace.conductor import manager as cm
from kvmplace.conductor import service
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import DatabaseError, KvmplaceError
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import _host, wait_final


def _pragma(db: db_api.Database, statement: str) -> None:
    """Run ``statement`` on every connection from now on (pooled ones are
    closed so that they reconnect through the listener)."""
    event.listen(db.engine, 'connect', lambda conn, _rec: conn.execute(statement))
    db.engine.dispose()


def _integrity(path) -> str:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        conn.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and '\n' not in text and 'Traceback' not in text, text
    return text


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / 'k.sqlite'


@pytest.fixture
def db(db_path):
    d = db_api.Database(f'sqlite:///{db_path}')
    d.upgrade()
    return d


def test_a_full_database_fails_one_write_cleanly_and_keeps_the_rest(db, db_path):
    kept = db.create_migration('vm0', 'h1', None, {'max_downtime_ms': 300})
    db.update_migration(kept['id'], status='completed', result={'status': 'completed'})
    db.add_step(kept['id'], 'migrate', 'h1', status='ok', finished=True)
    with db.engine.connect() as conn:
        pages = conn.exec_driver_sql('PRAGMA page_count').scalar()
    _pragma(db, f'PRAGMA max_page_count = {pages + 2}')
    created = []
    with pytest.raises(DatabaseError) as err:
        for i in range(1000):              # until the file cannot grow
            created.append(db.create_migration(f'vm{i + 1}', 'h1', None, {})['id'])
            db.report_host(f'h{i}', {'name': f'h{i}', 'pad': 'x' * 3000}, 1.0)
    message = _one_line(err.value)
    assert 'database or disk is full' in message
    assert str(db_path) in message
    # What was committed before is all there, unchanged, and consistent.
    again = db.get_migration(kept['id'])
    assert again['status'] == 'completed' and [s['name'] for s in again['steps']] == ['migrate']
    for mid in created:
        assert db.get_migration(mid)['status'] == 'queued'
    assert _integrity(db_path) == 'ok'


def test_the_conductor_refuses_to_start_on_a_read_only_database(db, db_path, monkeypatch,
                                                                capsys):
    db.engine.dispose()
    original = db_api._sqlite_pragmas

    def read_only(dbapi_conn, record):
        original(dbapi_conn, record)
        dbapi_conn.execute('PRAGMA query_only = ON')
    monkeypatch.setattr(db_api, '_sqlite_pragmas', read_only)
    conf = kconf.new_conf()
    conf.set_override('connection', f'sqlite:///{db_path}', group='database')
    conf.set_override('host', 'unit-conductor', group='conductor')
    assert service.run(conf) == 1
    out, err = capsys.readouterr()
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith('kvmplace-conductor: error: cannot write to the database ')
    assert 'readonly' in err


def test_a_corrupt_database_file_is_one_line(tmp_path):
    path = tmp_path / 'corrupt.sqlite'
    path.write_bytes(b'this is not a database' * 200)
    bad = db_api.Database(f'sqlite:///{path}')
    with pytest.raises(DatabaseError) as err:
        bad.upgrade()
    assert 'file is not a database' in _one_line(err.value)
    with pytest.raises(DatabaseError):
        bad.list_migrations()


@pytest.fixture
def cloud():
    c = fakes.FakeCloud({'h1': _host(), 'h2': _host(), 'h3': _host(link=1000)})
    c.add_guest('vm1', 'h1')
    return c


class CastShim:
    """What RPC does to a cast: the sender never sees the receiver fail."""

    def __init__(self, manager):
        self.manager = manager

    def migration_progress(self, ctxt, migration_id, progress):
        try:
            self.manager.migration_progress(ctxt, migration_id, progress)
        except KvmplaceError:
            pass

    def migration_finished(self, ctxt, migration_id, result):
        try:
            self.manager.migration_finished(ctxt, migration_id, result)
        except KvmplaceError:
            pass


def _manager(db, cloud, **kwargs):
    conf = kconf.new_conf()
    conf.set_override('monitor_interval_seconds', 1, group='conductor')
    agents = fakes.FakeAgents(cloud, **kwargs)
    mgr = cm.ConductorManager(conf, db, agents)
    agents.conductor = CastShim(mgr)
    for name in cloud.hosts:
        mgr.report_state({}, agents.get_host_state({}, name))
    return mgr, agents


def test_a_read_only_database_refuses_new_migrations_in_one_line(db, db_path, cloud):
    mgr, _ = _manager(db, cloud)
    done = mgr.migrate({}, 'vm1', dest='h2')
    assert wait_final(mgr, done['id'])['status'] == 'completed'
    _pragma(db, 'PRAGMA query_only = ON')
    with pytest.raises(DatabaseError) as err:
        mgr.migrate({}, 'vm1', dest='h3')
    assert 'attempt to write a readonly database' in _one_line(err.value)
    # Reads still work, and the finished record is intact.
    assert mgr.get_migration({}, done['id'])['status'] == 'completed'
    assert [m['id'] for m in mgr.list_migrations({})] == [done['id']]
    mgr.stop()
    assert _integrity(db_path) == 'ok'


def test_a_migration_resumes_when_the_database_works_again(db, cloud, monkeypatch):
    """The agent finishes the copy while no write goes through: the
    workflow cannot record the result, nor a failure. It must not be
    abandoned half-way: once writes work again it resumes from the last
    committed status (as after a conductor restart), asks the agent, and
    the record ends completed - the guest is on the destination."""
    mgr, agents = _manager(db, cloud, migrate_seconds=1.0)
    broken = {'on': False, 'refused': []}

    def failing(method):
        def wrapper(*args, **kwargs):
            if broken['on']:
                broken['refused'].append(sorted(kwargs))
                raise DatabaseError('database sqlite:///k.sqlite: database or disk is full')
            return method(*args, **kwargs)
        return wrapper
    for name in ('update_migration', 'add_step', 'finish_step', 'create_migration'):
        monkeypatch.setattr(db, name, failing(getattr(db, name)))
    rec = mgr.migrate({}, 'vm1', dest='h2')
    deadline = time.monotonic() + 20
    while 'vm1' not in agents.jobs:                     # the copy has started
        assert time.monotonic() < deadline
        time.sleep(0.01)
    broken['on'] = True
    deadline = time.monotonic() + 20
    # Until the workflow has tried, and failed, to record the agent's result.
    while ['result'] not in broken['refused']:
        assert time.monotonic() < deadline, broken
        time.sleep(0.02)
    assert mgr.get_migration({}, rec['id'])['status'] == 'migrating'   # nothing recorded
    broken['on'] = False
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert cloud.guests['vm1']['host'] == 'h2'
    assert 'recovered' in [s['name'] for s in final['steps']]
    mgr.stop()


def test_a_drain_pauses_while_the_database_fails(db, cloud, monkeypatch):
    mgr, _ = _manager(db, cloud)
    record = db.create_drain('drain', 'h3', {'initial': {}})
    calls = {'n': 0}
    real_get = db.get_drain

    def flaky(drain_id):
        calls['n'] += 1
        if calls['n'] <= 2:
            raise DatabaseError('database sqlite:///k.sqlite: disk I/O error')
        return real_get(drain_id)
    monkeypatch.setattr(db, 'get_drain', flaky)
    executor = drain_exec.DrainExecutor(mgr, record['id'], poll_seconds=0.01)
    final = executor.run()
    # h3 runs no guest: once the database answered, the drain completed.
    assert final['status'] == 'completed', final
    assert calls['n'] >= 3
    mgr.stop()


def test_agent_casts_on_a_read_only_database_are_warned_once(db, cloud, caplog):
    """Reports keep coming while the disk is full: each is lost, but the
    log gets one warning line, not an ERROR traceback per report."""
    mgr, agents = _manager(db, cloud)
    _pragma(db, 'PRAGMA query_only = ON')
    with caplog.at_level('WARNING'):
        for _ in range(10):
            mgr.report_state({}, agents.get_host_state({}, 'h1'))
    lines = [r for r in caplog.records if 'not stored' in r.getMessage()]
    assert len(lines) == 1 and 'readonly' in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    mgr.stop()
