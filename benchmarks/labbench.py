"""Shared pieces of the lab benchmarks (accuracy, drain, overhead).

- :func:`lab`: hold the lab lock, bring up a lab of the benchmark's shape
  (``kvmplace-lab up --recreate`` with an explicit guest mix), wait until
  every guest's memory dirtier has filled its buffer, and take the lab down
  at the end unless asked to keep it.
- :class:`Stack`: kvmplace-conductor and one kvmplace-agent per lab host as
  real processes on a private RabbitMQ vhost with their own SQLite
  database (the pattern of tests/integration/test_conductor_lab.py), plus
  the ``kvmplace`` CLI pointed at them.

Everything that is measured is measured by libvirt (job statistics) or by
the wall clock of this process; nothing is taken from kvmplace's own
predictions.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Iterator, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

BROKER = 'rabbit://guest:guest@127.0.0.1:5672/'
DIRTIER_MARKER = b'kvmplace-dirtier: buffer_mib='


def log(message: str) -> None:
    sys.stderr.write(f'[{time.strftime("%H:%M:%S")}] {message}\n')
    sys.stderr.flush()


def median(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine() -> dict:
    """What the figures were measured on."""
    info = {'cpus': os.cpu_count(), 'kernel': os.uname().release}
    try:
        with open('/proc/meminfo') as f:
            info['memory_gib'] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
        with open('/etc/debian_version') as f:
            info['debian'] = f.read().strip()
    except OSError:
        pass
    try:
        out = subprocess.run(['qemu-system-x86_64', '--version'], capture_output=True,
                             text=True, timeout=10).stdout.split('\n')[0]
        info['qemu'] = out.replace('QEMU emulator version ', '')
        import libvirt
        major, rest = divmod(libvirt.getVersion(), 1000000)
        info['libvirt'] = f'{major}.{rest // 1000}.{rest % 1000}'
    except (OSError, subprocess.SubprocessError, ImportError):
        pass
    return info


def provenance() -> dict:
    """When, from which code and on what a benchmark's figures were made:
    every benchmark JSON line carries these (date UTC, the commit, with
    ``-dirty`` when the tree had uncommitted changes, and the machine)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(['git', '-C', REPO, *args], capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''
    commit = git('rev-parse', 'HEAD') or 'unknown'
    if git('status', '--porcelain', '--untracked-files=no'):
        commit += '-dirty'
    return {'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'commit': commit,
            'machine': machine()}


def wait_dirtiers(state: dict, timeout_s: float = 180.0) -> None:
    """Wait until every Linux guest's dirtier has filled its buffer (it
    prints its settings once the buffer holds non-zero data; the lab's
    "ready" line comes before that)."""
    from kvmplace.lab import guests as labguests
    deadline = time.monotonic() + timeout_s
    pending = [g for g in state['guests'] if g['kind'] != 'firmware']
    while pending:
        still = []
        for g in pending:
            path = labguests.host_path(g['host'], labguests.SERIAL_LOG.format(name=g['name']))
            try:
                with open(path, 'rb') as f:
                    console = f.read()
            except OSError:
                console = b''
            if b'Out of memory' in console:
                raise RuntimeError(f"{g['name']}: its dirtier ran out of memory "
                                   f"({g['memory_mib']} MiB guest, {g['buffer_mib']} MiB "
                                   f"buffer); see {path}")
            if DIRTIER_MARKER not in console:
                still.append(g)
        pending = still
        if pending and time.monotonic() > deadline:
            raise RuntimeError('dirtier not started in time in ' +
                               ', '.join(g['name'] for g in pending))
        time.sleep(0.5)


@contextlib.contextmanager
def lab(who: str, hosts: int, links: list[int], mix: list[dict],
        keep: bool = False) -> Iterator[dict]:
    """The lab, up in the benchmark's shape, held exclusively."""
    from kvmplace.lab import lock, manager
    # A plain `kill` must still take the lab down and release it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lock.acquire(who)
    locked_at = time.monotonic()
    try:
        log(f'lab: up --hosts {hosts} --links {",".join(map(str, links))} '
            f'with {len(mix)} guests')
        state = manager.up(hosts=hosts, links_mbps=links, mix=mix, recreate=True,
                           linux_accel='tcg', progress=lambda m: log(f'lab: {m}'))
        wait_dirtiers(state)
        log(f'lab: up in {state.get("up_seconds")} s, dirtiers running')
        #: When this benchmark got the lab: runtimes exclude the wait for it.
        state['bench_locked_at'] = locked_at
        #: Date, commit and machine as the measuring starts (a commit made
        #: while a long run goes on must not be credited with it).
        state['provenance'] = provenance()
        yield state
    finally:
        try:
            if keep:
                log('lab: kept up (--keep-lab); `kvmplace-lab down` removes it')
            else:
                log('lab: down')
                manager.down(progress=lambda m: log(f'lab: {m}'))
        finally:
            lock.release()


def guest_health(state: dict) -> dict:
    """Kernel faults and reboots of the lab's Linux guests since the lab
    came up, from their serial consoles: a benchmark's timings only count
    if the guests it moved came out whole (see doc/source/contributor/lab.rst:
    on TCG a broken guest looks like a successful migration to libvirt)."""
    from kvmplace.lab import measure
    faults, reboots, broken = 0, 0, []
    for g in state['guests']:
        if g['kind'] == 'firmware':
            continue
        events = measure.console_events(g['name'])
        faults += len(events['faults'])
        reboots += max(0, events['boots'] - 1)
        if events['faults'] or events['boots'] > 1:
            broken.append(g['name'])
    if broken:
        log(f'guests that broke: {", ".join(broken)}')
    return {'guest_kernel_faults': faults, 'guest_reboots': reboots, 'broken_guests': broken}


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


class Stack:
    """kvmplace-conductor + one kvmplace-agent per lab host, on a private
    RabbitMQ vhost with a fresh database; ``cli`` runs the kvmplace CLI."""

    def __init__(self, state: dict, workdir: str, estimator: dict,
                 extra: Optional[dict] = None):
        from kvmplace.lab import services
        self.state = state
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.vhost = f'kvmplace-bench-{uuid.uuid4().hex[:10]}'
        for argv in (['rabbitmqctl', 'add_vhost', self.vhost],
                     ['rabbitmqctl', 'set_permissions', '-p', self.vhost, 'guest',
                      '.*', '.*', '.*']):
            subprocess.run(argv, check=True, capture_output=True, timeout=120)
        sections = {
            'DEFAULT': {'transport_url': f'{BROKER}{self.vhost}'},
            'database': {'connection': f'sqlite:///{workdir}/kvmplace.sqlite'},
            'conductor': {'host': 'bench-conductor', 'monitor_interval_seconds': 1,
                          'rpc_call_timeout_seconds': 20, 'notifications': False},
            'scheduler': {'host_down_seconds': 30, 'min_link_mbps': 100},
            'estimator': dict(estimator),
            'agent': {'report_interval_seconds': 1, 'probe_seconds_per_node': 0.1,
                      'probe_buffer_mib': 16, 'dirty_rate_interval_seconds': 600,
                      'dirty_rate_calc_seconds': 4, 'progress_interval_seconds': 0.5},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        self.config = os.path.join(workdir, 'bench.conf')
        with open(self.config, 'w') as f:
            for section, values in sections.items():
                f.write(f'[{section}]\n')
                for key, value in values.items():
                    f.write(f'{key} = {value}\n')
                f.write('\n')
        self.configs = [services.CONFIG_FILE, self.config]
        self.procs: dict[str, subprocess.Popen] = {}
        self._api = None
        # The lab's conductor.conf: the conductor's message-signing key.
        self._start('conductor', [_bin('kvmplace-conductor')],
                    [*self.configs, services.CONDUCTOR_CONFIG_FILE])
        for host in state['hosts']:
            name = host['name']
            self._start(f'agent-{name}', [_bin('kvmplace-agent')],
                        [services.CONFIG_FILE, services.agent_config_file(name), self.config])

    def _start(self, name: str, argv: list[str], configs: list[str]) -> None:
        for path in configs:
            argv = argv + ['--config-file', path]
        with open(os.path.join(self.workdir, f'{name}.log'), 'ab') as out:
            self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def cli(self, *args, timeout: float = 900, check: bool = True):
        argv = [_bin('kvmplace')]
        for path in self.configs:
            argv += ['--config-file', path]
        argv += ['--rpc-timeout', '30', *args, '-f', 'json']
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f'{" ".join(args)} failed ({out.returncode}): '
                               f'{out.stderr.strip()}')
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def api(self):
        """The conductor's RPC API from this process (what a cloud scheduler
        or script uses): no CLI process start-up in what is timed. On the
        global CONF (oslo.messaging registers its tracing options there)."""
        if self._api is None:
            from oslo_config import cfg

            import kvmplace.conf as kconf
            from kvmplace import rpc
            from kvmplace.conductor import rpcapi
            try:
                kconf.register_opts(cfg.CONF)
                rpc.register_opts(cfg.CONF)
            except cfg.DuplicateOptError:
                pass
            rpc.cleanup()          # an earlier stack's transport (another vhost)
            cfg.CONF([], project='kvmplace', default_config_files=self.configs,
                     default_config_dirs=[])
            self._api = rpcapi.ConductorAPI(conf=cfg.CONF, timeout=60)
        return self._api

    def wait_ready(self, timeout_s: float = 120.0, dirty_rates: bool = True) -> list[dict]:
        """Every host reporting; with ``dirty_rates``, every Linux guest's
        dirty rate sampled by its agent (the scheduler needs it)."""
        names = {h['name'] for h in self.state['hosts']}
        linux = {g['name'] for g in self.state['guests'] if g['kind'] != 'firmware'}
        deadline = time.monotonic() + timeout_s
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f'{name} exited; see {self.workdir}/{name}.log')
            try:
                hosts = self.cli('hosts', 'list', timeout=60, check=False) or []
            except json.JSONDecodeError:
                hosts = []
            up = {h['name'] for h in hosts if h.get('up')}
            if up >= names:
                if not dirty_rates:
                    return hosts
                measured = set()
                for h in names:
                    shown = self.cli('hosts', 'show', h, timeout=60)
                    for g in shown['state'].get('instances') or []:
                        if g.get('dirty_rate_known'):
                            measured.add(g['name'])
                if measured >= linux:
                    return hosts
            if time.monotonic() > deadline:
                raise RuntimeError('the stack did not come up in time')
            time.sleep(1.0)

    def stop(self) -> None:
        if self._api is not None:
            # This process's transport would retry the deleted vhost for ever.
            from kvmplace import rpc
            rpc.cleanup()
            self._api = None
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        subprocess.run(['rabbitmqctl', 'delete_vhost', self.vhost], capture_output=True,
                       timeout=120)


def require_lab_tools() -> Optional[str]:
    """Why the lab benchmarks cannot run here, or None."""
    if os.geteuid() != 0:
        return 'needs root (the lab: namespaces, bridge, libvirtd)'
    if not shutil.which('qemu-system-x86_64'):
        return 'needs qemu-system-x86_64'
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return 'needs libvirt-python'
    return None
