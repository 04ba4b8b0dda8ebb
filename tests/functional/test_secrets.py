"""Secrets never reach a log or an error message.

The conductor runs with ``debug = true`` (oslo.log then logs every option
value at start) and with a password in both its transport_url and its
database URL; neither password may appear in what it prints, whatever
fails. oslo.config masks options marked secret; kvmplace's own messages
print database URLs with the password hidden.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

BROKER_PASSWORD = 'Br0ker-S3cret-771'
DB_PASSWORD = 'Db-S3cret-9913'


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


@pytest.mark.parametrize('db_url', [
    # A server that is not there: start-up fails on the database.
    f'postgresql://kvmplace:{DB_PASSWORD}@127.0.0.1:1/kvmplace',
    # Not even a valid URL: the message must not echo it.
    f'bogus://kvmplace:{DB_PASSWORD}@@/x',
])
def test_conductor_never_prints_passwords(tmp_path, db_url):
    config = tmp_path / 'kvmplace.conf'
    config.write_text(f"""[DEFAULT]
debug = true
transport_url = rabbit://guest:{BROKER_PASSWORD}@127.0.0.1:5672/

[database]
connection = {db_url}
""")
    out = subprocess.run([_bin('kvmplace-conductor'), '--config-file', str(config)],
                         capture_output=True, text=True, timeout=90)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert 'transport_url' in text          # debug really logged the options
    assert 'kvmplace-conductor: error:' in text
    assert BROKER_PASSWORD not in text
    assert DB_PASSWORD not in text


def test_cli_errors_do_not_echo_the_broker_password(tmp_path):
    config = tmp_path / 'kvmplace.conf'
    config.write_text(f"""[DEFAULT]
transport_url = rabbit://guest:{BROKER_PASSWORD}@127.0.0.1:5999/
""")
    out = subprocess.run([_bin('kvmplace'), '--config-file', str(config), '--rpc-timeout', '2',
                          'hosts', 'list'], capture_output=True, text=True, timeout=90)
    assert out.returncode != 0
    assert out.stderr.startswith('kvmplace: error:')
    assert BROKER_PASSWORD not in out.stdout + out.stderr
