"""One status vocabulary (kvmplace.status), in the code and in the schema."""
from __future__ import annotations

import importlib.util
import os
import uuid as uuidlib

import pytest
import sqlalchemy as sa

from kvmplace import status as st
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.db import models
from kvmplace.exception import DatabaseError


def _revision(name: str):
    path = os.path.join(os.path.dirname(db_api.__file__), 'alembic', 'versions', name)
    spec = importlib.util.spec_from_file_location(name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_revision_matches_the_enums():
    """A change of the vocabulary needs a new alembic revision: the head
    revision's frozen lists must be the enums."""
    rev = _revision('0005_drain_blocked.py')
    assert rev.MIGRATION_STATUSES == tuple(st.MigrationStatus)
    assert rev.ACTIVE_MIGRATION_STATUSES == st.ACTIVE_MIGRATION_STATUSES
    assert rev.DRAIN_STATUSES == tuple(st.DrainStatus)
    assert set(st.ACTIVE_MIGRATION_STATUSES) | set(st.FINAL_MIGRATION_STATUSES) == \
        set(st.MigrationStatus)
    assert not set(st.ACTIVE_MIGRATION_STATUSES) & set(st.FINAL_MIGRATION_STATUSES)


def test_the_models_generate_their_conditions_from_the_enums():
    assert models.ACTIVE_MIGRATION_WHERE == (
        "status IN ('queued', 'scheduling', 'prechecking', 'pinning', 'migrating', "
        "'verifying', 'rolling-back')")
    checks = {c.name: str(c.sqltext) for t in models.Base.metadata.tables.values()
              for c in t.constraints if isinstance(c, sa.CheckConstraint)}
    assert checks == {'ck_migrations_status': models.MIGRATION_STATUS_CHECK,
                      'ck_drains_status': models.DRAIN_STATUS_CHECK}
    for value in ('aborting', 'rolled-back'):
        assert value not in models.MIGRATION_STATUS_CHECK
    assert 'aborted' not in models.DRAIN_STATUS_CHECK


@pytest.fixture
def db(tmp_path):
    d = db_api.Database(f'sqlite:///{tmp_path}/s.sqlite')
    d.upgrade()
    return d


@pytest.mark.parametrize('value', ['aborting', 'rolled-back', 'Completed', 'bogus'])
def test_the_database_refuses_a_status_outside_the_vocabulary(db, value):
    rec = db.create_migration('vm1', 'h1', None, {})
    with pytest.raises(DatabaseError, match='ck_migrations_status'):
        db.update_migration(rec['id'], status=value)
    assert db.get_migration(rec['id'])['status'] == st.MigrationStatus.QUEUED
    drain = db.create_drain('drain', 'h1', {})
    with pytest.raises(DatabaseError, match='ck_drains_status'):
        db.update_drain(drain['id'], status='aborted' if value == 'bogus' else value)


def test_every_status_of_the_enums_is_stored(db):
    rec = db.create_migration('vm1', 'h1', None, {})
    for value in st.MigrationStatus:
        assert db.update_migration(rec['id'], status=value)['status'] == value
    drain = db.create_drain('drain', 'h1', {})
    for value in st.DrainStatus:
        assert db.update_drain(drain['id'], status=value)['status'] == value
    row = db.get_migration(rec['id'])
    assert type(row['status']) is str          # plain data for RPC


def test_an_old_database_with_retired_statuses_upgrades(tmp_path):
    """Rows in a status nothing sets any more are moved (0004), saying so."""
    url = f'sqlite:///{tmp_path}/old.sqlite'
    d = db_api.Database(url)
    import alembic.command
    import alembic.config
    cfg = alembic.config.Config()
    cfg.set_main_option('script_location',
                        os.path.join(os.path.dirname(db_api.__file__), 'alembic'))
    with d.engine.begin() as conn:
        cfg.attributes['connection'] = conn
        alembic.command.upgrade(cfg, '0003')
    # Rows as revision 0003 knew them (raw SQL: the models have columns
    # of later revisions).
    a, b, drain = ({'id': str(uuidlib.uuid4())} for _ in range(3))
    with d.engine.begin() as conn:
        for row, inst in ((a, 'vm1'), (b, 'vm2')):
            conn.execute(sa.text(
                "INSERT INTO migrations (id, instance, source, status, policy, attempts, "
                "abort_requested, created_at, updated_at) VALUES (:i, :n, 'h1', 'queued', "
                "'{}', '[]', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {'i': row['id'], 'n': inst})
        conn.execute(sa.text(
            "INSERT INTO drains (id, kind, host, status, plan, created_at, updated_at) "
            "VALUES (:i, 'drain', 'h1', 'running', '{}', CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP)"), {'i': drain['id']})
        conn.execute(sa.text("UPDATE migrations SET status = 'aborting' WHERE id = :i"),
                     {'i': a['id']})
        conn.execute(sa.text("UPDATE migrations SET status = 'rolled-back' WHERE id = :i"),
                     {'i': b['id']})
        conn.execute(sa.text("UPDATE drains SET status = 'aborted'"))
    d.upgrade()
    assert d.get_migration(a['id'])['status'] == st.MigrationStatus.ROLLING_BACK
    moved = d.get_migration(b['id'])
    assert moved['status'] == st.MigrationStatus.FAILED
    assert 'rolled-back retired' in moved['error']
    assert d.get_drain(drain['id'])['status'] == st.DrainStatus.FAILED
    # The one-active-migration-per-guest index no longer knows 'aborting'.
    assert [m['id'] for m in d.unfinished_migrations()] == [a['id']]
