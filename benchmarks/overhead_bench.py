#!/usr/bin/env python3
"""What kvmplace's orchestration adds to a bare libvirt live migration.

The same guest migrates back and forth between two lab hosts, alternately
through kvmplace (``kvmplace migrate GUEST --to HOST --wait``: CLI ->
kvmplace-conductor -> kvmplace-agent -> libvirt, over RabbitMQ on a private
vhost) and with bare libvirt (kvmplace.lab.measure.migrate: one
``migrateToURI3`` call, same flags, same 500 ms max downtime). Each
repetition does four moves - kvmplace there, bare back, bare there,
kvmplace back - so both sides cross the link in both directions equally
often.

Figures (medians over the repetitions):

- ``bare_seconds``: wall time of the bare ``migrateToURI3`` call.
- ``kvmplace_record_seconds``: the migration record's created_at ->
  finished_at: everything the conductor does for one migration (schedule,
  check_destination, admission, pre_pin, migrate with progress, post_verify,
  every step written to the database first).
- ``overhead_seconds`` = kvmplace_record_seconds - bare_seconds: what
  kvmplace adds over bare libvirt for the same migration.
- ``overhead_in_record_seconds``: per kvmplace migration, the record's
  duration minus the migration time the agent measured around its own
  ``migrateToURI3`` call (the part that is orchestration by construction).
- ``kvmplace_cli_wall_seconds``: wall time of the whole CLI command,
  including starting the ``kvmplace`` Python process (reported, not the
  figure of merit: a cloud scheduler calls the conductor over RPC).
- ``settle_seconds``: the post-verify settle window
  (``[agent] post_verify_settle_seconds``): the destination agent watches
  the guest that long before calling it verified. It is a safety wait, not
  orchestration, and reported apart.
- ``orchestration_overhead_p50_seconds``: per kvmplace move, its record
  less the settle window less the median bare migration; the median, with
  its 10th and 90th percentiles (``..._p10/_p90``).
- ``orchestration_overhead_shift_seconds``: the same cost estimated in
  two parts: the median in-record overhead less the settle window, plus
  the Hodges-Lehmann shift between kvmplace's migration calls and the bare
  ones. Migration times on the lab are multi-modal (libvirt stops the
  source QEMU in 200 ms polls, so the time around QEMU's job comes in
  steps of 0.2 s), and the p50 above subtracts one mode from another.
- ``migration_call``: where kvmplace's migration call and the bare one
  differ: shifts (with 90 % bootstrap intervals) of the whole call, of
  QEMU's own job time and of libvirt's time around the job, and both
  sides' median data sent and iterations.
- ``service_cpu_seconds_median``: per move and side, the CPU seconds
  (user + system, from ``/proc``) that kvmplace's conductor and agents,
  RabbitMQ and the lab's libvirt daemons used while the move ran (for
  kvmplace from the CLI's start to its exit, so including the settle
  window; for bare the ``migrateToURI3`` call): on a two-CPU lab, CPU the
  control plane takes while QEMU's migration threads are busy.

Both sides use the agent's flags (live, peer-to-peer, persistent on the
destination, undefine the source, abort on error) and the same max
downtime handed to QEMU (the agent's choice for a guest that dirties
nothing, estimator.downtime_limit_ms); what still differs is listed in the JSON
(``differences``).

Prints one JSON line with --json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labbench  # noqa: E402

from kvmplace import objects  # noqa: E402

LINKS = [10000, 10000]
GUEST = 'lab-vm1'
HOSTS = ('lab-h1', 'lab-h2')
MAX_DOWNTIME_MS = 500


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.rstrip('Z')).replace(
        tzinfo=dt.UTC).timestamp()


def agent_downtime_ms() -> int:
    """The max downtime kvmplace's agent hands QEMU for this benchmark's
    guest with the lab's calibrated [estimator]: the guest dirties nothing,
    so the model's choice (estimator.downtime_limit_ms) is the ladder's
    first rung, whatever the bandwidth."""
    from kvmplace import estimator
    from kvmplace.lab import services
    overhead = 0
    with open(services.CONFIG_FILE) as f:
        for line in f:
            if line.strip().startswith('switchover_overhead_ms'):
                overhead = int(line.split('=')[1])
    return estimator.downtime_limit_ms(1024, 0.0, 100.0, estimator.ModelParams(
        max_downtime_ms=MAX_DOWNTIME_MS, switchover_overhead_ms=overhead))


def bare(dest: str, downtime_ms: int) -> dict:
    import libvirt

    from kvmplace.lab import measure
    result = measure.migrate(GUEST, dest, max_downtime_ms=downtime_ms,
                             extra_flags=libvirt.VIR_MIGRATE_ABORT_ON_ERROR)
    stats = result.stats
    job_s = (stats.get('time_elapsed') or 0) / 1000.0
    return {'side': 'bare', 'dest': dest, 'seconds': round(result.wall_seconds, 3),
            'downtime_ms': stats.get('downtime'), 'job_seconds': round(job_s, 3),
            'outside_job_seconds': round(result.wall_seconds - job_s, 3),
            'data_mib': round((stats.get('data_processed') or 0) / 2 ** 20, 2),
            'iterations': int(stats.get('memory_iteration') or 0)}


def through_kvmplace(stack: labbench.Stack, dest: str) -> dict:
    t0 = time.monotonic()
    rec = stack.cli('migrate', GUEST, '--to', dest, '--wait')
    wall = time.monotonic() - t0
    if rec.get('status') != 'completed':
        raise RuntimeError(f'kvmplace migrate failed: {rec.get("status")} {rec.get("error")}')
    record = _ts(rec['finished_at']) - _ts(rec['created_at'])
    result = rec.get('result') or {}
    steps = {}
    for s in rec.get('steps') or []:
        if s.get('finished_at') and s['name'] != 'progress':
            steps[s['name']] = round(_ts(s['finished_at']) - _ts(s['started_at']), 3)
    return {'side': 'kvmplace', 'dest': dest, 'record_seconds': round(record, 3),
            'agent_seconds': result.get('elapsed_seconds'),
            'in_record_overhead_seconds': round(record - result['elapsed_seconds'], 3),
            'cli_wall_seconds': round(wall, 3), 'downtime_ms': result.get('downtime_ms'),
            'job_seconds': result.get('job_seconds'),
            'outside_job_seconds': round(result['elapsed_seconds']
                                         - (result.get('job_seconds') or 0), 3),
            'data_mib': result.get('data_mib'), 'iterations': result.get('iterations'),
            'downtime_limit_ms': result.get('downtime_limit_ms'),
            'steps': steps}


def _pct(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of sorted ``values`` (linear between ranks)."""
    if not values:
        return float('nan')
    k = (len(values) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def shift(a: list[float], b: list[float]) -> float:
    """Hodges-Lehmann estimate of how much longer ``a`` runs than ``b``:
    the median of every pairwise difference. Robust to the lab's bimodal
    migration times, where a difference of medians jumps between modes."""
    return statistics.median(x - y for x in a for y in b)


def shift_interval(a: list[float], b: list[float], rounds: int = 2000,
                   seed: int = 1) -> tuple[float, float]:
    """A 90 % bootstrap interval for :func:`shift` (resampling each side)."""
    rng = random.Random(seed)
    values = sorted(shift(rng.choices(a, k=len(a)), rng.choices(b, k=len(b)))
                    for _ in range(rounds))
    return values[int(0.05 * rounds)], values[int(0.95 * rounds) - 1]


def decomposition(kvm: list[dict], bare_runs: list[dict]) -> dict:
    """Where the migration call differs between the sides: QEMU's own job
    time, libvirt's time around it (starting the destination QEMU, stopping
    the source's), and what was sent. Shifts with their 90 % intervals."""
    out: dict = {}
    for key, k_key, b_key in (('call', 'agent_seconds', 'seconds'),
                              ('job', 'job_seconds', 'job_seconds'),
                              ('outside_job', 'outside_job_seconds', 'outside_job_seconds')):
        a = [r[k_key] for r in kvm if r.get(k_key) is not None]
        b = [r[b_key] for r in bare_runs if r.get(b_key) is not None]
        if a and b:
            lo, hi = shift_interval(a, b)
            out[f'{key}_shift_seconds'] = round(shift(a, b), 3)
            out[f'{key}_shift_interval_seconds'] = [round(lo, 3), round(hi, 3)]
    for key in ('data_mib', 'iterations', 'job_seconds', 'outside_job_seconds'):
        out[f'kvmplace_{key}_median'] = labbench.median(r.get(key) for r in kvm)
        out[f'bare_{key}_median'] = labbench.median(r.get(key) for r in bare_runs)
    return out


def service_pids(stack: labbench.Stack) -> dict[int, str]:
    """The long-lived processes whose CPU a move may cost: kvmplace's
    conductor and agents, RabbitMQ's Erlang VM and the lab's libvirt
    daemons (QEMU processes come and go with each move; not counted)."""
    pids = {p.pid: name.split('-')[0] for name, p in stack.procs.items()}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/comm') as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith('beam'):
            pids[int(entry)] = 'rabbitmq'
        elif comm in ('libvirtd', 'virtqemud'):
            pids[int(entry)] = 'libvirtd'
    return pids


def cpu_seconds(pids: dict[int, str]) -> dict[str, float]:
    """User + system CPU seconds so far of each group in ``pids``."""
    tick = os.sysconf('SC_CLK_TCK')
    out: dict[str, float] = {}
    for pid, group in pids.items():
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def wait_seen(stack: labbench.Stack, host: str, timeout_s: float = 30.0) -> None:
    """The conductor's view has the guest on ``host`` (agents report every
    second), so kvmplace is not handed a stale placement."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if GUEST in (stack.cli('hosts', 'show', host).get('instances') or []):
            return
        time.sleep(0.5)
    raise RuntimeError(f'the conductor does not see {GUEST} on {host}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print one JSON line')
    parser.add_argument('--keep-lab', action='store_true', help='leave the lab up')
    parser.add_argument('--repeats', type=int, default=6,
                        help='repetitions of the four moves (default 6)')
    parser.add_argument('--memory', type=int, default=256, help='guest memory, MiB')
    parser.add_argument('--settle', type=float, default=None,
                        help='[agent] post_verify_settle_seconds for the run (default: '
                             'kvmplace\'s default)')
    args = parser.parse_args(argv)
    from kvmplace import conf as kconf
    settle = args.settle if args.settle is not None else \
        kconf.new_conf().agent.post_verify_settle_seconds
    why = labbench.require_lab_tools()
    if why:
        sys.stderr.write(f'overhead_bench: {why}\n')
        return 2
    mix = [{'kind': 'linux', 'memory_mib': args.memory, 'buffer_mib': args.memory // 2,
            'dirty_rate_mibps': 0, 'fill': True, 'host': HOSTS[0]}]
    runs = []
    with labbench.lab('overhead_bench', len(LINKS), LINKS, mix, keep=args.keep_lab) as state, \
            tempfile.TemporaryDirectory(prefix='kvmplace-overhead-') as tmp:
        lab_started = state['bench_locked_at']
        # Read while the lab (and its generated config) is up.
        downtime_ms = agent_downtime_ms()
        stack = labbench.Stack(state, tmp, estimator={},
                               extra={'agent': {'dirty_rate_interval_seconds': 600,
                                                'post_verify_settle_seconds': settle}})
        try:
            stack.wait_ready()
            there, back = HOSTS[1], HOSTS[0]
            # Warm-up: one move each way, not counted.
            through_kvmplace(stack, there)
            bare(back, downtime_ms)
            wait_seen(stack, back)
            pids = service_pids(stack)
            for rep in range(args.repeats):
                for side, dest in (('kvmplace', there), ('bare', back), ('bare', there),
                                   ('kvmplace', back)):
                    if side == 'kvmplace':
                        wait_seen(stack, there if dest == back else back)
                    before = cpu_seconds(pids)
                    t0 = time.monotonic()
                    run = through_kvmplace(stack, dest) if side == 'kvmplace' \
                        else bare(dest, downtime_ms)
                    wall = time.monotonic() - t0
                    after = cpu_seconds(pids)
                    run['service_cpu_seconds'] = {g: round(after[g] - before.get(g, 0.0), 3)
                                                  for g in after}
                    run['service_cpu_window_seconds'] = round(wall, 3)
                    run['repeat'] = rep + 1
                    runs.append(run)
                    labbench.log(f"{rep + 1}: {side} -> {dest}: "
                                 f"{run.get('record_seconds') or run.get('seconds')} s")
        finally:
            stack.stop()
    kvm = [r for r in runs if r['side'] == 'kvmplace']
    bare_runs = [r for r in runs if r['side'] == 'bare']
    bare_s = labbench.median(r['seconds'] for r in bare_runs)
    record_s = labbench.median(r['record_seconds'] for r in kvm)
    step_names = sorted({n for r in kvm for n in r['steps']})
    orchestration = sorted(r['record_seconds'] - settle - bare_s for r in kvm)
    in_record = sorted(r['in_record_overhead_seconds'] - settle for r in kvm)
    bares = sorted(r['seconds'] for r in bare_runs)
    out = {
        'benchmark': 'overhead',
        'orchestration_overhead_p50_seconds': round(_pct(orchestration, 50), 3),
        'orchestration_overhead_p10_seconds': round(_pct(orchestration, 10), 3),
        'orchestration_overhead_p90_seconds': round(_pct(orchestration, 90), 3),
        'orchestration_in_record_p50_seconds': round(_pct(in_record, 50), 3),
        'orchestration_in_record_p10_seconds': round(_pct(in_record, 10), 3),
        'orchestration_in_record_p90_seconds': round(_pct(in_record, 90), 3),
        'settle_seconds': settle,
        'bare_p10_seconds': round(_pct(bares, 10), 3),
        'bare_p90_seconds': round(_pct(bares, 90), 3),
        'max_downtime_handed_to_qemu_ms': downtime_ms,
        'differences': [
            'kvmplace passes a destination XML (VIR_MIGRATE_PARAM_DEST_XML/PERSIST_XML) '
            'with the emulator thread pinned to the planned CPUs; bare keeps the source XML',
            'kvmplace pins the source emulator thread first (pre_pin) and polls job '
            'statistics every 0.5 s (progress casts); bare polls every 0.25 s'],
        'bare_seconds': bare_s,
        'kvmplace_record_seconds': record_s,
        'overhead_seconds': round(record_s - bare_s, 3),
        'overhead_in_record_seconds': labbench.median(r['in_record_overhead_seconds']
                                                      for r in kvm),
        'kvmplace_agent_seconds': labbench.median(r['agent_seconds'] for r in kvm),
        'kvmplace_cli_wall_seconds': labbench.median(r['cli_wall_seconds'] for r in kvm),
        'orchestration_overhead_shift_seconds': round(
            labbench.median(r['in_record_overhead_seconds'] - settle for r in kvm)
            + shift([r['agent_seconds'] for r in kvm], [r['seconds'] for r in bare_runs]), 3),
        'migration_call': decomposition(kvm, bare_runs),
        'service_cpu_seconds_median': {
            side: {g: labbench.median(r['service_cpu_seconds'].get(g) for r in rows)
                   for g in sorted({g for r in rows for g in r['service_cpu_seconds']})}
            for side, rows in (('kvmplace', kvm), ('bare', bare_runs))},
        'step_seconds_median': {n: labbench.median(r['steps'].get(n) for r in kvm)
                                for n in step_names},
        'repeats': args.repeats, 'guest_memory_mib': args.memory,
        'runs': runs, **state['provenance'],
        'runtime_seconds': round(time.monotonic() - lab_started, 1),
    }
    if args.json:
        print(json.dumps(objects.plain(out), sort_keys=True))
    else:
        print(f"bare {bare_s} s, kvmplace record {record_s} s, of which settle {settle} s: "
              f"orchestration {out['orchestration_overhead_p50_seconds']} s "
              f"(in-record {out['orchestration_in_record_p50_seconds']} s)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
