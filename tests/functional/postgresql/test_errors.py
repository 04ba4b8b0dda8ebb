"""A PostgreSQL the conductor cannot use is one line, not a traceback.

Database.upgrade is the conductor's first contact with its database (see
kvmplace.conductor.service.build); whatever the server or the network
says becomes one DatabaseError line with the URL - password masked - and
the server's reason. The real kvmplace-conductor then prints
``kvmplace-conductor: error: ...`` and exits 1.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa

from kvmplace.conductor.db import api as db_api
from kvmplace.exception import DatabaseError

pytestmark = pytest.mark.timeout(120)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _upgrade_error(url: str) -> str:
    with pytest.raises(DatabaseError) as err:
        db_api.Database(url).upgrade()
    text = str(err.value)
    assert '\n' not in text and 'Traceback' not in text, text
    return text


def _password(url: sa.URL) -> str:
    assert url.password
    return url.password


def test_server_not_listening(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(port=_closed_port())
    text = _upgrade_error(url.render_as_string(hide_password=False))
    assert text.startswith('cannot prepare the database postgresql+psycopg2://kvmplace_test:***@')
    assert 'Connection refused' in text and _password(url) not in text


def test_wrong_password(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(password='not-the-password')
    text = _upgrade_error(url.render_as_string(hide_password=False))
    assert 'password authentication failed for user "kvmplace_test"' in text
    assert 'not-the-password' not in text


def test_database_does_not_exist(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(database='kvmplace_no_such_database')
    text = _upgrade_error(url.render_as_string(hide_password=False))
    assert 'database "kvmplace_no_such_database" does not exist' in text


def test_conductor_refuses_to_start_in_one_line(pg_url: str, tmp_path) -> None:
    """The real service, with the wrong password in its configuration: it
    stops before it touches the broker (none is configured)."""
    url = sa.make_url(pg_url).set(password='not-the-password')
    config = tmp_path / 'kvmplace.conf'
    config.write_text('[database]\nconnection = '
                      f'{url.render_as_string(hide_password=False)}\n')
    conductor = os.path.join(os.path.dirname(sys.executable), 'kvmplace-conductor')
    out = subprocess.run([conductor, '--config-file', str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith('kvmplace-conductor: error: cannot prepare the database ')
    assert 'password authentication failed' in lines[0] and 'not-the-password' not in lines[0]
