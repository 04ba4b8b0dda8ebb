"""``kvmplace paths list|forget`` through a real conductor and RabbitMQ.

The conductor is the real kvmplace-conductor process on a private vhost of
the local RabbitMQ, with its own SQLite file. What it learned is seeded in
that file beforehand through the same database API the conductor writes
with (learning itself is covered in tests/unit/conductor/test_learning.py
and, on real migrations, by the accuracy benchmark). These calls are API
1.1: this also checks that the 1.1 methods are reachable from the CLI
while the older calls keep working on the same client.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kvmplace.conductor.db import api as db_api
from tests.functional.conftest import wait_for

pytestmark = pytest.mark.timeout(240)


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


@pytest.fixture(scope='module')
def conductor_cfg(broker_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('paths')
    url = f'sqlite:///{tmp}/kvmplace.sqlite'
    db = db_api.Database(url)
    db.upgrade()
    for src, dst, mibps in [('h1', 'h2', 100.0), ('h1', 'h2', 60.0), ('h2', 'h1', 30.0),
                            ('h1', 'h3', 10.0)]:
        db.record_path_rate(src, dst, mibps, 0.5, 'm-seeded')
    db.engine.dispose()
    cfg = tmp / 'conductor.conf'
    cfg.write_text(f"""[DEFAULT]
transport_url = {broker_url}

[database]
connection = {url}

[conductor]
host = paths-conductor
""")
    log = open(tmp / 'conductor.log', 'wb')
    proc = subprocess.Popen([_bin('kvmplace-conductor'), '--config-file', str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving():
            assert proc.poll() is None, (tmp / 'conductor.log').read_text()
            return kvmplace(cfg, 'hosts', 'list').returncode == 0
        wait_for(serving, 90, 'the conductor to answer', 0.5)
        yield cfg
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def kvmplace(cfg, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([_bin('kvmplace'), '--config-file', str(cfg), '--rpc-timeout', '10',
                           *argv, '-f', 'json'], capture_output=True, text=True, timeout=60)


def _listed(cfg) -> dict:
    out = kvmplace(cfg, 'paths', 'list')
    assert out.returncode == 0, out.stderr
    return {(p['source'], p['dest']): p for p in json.loads(out.stdout)}


def test_list_then_forget(conductor_cfg):
    paths = _listed(conductor_cfg)
    assert set(paths) == {('h1', 'h2'), ('h2', 'h1'), ('h1', 'h3')}
    h1h2 = paths[('h1', 'h2')]
    assert (h1h2['mibps'], h1h2['last_mibps'], h1h2['samples']) == (80.0, 60.0, 2)
    assert h1h2['in_use'] is True and h1h2['age_seconds'] >= 0
    # No agent has reported h1/h2: no topology to weigh against, the
    # learned figure is used as it is.
    assert h1h2['used_mibps'] == 80.0
    table = subprocess.run([_bin('kvmplace'), '--config-file', str(conductor_cfg),
                            'paths', 'list'], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and '80.0 MiB/s' in table.stdout, table

    out = kvmplace(conductor_cfg, 'paths', 'forget', '--source', 'h1', '--dest', 'h3')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {'forgotten': [{'source': 'h1', 'dest': 'h3',
                                                     'mibps': 10.0}]}
    assert set(_listed(conductor_cfg)) == {('h1', 'h2'), ('h2', 'h1')}

    # No paths named: refused in one line, nothing forgotten.
    out = subprocess.run([_bin('kvmplace'), '--config-file', str(conductor_cfg),
                          'paths', 'forget'], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert out.stderr.splitlines() == [
        'kvmplace: error: paths forget: say which paths: --source HOST, --dest HOST or --all']
    # A bad name is refused by the conductor, with the field it is in.
    out = kvmplace(conductor_cfg, 'paths', 'forget', '--dest', 'x' * 300)
    assert out.returncode != 0 and len(out.stderr.splitlines()) == 1, out.stderr
    assert 'dest' in out.stderr and 'Traceback' not in out.stderr
    assert set(_listed(conductor_cfg)) == {('h1', 'h2'), ('h2', 'h1')}

    out = kvmplace(conductor_cfg, 'paths', 'forget', '--all')
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)['forgotten']) == 2
    assert _listed(conductor_cfg) == {}
