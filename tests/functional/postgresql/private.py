"""A PostgreSQL cluster of a test's own, for tests that stop or restart
the server (the shared test server of tools/services.sh is never stopped):
initdb and pg_ctl as the postgres user, on a free port and a data
directory under /tmp, trust authentication on 127.0.0.1 only."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL cluster of this module's own (initdb + pg_ctl)."""

    def __init__(self):
        bins = sorted(d for d in os.listdir('/usr/lib/postgresql')) if \
            os.path.isdir('/usr/lib/postgresql') else []
        if not bins:
            pytest.skip('no PostgreSQL server binaries under /usr/lib/postgresql')
        self.bin = f'/usr/lib/postgresql/{bins[-1]}/bin'
        self.dir = tempfile.mkdtemp(prefix='kvmplace-pg-', dir='/tmp')
        shutil.chown(self.dir, 'postgres', 'postgres')
        os.chmod(self.dir, 0o700)
        self.port = _free_port()
        self._pg(f'{self.bin}/initdb', '-D', f'{self.dir}/data', '-U', 'postgres',
                 '--auth-host=trust', '--auth-local=trust', '-E', 'UTF8', '--locale=C.UTF-8')
        with open(f'{self.dir}/data/postgresql.conf', 'a') as fh:
            fh.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                     f"unix_socket_directories = '{self.dir}'\nfsync = off\n")
        self.start()
        self.url = f'postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres'

    def _pg(self, *argv: str) -> None:
        subprocess.run(['runuser', '-u', 'postgres', '--', *argv], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg(f'{self.bin}/pg_ctl', '-D', f'{self.dir}/data', '-l', f'{self.dir}/log',
                 '-w', '-t', '60', 'start')

    def stop(self) -> None:
        self._pg(f'{self.bin}/pg_ctl', '-D', f'{self.dir}/data', '-m', 'fast', '-w', 'stop')

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
