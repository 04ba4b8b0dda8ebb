#!/usr/bin/env python3
"""How well does kvmplace's pre-copy model predict real migrations?

A matrix of real live migrations on the lab - guest memory sizes x dirty
rates x shaped link speeds - each measured by libvirt (plain
``migrateToURI3``, kvmplace.lab.measure.migrate). The model's constants
(link_efficiency, stream_cap_mibps, setup_seconds, switchover_overhead_ms)
are fitted on the runs of three *calibration* guests only (one of each
memory size and each dirty rate); every other run is predicted with the
fitted constants and scored against its measured time. Calibration runs
are never scored.

The model's inputs are what kvmplace knows before a migration: the guest's
memory size (libvirt), its dirty rate measured by libvirt page sampling
(measure.dirty_rate_mibps, once per guest before the first migration, as
the agent's periodic sampling would), and the path's nominal link speed.

Learning: each scored run is also predicted with the path's learned
bandwidth - the exponentially weighted mean (weight [estimator]
learning_weight, 0.5) of estimator.fit_bandwidth over every *earlier* run on
the same (source, destination) path, kept in a conductor database exactly
as the conductor keeps it - weighed against the path's nominal figure by
the migrations behind it ([estimator] learning_prior_migrations, 3: see
kvmplace.conductor.learning). A run with no earlier run on its path falls
back to the calibrated constants.

``--replay OUT.json`` scores the runs of an earlier ``--json`` output again
with this code (no lab): to judge a model or learning change on the same
measurements.

``--calibrate-from RUN.json`` is the cross-session score: the constants are
fitted on every run of that earlier (committed) output and fixed before
this run; every run of this session (or of ``--replay``) is then scored
with them, none used to calibrate. The learning settings (weight 0.5,
prior 3 migrations) were fixed before either. ``--dirty-sampling agent``
(the default) samples each guest's dirty rate once for
``[agent] dirty_rate_calc_seconds`` (1 s), as the agent does by default;
``bench`` is the earlier 6 x 4 s sampling.

Prints one JSON line (with --json) or a table. Takes 8-12 minutes here.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labbench  # noqa: E402

from kvmplace import estimator, objects  # noqa: E402

HOST_LINKS = [10000, 10000, 1000, 200]          # lab-h1 .. lab-h4, Mbit/s
#: Every guest makes these moves in turn (path speed = the slower end).
LEGS = [('lab-h1', 'lab-h2'), ('lab-h2', 'lab-h1'), ('lab-h1', 'lab-h3'),
        ('lab-h3', 'lab-h1'), ('lab-h1', 'lab-h4')]
MEMORY_MIB = [256, 512, 768]
DIRTY_MIBPS = [0, 10, 30]
#: (memory, dirty) of the calibration guests: each size and each dirty rate once.
CALIBRATION = [(256, 30), (512, 0), (768, 10)]
#: QEMU's own downtime limit: plain libvirt migrations do not change it.
QEMU_DOWNTIME_MS = 300
MIGRATION_TIMEOUT_S = 300
#: Page sampling looks at 512 random pages per GiB: a 512 MiB guest dirtying
#: 10 MiB/s changes ~10 sampled pages in 2 s, so one 2 s round is +-30 %.
#: Longer windows and several rounds (all guests at once) bring it down.
#: The window must stay shorter than buffer / rate (else the sweep wraps and
#: reads low): 4 s x 30 MiB/s = 120 MiB < 160 MiB, the smallest buffer.
DIRTY_CALC_SECONDS = 4
DIRTY_CALC_ROUNDS = 6
LEARNING_WEIGHT = 0.5
#: [estimator] learning_prior_migrations, as the conductor has it by default.
PRIOR_MIGRATIONS = 3.0
#: The constants the lab's config carried before this calibration.
PREVIOUS = {'link_efficiency': 0.95, 'stream_cap_mibps': 230.0, 'setup_seconds': 0.0,
            'switchover_overhead_ms': 0}


def guest_mix(memory: list[int], dirty: list[int]) -> list[dict]:
    """One filled Linux guest per (memory, dirty rate), all on lab-h1, and
    a firmware guest for the warm-up tour."""
    mix = []
    for mem in memory:
        for rate in dirty:
            # The dirtier sweeps its buffer: big enough that neither a
            # sampling window nor a pre-copy round wraps round it.
            mix.append({'kind': 'linux', 'memory_mib': mem, 'buffer_mib': mem * 5 // 8,
                        'dirty_rate_mibps': rate, 'fill': True, 'host': 1})
    mix.append({'kind': 'firmware', 'memory_mib': 128, 'host': 1})
    return mix


def warm_up(state: dict) -> None:
    """Move the firmware guest through every host once, unmeasured.

    The first QEMU a freshly started lab host runs costs about 4 s more
    (libvirtd's first use of QEMU there): seen on the first migration into
    each host, which is a property of a lab just brought up, not of a
    migration. A firmware guest moves a few MiB, so the tour is quick.
    """
    from kvmplace.lab import measure
    guest = next(g['name'] for g in state['guests'] if g['kind'] == 'firmware')
    for host in [h['name'] for h in state['hosts']][1:] + [state['hosts'][0]['name']]:
        result = measure.migrate(guest, host)
        labbench.log(f'warm-up: {guest} -> {host} in {result.wall_seconds:.2f} s')


def path_mbps(source: str, dest: str) -> int:
    return min(HOST_LINKS[int(source.rsplit('h', 1)[1]) - 1],
               HOST_LINKS[int(dest.rsplit('h', 1)[1]) - 1])


def base_params(**constants) -> estimator.ModelParams:
    return estimator.ModelParams(max_downtime_ms=QEMU_DOWNTIME_MS, **constants)


def predict(case: dict, params: estimator.ModelParams,
            learned_mibps: float | None = None) -> estimator.Precopy:
    # These runs leave QEMU its own 300 ms limit: the model predicts at its
    # cap (no per-migration choice), max_downtime_ms less the switch-over
    # cost (estimator.downtime_cap_ms), so the budget that gives QEMU
    # 300 ms is 300 ms plus that cost.
    params = replace(params, max_downtime_ms=QEMU_DOWNTIME_MS + params.switchover_overhead_ms,
                     choose_downtime_limit=False)
    mibps, _ = estimator.bandwidth(case['link_mbps'], 1.0, 1.0, params,
                                   learned_mibps=learned_mibps)
    return estimator.precopy(case['memory_mib'], case['dirty_rate_mibps'], mibps, params)


# --- measuring ---------------------------------------------------------------

def dirty_sampling(kind: str) -> tuple[int, int]:
    """(seconds, rounds) of the dirty-rate sampling: the agent's default
    (one round of [agent] dirty_rate_calc_seconds) or the bench's own."""
    if kind == 'bench':
        return DIRTY_CALC_SECONDS, DIRTY_CALC_ROUNDS
    from kvmplace import conf as kconf
    return kconf.new_conf().agent.dirty_rate_calc_seconds, 1


def measure_dirty_rates(guests: list[str], sampling: str = 'agent') -> dict[str, float]:
    from kvmplace.lab import measure
    seconds, rounds = dirty_sampling(sampling)
    with concurrent.futures.ThreadPoolExecutor(len(guests)) as pool:
        futures = {g: pool.submit(measure.dirty_rate_mibps, g, seconds, rounds)
                   for g in guests}
        return {g: round(f.result(), 2) for g, f in futures.items()}


def migrate(guest: str, dest: str):
    """measure.migrate with a safety net: abort a run that never ends."""
    from kvmplace.lab import manager, measure
    source = measure.where(guest)
    stop = threading.Event()

    def watchdog():
        if stop.wait(MIGRATION_TIMEOUT_S):
            return
        conn = manager.connect(source)
        try:
            conn.lookupByName(guest).abortJob()
        finally:
            conn.close()
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        return measure.migrate(guest, dest)
    finally:
        stop.set()


def ensure_running(guest: str, host: str) -> None:
    """A guest left paused by an earlier run would not dirty memory: say so
    and resume it (seen once: a guest moved without dirtying anything)."""
    from kvmplace.lab import manager
    libvirt = manager.libvirt_module()
    conn = manager.connect(host)
    try:
        dom = conn.lookupByName(guest)
        state, reason = dom.state()
        if state != libvirt.VIR_DOMAIN_RUNNING:
            labbench.log(f'{guest} on {host} is in state {state} (reason {reason}); resuming')
            dom.resume()
    finally:
        conn.close()


def run_matrix(state: dict, calibration_names: set[str], dirty: dict[str, float],
               failed: list) -> list[dict]:
    from kvmplace.lab import measure
    cases = []
    specs = {g['name']: g for g in state['guests'] if g['kind'] != 'firmware'}
    order = sorted(specs, key=lambda n: (n not in calibration_names,
                                         specs[n]['memory_mib'], specs[n]['dirty_rate_mibps']))
    for leg, (source, dest) in enumerate(LEGS):
        link = path_mbps(source, dest)
        for name in order:
            spec = specs[name]
            case = {'guest': name, 'memory_mib': spec['memory_mib'],
                    'dirty_rate_set_mibps': spec['dirty_rate_mibps'],
                    'dirty_rate_mibps': dirty[name], 'source': source, 'dest': dest,
                    'link_mbps': link, 'leg': leg,
                    'split': 'calibration' if name in calibration_names else 'test'}
            # Only what the scheduler would allow: the model (with the
            # constants the lab had) says it converges on this path, at
            # the measured rate and at the rate the guest was set to (a
            # run that cannot converge would only hit the watchdog).
            set_rate = dict(case, dirty_rate_mibps=spec['dirty_rate_mibps'])
            if not (predict(case, base_params(**PREVIOUS)).converges
                    and predict(set_rate, base_params(**PREVIOUS)).converges):
                continue
            if measure.where(name) != source:
                labbench.log(f'{name} is not on {source} (an earlier move failed); skipped')
                continue
            ensure_running(name, source)
            try:
                result = migrate(name, dest)
            except Exception as exc:  # noqa: BLE001 - one failed run is reported, not fatal
                labbench.log(f'{name} {source}->{dest} failed: {exc}')
                failed.append({**case, 'error': str(exc).splitlines()[0]})
                continue
            stats = result.stats
            case.update({
                'measured_seconds': round(result.wall_seconds, 3),
                'job_seconds': round(stats.get('time_elapsed', 0) / 1000.0, 3),
                'downtime_ms': stats.get('downtime'),
                'data_mib': round(stats.get('data_processed', 0) / 2 ** 20, 1),
                'iterations': stats.get('memory_iteration'),
                'steady_mibps': round(result.steady_bytes_per_second / 2 ** 20, 1)})
            labbench.log(f"{name} ({case['memory_mib']} MiB, {dirty[name]:.1f} MiB/s) "
                         f"{source}->{dest} @{link} Mbit/s: {case['measured_seconds']:.2f} s, "
                         f"{case['data_mib']} MiB, {case['iterations']} iterations, "
                         f"{case['downtime_ms']} ms down")
            cases.append(case)
    return cases


# --- calibrating --------------------------------------------------------------

def fit(cases: list[dict]) -> dict:
    """Least squares on relative error of the total time.

    Grid over link_efficiency x stream_cap_mibps; for each pair the best
    fixed cost (setup + switch-over) has a closed form. The switch-over
    overhead is fitted first from the measured downtimes (downtime = what
    is left / R + overhead), which separates it from the setup time.
    """
    def sse_for(eff: float, cap: float, overhead_ms: float):
        params = base_params(link_efficiency=eff, stream_cap_mibps=cap,
                             switchover_overhead_ms=overhead_ms)
        transfer = [predict(c, params).total_seconds for c in cases]
        measured = [c['measured_seconds'] for c in cases]
        w = [1.0 / m ** 2 for m in measured]
        setup = sum((m - t) * wi for m, t, wi in zip(measured, transfer, w)) / sum(w)
        setup = max(0.0, setup)
        sse = sum(((t + setup - m) / m) ** 2 for t, m in zip(transfer, measured))
        return sse, setup

    overhead_ms = 0.0
    best = None
    for _ in range(2):
        best = None
        for i in range(0, 81):
            eff = 0.80 + 0.0025 * i
            for j in range(0, 141):
                cap = 100.0 + 10.0 * j
                sse, setup = sse_for(eff, cap, overhead_ms)
                if best is None or sse < best[0]:
                    best = (sse, eff, cap, setup)
        _, eff, cap, _ = best
        params = base_params(link_efficiency=eff, stream_cap_mibps=cap)
        gaps = [c['downtime_ms'] - predict(c, params).downtime_ms
                for c in cases if c.get('downtime_ms') is not None]
        overhead_ms = max(0.0, labbench.median(gaps) or 0.0)
    _, eff, cap, setup = best
    return {'link_efficiency': round(eff, 3), 'stream_cap_mibps': round(cap, 1),
            'setup_seconds': round(setup, 3), 'switchover_overhead_ms': int(round(overhead_ms))}


# --- scoring ------------------------------------------------------------------

def repeatability(cases: list[dict]) -> dict:
    """How alike two runs of the same guest over the same link speed are
    (there and back): the error of predicting each by the pair's mean. No
    model predicts better than the lab repeats itself."""
    pairs: dict[tuple, list[float]] = {}
    for c in cases:
        pairs.setdefault((c['guest'], c['link_mbps']), []).append(c['measured_seconds'])
    by_link: dict[int, list[float]] = {}
    for (_, link), times in pairs.items():
        if len(times) >= 2:
            mean = sum(times) / len(times)
            by_link.setdefault(link, []).extend(abs(t - mean) / t * 100.0 for t in times)
    every = [e for errs in by_link.values() for e in errs]
    return {'mape_of_pair_mean': round(sum(every) / len(every), 2) if every else None,
            'by_link': {str(k): round(sum(v) / len(v), 2) for k, v in sorted(by_link.items())}}


def replay_learning(cases: list[dict], params: estimator.ModelParams, db) -> list[tuple]:
    """Predict every case in the order it ran, plain and with what its path
    learned from the runs before it (the conductor's code path: fit the
    model to each finished run, fold it into the path's weighted mean in a
    conductor database)."""
    from kvmplace.conductor import learning
    out = []
    for c in cases:
        row = db.path_learning().get((c['source'], c['dest']))
        learned = None if row is None else learning.trusted_mibps(
            row[0], row[1], learning.nominal_mibps(c['link_mbps'], params), PRIOR_MIGRATIONS)
        plain = predict(c, params)
        out.append((plain, predict(c, params, learned) if learned else plain, learned))
        observed = estimator.fit_bandwidth(c['memory_mib'], c['dirty_rate_mibps'],
                                           c['measured_seconds'], params)
        if observed is not None:
            db.record_path_rate(c['source'], c['dest'], observed, LEARNING_WEIGHT)
    return out


def score(cases: list[dict], calibrated: dict, workdir: str) -> dict:
    from kvmplace.conductor.db import api as db_api
    dbs = {}
    for name in ('calibrated', 'previous'):
        dbs[name] = db_api.Database(f'sqlite:///{workdir}/learning-{name}.sqlite')
        dbs[name].upgrade()
    now = replay_learning(cases, base_params(**calibrated), dbs['calibrated'])
    before = replay_learning(cases, base_params(**PREVIOUS), dbs['previous'])
    for c, (plain, with_learning, learned), (prev, prev_learning, _) in zip(cases, now, before):
        c.update({
            'predicted_seconds': round(plain.total_seconds, 3),
            'predicted_downtime_ms': round(plain.downtime_ms, 1),
            'predicted_rounds': plain.rounds,
            'predicted_data_mib': round(plain.data_mib, 1),
            'predicted_learned_seconds': round(with_learning.total_seconds, 3),
            'learned_mibps': round(learned, 2) if learned else None,
            'predicted_previous_seconds': round(prev.total_seconds, 3),
            'predicted_previous_learned_seconds': round(prev_learning.total_seconds, 3)})
        for key, field in (('error_pct', 'predicted_seconds'),
                           ('error_learned_pct', 'predicted_learned_seconds'),
                           ('error_previous_pct', 'predicted_previous_seconds'),
                           ('error_previous_learned_pct', 'predicted_previous_learned_seconds')):
            c[key] = round(100.0 * (c[field] - c['measured_seconds']) / c['measured_seconds'],
                           2)
    test = [c for c in cases if c['split'] == 'test']

    def mape(key, among=None):
        among = test if among is None else among
        return round(sum(abs(c[key]) for c in among) / len(among), 2) if among else None

    def worst(key):
        return round(max(abs(c[key]) for c in test), 2) if test else None
    with_history = [c for c in test if c['learned_mibps'] is not None]
    return {
        'mape': mape('error_pct'),
        'max_abs_error': worst('error_pct'),
        'max_abs_error_seconds': round(max(abs(c['predicted_seconds'] - c['measured_seconds'])
                                           for c in test), 3),
        'mape_learned': mape('error_learned_pct'),
        'max_abs_error_learned': worst('error_learned_pct'),
        'cases_with_history': len(with_history),
        'mape_learned_cases_with_history': mape('error_learned_pct', with_history),
        'mape_without_learning_same_cases': mape('error_pct', with_history),
        'mape_previous_constants': mape('error_previous_pct'),
        'mape_previous_constants_learned': mape('error_previous_learned_pct'),
        'mape_by_link': {str(link): {
            'cases': len([c for c in test if c['link_mbps'] == link]),
            'mape': mape('error_pct', [c for c in test if c['link_mbps'] == link]),
            'mape_learned': mape('error_learned_pct',
                                 [c for c in test if c['link_mbps'] == link])}
            for link in sorted({c['link_mbps'] for c in test})},
        'learned_paths': {f'{s}->{d}': round(v, 2)
                          for (s, d), v in dbs['calibrated'].path_rates().items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print one JSON line')
    parser.add_argument('--keep-lab', action='store_true', help='leave the lab up')
    parser.add_argument('--memory', default=','.join(map(str, MEMORY_MIB)),
                        help='guest memory sizes, MiB (default %(default)s)')
    parser.add_argument('--dirty', default=','.join(map(str, DIRTY_MIBPS)),
                        help='guest dirty rates, MiB/s (default %(default)s)')
    parser.add_argument('--replay', metavar='JSON',
                        help='score the runs of an earlier --json output again (no lab, no '
                             'migrations): to try a model or learning change on the same '
                             'measurements')
    parser.add_argument('--calibrate-from', metavar='JSON',
                        help='fit the constants on every run of this earlier --json output '
                             'and score every run of this session (or of --replay) with them')
    parser.add_argument('--dirty-sampling', choices=('agent', 'bench'), default='agent',
                        help='dirty-rate sampling: the agent\'s default (one 1 s round) or '
                             'the bench\'s 6 x 4 s (default agent)')
    args = parser.parse_args(argv)
    calibration = None
    if args.calibrate_from:
        calibration = (args.calibrate_from, load_cases(args.calibrate_from)[0])
    if args.replay:
        return replay(args.replay, args.json, calibration)
    why = labbench.require_lab_tools()
    if why:
        sys.stderr.write(f'accuracy_bench: {why}\n')
        return 2
    memory = [int(x) for x in args.memory.split(',')]
    dirty_set = [int(x) for x in args.dirty.split(',')]
    mix = guest_mix(memory, dirty_set)
    with labbench.lab('accuracy_bench', len(HOST_LINKS), HOST_LINKS, mix,
                      keep=args.keep_lab) as state:
        lab_started = state['bench_locked_at']
        by_shape = {(g['memory_mib'], g['dirty_rate_mibps']): g['name'] for g in state['guests']
                    if g['kind'] != 'firmware'}
        calibration_names = {by_shape[k] for k in CALIBRATION if k in by_shape}
        labbench.log(f'measuring dirty rates (libvirt page sampling, {args.dirty_sampling})')
        dirty = measure_dirty_rates([g['name'] for g in state['guests']
                                     if g['kind'] != 'firmware'], args.dirty_sampling)
        labbench.log(f'dirty rates: {dirty}')
        warm_up(state)
        failed: list[dict] = []
        cases = run_matrix(state, calibration_names, dirty, failed)
        health = labbench.guest_health(state)
    out = evaluate(cases, failed, calibration)
    out.update(health)
    out.update(state['provenance'], dirty_sampling=dict(zip(
        ('seconds', 'rounds'), dirty_sampling(args.dirty_sampling))),
        scored_run='this session', runtime_seconds=round(time.monotonic() - lab_started, 1))
    report(out, args.json)
    return 0


#: What a run measured (and what the model is given); the rest of a case is
#: computed by evaluate() and recomputed on --replay.
MEASURED = ('guest', 'memory_mib', 'dirty_rate_mibps', 'dirty_rate_set_mibps', 'link_mbps',
            'source', 'dest', 'leg', 'split', 'measured_seconds', 'job_seconds', 'downtime_ms',
            'data_mib', 'iterations', 'steady_mibps')


def evaluate(cases: list[dict], failed: list[dict],
             calibration_from: tuple[str, list[dict]] | None = None) -> dict:
    """Calibrate on the calibration runs, score the others (plain and with
    learning); the benchmark's JSON without the machine facts. With
    ``calibration_from`` (path, its cases), calibrate on those and score
    every one of ``cases``.

    ``mape`` and ``max_abs_error`` are fractions (0.1 = 10 %); the
    ``*_pct`` keys keep the percentages earlier outputs had."""
    if calibration_from is not None:
        calibration = calibration_from[1]
        for c in cases:
            c['split'] = 'test'
        calibration_run = os.path.relpath(calibration_from[0], labbench.REPO)
    else:
        calibration = [c for c in cases if c['split'] == 'calibration']
        calibration_run = 'this run (its calibration guests)'
    calibrated = fit(calibration)
    labbench.log(f'calibrated on {len(calibration)} runs: {calibrated}')
    with tempfile.TemporaryDirectory(prefix='kvmplace-accuracy-') as tmp:
        summary = score(cases, calibrated, tmp)
    summary['mape_pct'], summary['max_abs_error_pct'] = summary['mape'], summary['max_abs_error']
    summary['mape'] = round(summary['mape'] / 100.0, 4) if summary['mape'] is not None else None
    summary['max_abs_error'] = (round(summary['max_abs_error'] / 100.0, 4)
                                if summary['max_abs_error'] is not None else None)
    return {'benchmark': 'accuracy', 'cases': cases, **summary,
            'calibration_run': calibration_run,
            'repeatability': repeatability(cases), 'failed_runs': failed,
            'calibrated': calibrated, 'previous_constants': PREVIOUS,
            'calibration_runs': len(calibration),
            'test_runs': sum(c['split'] == 'test' for c in cases),
            'max_downtime_ms_model': QEMU_DOWNTIME_MS, 'host_links_mbps': HOST_LINKS}


def load_cases(path: str) -> tuple[list[dict], dict]:
    """The measured part of an earlier --json output's cases, and the output."""
    with open(path) as fh:
        earlier = json.loads(fh.read().strip().splitlines()[-1])
    return [{k: c[k] for k in MEASURED if k in c} for c in earlier['cases']], earlier


def replay(path: str, as_json: bool,
           calibration: tuple[str, list[dict]] | None = None) -> int:
    """--replay: the measurements of an earlier run, scored by this code."""
    cases, earlier = load_cases(path)
    out = evaluate(cases, earlier.get('failed_runs', []), calibration)
    prov = labbench.provenance()
    out.update(measured_on=earlier.get('machine'), machine=prov['machine'],
               date=prov['date'], commit=prov['commit'],
               scored_run=os.path.relpath(path, labbench.REPO),
               measured_date=earlier.get('date'), replayed_from=os.path.relpath(
                   path, labbench.REPO), runtime_seconds=earlier.get('runtime_seconds'))
    report(out, as_json)
    return 0


def report(out: dict, as_json: bool) -> None:
    cases, calibrated = out['cases'], out['calibrated']
    if as_json:
        print(json.dumps(objects.plain(out), sort_keys=True))
    else:
        print(f"{'guest':9} {'MiB':>4} {'dirty':>6} {'Mbit/s':>6} {'split':11} "
              f"{'pred s':>7} {'learned':>7} {'meas s':>7} {'err %':>6} {'err L %':>7}")
        for c in cases:
            print(f"{c['guest']:9} {c['memory_mib']:>4} {c['dirty_rate_mibps']:>6.1f} "
                  f"{c['link_mbps']:>6} {c['split']:11} {c['predicted_seconds']:>7.2f} "
                  f"{c['predicted_learned_seconds']:>7.2f} {c['measured_seconds']:>7.2f} "
                  f"{c['error_pct']:>6.1f} {c['error_learned_pct']:>7.1f}")
        print(f"MAPE {out['mape_pct']} % (max {out['max_abs_error_pct']} %), with learning "
              f"{out['mape_learned']} %; constants {calibrated}")


if __name__ == '__main__':
    sys.exit(main())
