"""A real PostgreSQL server for the conductor's database tests.

tools/services.sh starts a private cluster and writes the URL of a role
that may create databases to /var/lib/kvmplace-test-pg/url
(``KVMPLACE_TEST_POSTGRESQL_URL`` overrides it). Every test gets a database
of its own, created empty and dropped afterwards, so tests never see each
other's rows and can run against a server other sessions use too.

Without a reachable server the tests are skipped with the reason - except
under tools/run-tests.sh (CI), which sets ``KVMPLACE_TEST_POSTGRESQL_REQUIRED``
so that a PostgreSQL that silently went missing fails the run instead.
"""
from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

URL_FILE = '/var/lib/kvmplace-test-pg/url'


def _server_url() -> str | None:
    url = os.environ.get('KVMPLACE_TEST_POSTGRESQL_URL')
    if url:
        return url
    try:
        with open(URL_FILE, encoding='utf-8') as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _unavailable(reason: str) -> None:
    if os.environ.get('KVMPLACE_TEST_POSTGRESQL_REQUIRED'):
        pytest.fail(f'PostgreSQL is required here but {reason}')
    pytest.skip(f'PostgreSQL not reachable: {reason} (tools/services.sh start)')


@pytest.fixture(scope='session')
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit engine on the server's ``postgres`` database, for
    CREATE/DROP DATABASE (which cannot run inside a transaction)."""
    url = _server_url()
    if url is None:
        _unavailable(f'no {URL_FILE} and no KVMPLACE_TEST_POSTGRESQL_URL')
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable('the psycopg2 driver is not installed (tools/bootstrap.sh)')
    engine = sa.create_engine(url, isolation_level='AUTOCOMMIT', poolclass=sa.pool.NullPool,
                              connect_args={'connect_timeout': 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text('SELECT 1'))
    except sa.exc.DBAPIError as exc:
        _unavailable(str(exc.orig).splitlines()[0])
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """URL of a new, empty database that is dropped after the test."""
    name = f'kvmplace_test_{uuid.uuid4().hex[:12]}'
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
