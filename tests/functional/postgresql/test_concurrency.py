"""Two conductors on one PostgreSQL database: the guards must hold there.

On SQLite one conductor is the rule, and Database's own lock serializes
"check, then insert" for a guest or a host. Two conductors sharing a
PostgreSQL database (two Database objects, two connection pools) do not
share that lock, and under READ COMMITTED neither sees the other's row
before it commits: both checks pass, both rows go in. So the database
itself must refuse the second running drain of a host and the second
active migration of a guest (partial unique indexes, revision 0003).

The first test makes the race happen every time rather than by chance:
one conductor's insert is held uncommitted while the other asks; the
other must wait for it (seen in pg_stat_activity, not assumed after a
sleep) and then be refused.
"""
from __future__ import annotations

import threading
import uuid
from typing import Callable, Iterator

import pytest
import sqlalchemy as sa

from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import models
from kvmplace.exception import KvmplaceError
from tests.functional.conftest import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def conductors(pg_url: str) -> Iterator[tuple[db_api.Database, db_api.Database]]:
    """Two Database objects on one database, as two conductors would have."""
    first = db_api.Database(pg_url)
    first.upgrade()
    second = db_api.Database(pg_url)
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def _waiting_on_a_lock(db: db_api.Database) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar())


def _race_with_uncommitted(db_a: db_api.Database, db_b: db_api.Database,
                           insert: sa.Insert, attempt: Callable[[], dict]) -> BaseException:
    """Hold ``insert`` uncommitted on conductor A while conductor B runs
    ``attempt``; commit A once B waits on it (or has finished: the bug).
    Returns what B raised."""
    outcome: dict = {}

    def run_b() -> None:
        try:
            outcome['result'] = attempt()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome['error'] = exc

    with db_a.engine.connect() as conn:
        trans = conn.begin()
        conn.execute(insert)
        b = threading.Thread(target=run_b)
        b.start()
        wait_for(lambda: outcome or _waiting_on_a_lock(db_a), 30,
                 'conductor B to wait for A\'s uncommitted row')
        trans.commit()
    b.join(30)
    assert 'result' not in outcome, f'both conductors got through: {outcome["result"]}'
    return outcome['error']


def test_a_second_conductor_cannot_drain_a_host_being_drained(conductors) -> None:
    db_a, db_b = conductors
    first = str(uuid.uuid4())
    insert = sa.insert(models.DrainRecord).values(
        id=first, kind='drain', host='h1', status='running', plan={},
        created_at=models.utcnow(), updated_at=models.utcnow())
    error = _race_with_uncommitted(db_a, db_b, insert,
                                   lambda: db_b.create_drain('drain', 'h1', {}))
    assert isinstance(error, KvmplaceError)
    assert str(error) == f'host "h1" is already draining (drain {first})'
    assert [d['id'] for d in db_a.list_drains(status='running')] == [first]


def test_a_second_conductor_cannot_migrate_a_guest_being_migrated(conductors) -> None:
    db_a, db_b = conductors
    first = str(uuid.uuid4())
    insert = sa.insert(models.MigrationRecord).values(
        id=first, instance='vm1', source='h1', status='migrating', policy={}, attempts=[],
        abort_requested=False, created_at=models.utcnow(), updated_at=models.utcnow())
    error = _race_with_uncommitted(db_a, db_b, insert,
                                   lambda: db_b.create_migration('vm1', 'h1', None, {}))
    assert isinstance(error, KvmplaceError)
    assert str(error) == f'instance "vm1" is already migrating (migration {first})'
    assert [m['id'] for m in db_a.unfinished_migrations()] == [first]


def test_many_threads_on_two_conductors_exactly_one_drain_wins(conductors) -> None:
    """The RPC threads of two conductors, released together, per host."""
    dbs = conductors
    threads_per_host = 8
    for host in (f'h{i}' for i in range(10)):
        barrier = threading.Barrier(threads_per_host)
        won: list[str] = []
        refused: list[str] = []
        other: list[BaseException] = []

        def ask(db: db_api.Database) -> None:
            barrier.wait()
            try:
                won.append(db.create_drain('drain', host, {})['id'])
            except KvmplaceError as exc:
                refused.append(str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported below
                other.append(exc)

        threads = [threading.Thread(target=ask, args=(dbs[i % 2],))
                   for i in range(threads_per_host)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert other == [] and len(won) == 1, (host, won, other)
        assert refused == [f'host "{host}" is already draining (drain {won[0]})'] * (
            threads_per_host - 1)


def test_two_conductors_creating_the_schema_at_once_both_start(pg_url: str) -> None:
    """Two conductors upgrading an empty database at the same moment.

    Made to happen every time: conductor A's upgrade runs inside a
    transaction held open (tables created, not committed) while conductor
    B upgrades; B must wait for A (seen in pg_stat_activity) and then find
    the schema at head - not fail with "relation already exists", as it
    did before the upgrade took an advisory lock.
    """
    first, second = db_api.Database(pg_url), db_api.Database(pg_url)
    outcome: dict = {}

    def run_b() -> None:
        try:
            second.upgrade()
            outcome['ok'] = True
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome['error'] = exc

    try:
        with first.engine.connect() as conn:
            trans = conn.begin()
            first._upgrade_on(conn)
            b = threading.Thread(target=run_b)
            b.start()
            wait_for(lambda: outcome or _waiting_on_a_lock(first), 30,
                     'conductor B to wait for A\'s schema')
            assert not outcome, f'B did not wait for A: {outcome}'
            trans.commit()
        b.join(60)
        assert outcome.get('ok'), outcome.get('error')
        with second.engine.connect() as conn:
            versions = conn.execute(sa.text('SELECT version_num FROM alembic_version')).all()
        assert len(versions) == 1
        # And the schema is usable by both.
        for db in (first, second):
            db.check_writable()
    finally:
        first.engine.dispose()
        second.engine.dispose()
