"""How many agents the conductors keep up with, and how it grows with conductors.

    benchmarks/conductor_scale_bench.py --agents 1000 --conductors 1,3 --json

For each number of conductors: that many real ``kvmplace-conductor``
processes on a private RabbitMQ vhost and a fresh PostgreSQL database (the
test server of tools/services.sh), and ``--agents`` simulated agents in
this process (no libvirt: each is a small host report cast to the
conductor topic, as kvmplace-agent casts it). Two phases:

- steady: every agent reports once per ``--report-interval`` seconds, for
  ``--seconds``; meanwhile a probe report with a fresh marker is cast
  every half second and the time until it can be read from the database
  is measured (``report_visible_*``: what the scheduler sees), and
  ``select_destinations`` is called once a second (``select_p50_ms_under_load``);
- saturation: the agents' reports are cast as fast as this process can,
  for ``--seconds``, and the rate at which the conductors store them is
  the limit (``saturated_reports_per_second``).

Stored reports are counted by PostgreSQL itself (pg_stat_user_tables
n_tup_upd of the hosts table), not by kvmplace. One JSON line per
configuration with --json, with the date, commit and machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import labbench  # noqa: E402
import sqlalchemy as sa  # noqa: E402

import kvmplace.conf  # noqa: E402
from kvmplace.conductor import rpcapi  # noqa: E402
from tests.functional.conftest import register_messaging_opts  # noqa: E402
from tests.functional.postgresql.conftest import URL_FILE  # noqa: E402

BIN = os.path.dirname(sys.executable)


def host_state(i: int, **extra) -> dict:
    state = {'name': f'sim-{i:04d}', 'link_mbps': 10000, 'vcpus': 32, 'vcpus_used': 4,
             'memory_mib': 131072, 'memory_used_mib': 8192, 'cpu_model': None,
             'numa': [{'id': 0, 'cpus': '0-15', 'memory_mib': 65536, 'free_memory_mib': 60000},
                      {'id': 1, 'cpus': '16-31', 'memory_mib': 65536,
                       'free_memory_mib': 60000}],
             'instances': [], 'reported_at': time.time()}
    if i == 0:
        state['instances'] = [{'name': 'bench-vm', 'memory_mib': 4096, 'vcpus': 2,
                               'dirty_rate_mibps': 10.0, 'emulator_node': 0}]
    state.update(extra)
    return state


def pctl(values: list, q: float):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


class Config:
    """A vhost, a database and N conductor processes."""

    def __init__(self, conductors: int, workdir: str):
        self.n = conductors
        self.dir = workdir
        self.vhost = f'kvmplace-bench-{uuid.uuid4().hex[:8]}'
        with open(URL_FILE) as fh:
            admin_url = fh.read().strip()
        self.admin = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT',
                                      poolclass=sa.pool.NullPool)
        self.dbname = f'kvmplace_bench_{uuid.uuid4().hex[:8]}'
        self.db_url = self.admin.url.set(database=self.dbname).render_as_string(
            hide_password=False)
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for argv in (['rabbitmqctl', 'add_vhost', self.vhost],
                     ['rabbitmqctl', 'set_permissions', '-p', self.vhost, 'guest', '.*', '.*',
                      '.*']):
            subprocess.run(argv, check=True, capture_output=True, timeout=120)
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.dbname}"'))
        self.url = f'rabbit://guest:guest@127.0.0.1:5672/{self.vhost}'
        for i in range(self.n):
            path = os.path.join(self.dir, f'c{i}.conf')
            with open(path, 'w') as fh:
                fh.write(f'[DEFAULT]\ntransport_url = {self.url}\n'
                         f'log_file = {self.dir}/c{i}.log\n'
                         f'[database]\nconnection = {self.db_url}\n'
                         f'[conductor]\nhost = bench-c{i}\nnotifications = false\n')
            self.procs.append(subprocess.Popen([os.path.join(BIN, 'kvmplace-conductor'),
                                                '--config-file', path],
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        self.db = sa.create_engine(self.db_url, pool_size=4)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.db.dispose()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))
        subprocess.run(['rabbitmqctl', 'delete_vhost', self.vhost], capture_output=True,
                       timeout=120)

    def stored(self) -> int:
        with self.db.connect() as conn:
            conn.execute(sa.text('SELECT pg_stat_clear_snapshot()'))
            return int(conn.execute(sa.text(
                "SELECT coalesce(n_tup_upd + n_tup_ins, 0) FROM pg_stat_user_tables "
                "WHERE relname = 'hosts'")).scalar() or 0)

    def marker(self, name: str):
        with self.db.connect() as conn:
            return conn.execute(sa.text("SELECT state->>'bench_marker' FROM hosts "
                                        "WHERE name = :n"), {'n': name}).scalar()


def run_config(args, conductors: int) -> dict:
    with tempfile.TemporaryDirectory(prefix='kvmplace-scale-') as tmp, \
            Config(conductors, tmp) as cfg:
        conf = kvmplace.conf.new_conf()
        register_messaging_opts(conf)
        conf.set_override('transport_url', cfg.url)
        api = rpcapi.ConductorAPI(conf=conf, timeout=30)
        deadline = time.monotonic() + 120
        while True:
            try:
                api.list_hosts({})
                break
            except Exception:  # noqa: BLE001 - not serving yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        time.sleep(3)                       # every conductor consuming
        labbench.log(f'{conductors} conductors up; first reports of {args.agents} agents')
        pool = cf.ThreadPoolExecutor(8)
        list(pool.map(lambda i: api.report_state({}, host_state(i)), range(args.agents)))
        time.sleep(5)
        stop = threading.Event()
        visible: list[float] = []
        selects: list[float] = []

        def probe() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                name, mark = f'sim-{1 + n % 10:04d}', uuid.uuid4().hex
                sent = time.monotonic()
                api.report_state({}, host_state(1 + n % 10, bench_marker=mark))
                while cfg.marker(name) != mark and time.monotonic() - sent < 30:
                    time.sleep(0.005)
                if cfg.marker(name) == mark:
                    visible.append((time.monotonic() - sent) * 1000.0)
                stop.wait(0.5)

        def select() -> None:
            while not stop.is_set():
                t0 = time.monotonic()
                api.select_destinations({}, 'bench-vm')
                selects.append((time.monotonic() - t0) * 1000.0)
                stop.wait(1.0)

        def steady() -> None:
            pause = args.report_interval / args.agents
            t0 = time.monotonic()
            k = 0
            while not stop.is_set():
                due = t0 + k * pause
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                pool.submit(api.report_state, {}, host_state(11 + k % (args.agents - 11)))
                k += 1

        before = cfg.stored()
        t_start = time.monotonic()
        threads = [threading.Thread(target=f, daemon=True) for f in (probe, select, steady)]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(60)
        steady_s = time.monotonic() - t_start
        time.sleep(2)
        steady_rate = (cfg.stored() - before) / steady_s
        labbench.log(f'steady: {steady_rate:.0f} reports/s stored; saturating')
        # Saturation: as fast as we can cast.
        before = cfg.stored()
        t_start = time.monotonic()
        counts = [0] * 4

        def flood(k: int) -> None:
            while time.monotonic() - t_start < args.seconds:
                api.report_state({}, host_state(11 + (counts[k] * 4 + k) % (args.agents - 11)))
                counts[k] += 1
        list(pool.map(flood, range(4)))
        sent = sum(counts)
        cast_s = time.monotonic() - t_start
        # Let the conductors drain what was cast, and time it.
        last, still = cfg.stored(), 0
        while still < 3:
            time.sleep(1)
            now = cfg.stored()
            still = still + 1 if now == last else 0
            last = now
        done_s = time.monotonic() - t_start - 3
        stored = last - before
        pool.shutdown(wait=True)
        return {'agents': args.agents, 'conductors': conductors,
                'report_interval_seconds': args.report_interval,
                'offered_reports_per_second': round(args.agents / args.report_interval, 1),
                'reports_per_second': round(steady_rate, 1),
                'report_visible_p50_ms': pctl(visible, 0.5),
                'report_visible_p95_ms': pctl(visible, 0.95),
                'select_p50_ms_under_load': round(statistics.median(selects), 1)
                if selects else None,
                'probes': len(visible), 'selects': len(selects),
                'saturation_cast_per_second': round(sent / cast_s, 1),
                'saturated_reports_per_second': round(stored / max(done_s, 1e-3), 1),
                'saturation_stored_of_cast': f'{stored}/{sent}'}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--agents', type=int, default=1000)
    p.add_argument('--conductors', default='1,3', help='comma-separated counts')
    p.add_argument('--report-interval', type=float, default=10.0,
                   help='seconds between one agent\'s reports (the agent default)')
    p.add_argument('--seconds', type=float, default=30.0, help='length of each phase')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    if args.agents < 20:
        p.error('--agents: at least 20')
    commit = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'],
                            capture_output=True, text=True).stdout.strip()
    for n in [int(x) for x in args.conductors.split(',')]:
        row = run_config(args, n)
        row.update(date=dt.datetime.now(dt.UTC).isoformat(timespec='seconds'),
                   commit=commit, machine=dict(labbench.machine(),
                                               load_1min=os.getloadavg()[0]))
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{n} conductors: {row['reports_per_second']} reports/s, visible p50 "
                  f"{row['report_visible_p50_ms']} ms p95 {row['report_visible_p95_ms']} ms, "
                  f"select p50 {row['select_p50_ms_under_load']} ms, saturated "
                  f"{row['saturated_reports_per_second']} reports/s", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
