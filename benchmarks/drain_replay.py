"""Replay the kvmplace drains of a drain_bench.py result offline, through
the drain planner, with the old (per-stream) and the new (shared-source)
concurrency model side by side.

For seed k the planner (kvmplace.planner.drain.plan, so
kvmplace.planner.schedule's simulation, as a real drain plans) gets what
the conductor would have known before seed k's drain:

* the lab as drain_bench.py sets it up for seed k (links, the background
  guests, the drained guests with their nominal dirty rates) and the lab's
  [estimator] (kvmplace.lab.services.config_lines: calibration, priors);
* concurrency figures fitted (kvmplace.planner.concurrency.fit, shrunk to
  those priors) from the recorded drains of seeds 1..k-1 only. Seed 1 has
  no recorded predecessor (its conductor learned from the unscored warm-up
  drain, whose records are not in the JSON): both models take the
  concurrency recorded in seed 1's plan.

What the JSON does not keep is reconstructed, the same for both models:
each migration's job start (its record's start plus seed 1's recorded
record overhead less its post-job tail), the estimate a record carried (the
estimator's solo rate on the reconstructed path), and the dirty rates the
agents sampled: for a plan made with the per-stream model, each guest's is
set so that the old model, with the concurrency the seed's plan recorded,
replays the per-migration times that plan recorded
(:func:`calibrated_inventory`; keeping which moves waited). A plan made
with the shared-source model gives every member of a pool one time, which
cannot tell the guests' rates apart: its guests keep the rates the bench
gives them (``drain_bench.DRAINED``). The ``recorded`` model is that
replay, with each seed's recorded concurrency as it was recorded: how far
it lands from the JSON's own figures (and
``calibration_residual_seconds``) says how faithful the reconstruction is.
The measured times are used only to score, and, from earlier seeds, to
learn.

QEMU's downtime limit is planned as the run planned it: chosen per
migration (``[estimator] choose_downtime_limit``) when the run's code
chose it (:func:`chose_limit`), at its cap before that.

Prints one JSON line: per model, per-migration MAPE (against each record's
created -> finished) and the makespan's median |error| (against the drain
record's), as drain_bench.py scores them, over all seeds and over the seeds
after the first (``after_first_seed``: the ones whose figures the replay
learned itself).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import statistics
import subprocess
import tempfile

from kvmplace import conf as kconf
from kvmplace import estimator
from kvmplace import objects
from kvmplace import topology as topo
from kvmplace.lab import numa, services
from kvmplace.planner import concurrency as conc
from kvmplace.planner import drain
from kvmplace.scheduler import manager

#: Epoch of the reconstructed records; seeds are this far apart.
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SEED_GAP_SECONDS = 1000.0
#: vCPUs a lab host reports (the lab's machine has two cores).
LAB_HOST_VCPUS = 2
#: Upper bound of a recovered dirty rate (the lab's guests dirty <= 10).
MAX_DIRTY_MIBPS = 60.0


#: The commit that made the estimator choose QEMU's downtime limit per
#: migration ("estimator: choose QEMU's downtime limit per migration from
#: the model"); a run whose code has it planned with the choice.
CHOICE_COMMIT = '0952222'


def chose_limit(result: dict) -> bool:
    """Whether ``result``'s drains planned (and ran) with QEMU's downtime
    limit chosen per migration: what the result says, else whether its
    commit descends from :data:`CHOICE_COMMIT` (git of this checkout);
    False when neither tells (the results before the choice)."""
    if 'choose_downtime_limit' in result:
        return bool(result['choose_downtime_limit'])
    commit = result.get('commit')
    if not commit:
        return False
    try:
        done = subprocess.run(['git', 'merge-base', '--is-ancestor', CHOICE_COMMIT, commit],
                              cwd=os.path.dirname(os.path.abspath(__file__)),
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def lab_conf(choose_limit: bool = False):
    """The lab's configuration as a conductor there reads it, with QEMU's
    downtime limit chosen per migration or at its cap as the replayed
    run's was (replaying a run with the other would not give back its
    plans)."""
    with tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False) as f:
        f.write('\n'.join(services.config_lines({'hosts': []})))
    try:
        conf = kconf.new_conf(config_files=[f.name])
    finally:
        os.unlink(f.name)
    conf.set_override('choose_downtime_limit', choose_limit, group='estimator')
    return conf


def inventory(bench, run: dict) -> objects.Inventory:
    """The lab as drain_bench.py sets it up for ``run``'s seed."""
    names = [bench.SOURCE] + bench.DESTS
    insts = {}
    for i, (memory, dirty) in enumerate(bench.DRAINED, 1):
        insts[f'lab-vm{i}'] = objects.Instance(f'lab-vm{i}', bench.SOURCE, memory, 1,
                                                float(dirty))
    for guest, host in zip(bench.BACKGROUND, run['loaded']):
        insts[guest] = objects.Instance(guest, host, bench.BACKGROUND_MIB, 1, 0.0)
    insts[bench.WARM_UP_GUEST] = objects.Instance(bench.WARM_UP_GUEST, bench.DESTS[-1], 128, 1)
    hosts = {}
    for name in names:
        link = (bench.SOURCE_LINK_MBPS if name == bench.SOURCE else
                bench.DEGRADED_LINK_MBPS if name == run['degraded'] else bench.GOOD_LINK_MBPS)
        used = sum(g.memory_mib for g in insts.values() if g.host == name)
        nodes = [objects.NumaNode(**n) for n in numa.topology(used_mib=(used, 0))]
        hosts[name] = objects.Host(name, link_mbps=link, vcpus=LAB_HOST_VCPUS,
                                   memory_mib=sum(n.memory_mib for n in nodes),
                                   memory_used_mib=used,
                                   vcpus_used=sum(1 for g in insts.values() if g.host == name),
                                   numa=nodes)
    return objects.Inventory(hosts, insts, [])


def calibrated_inventory(bench, run: dict, sched, rounds: int = 3) -> tuple[objects.Inventory,
                                                                          float]:
    """``inventory`` with each drained guest's dirty rate set so the old
    model, with the concurrency ``run``'s plan recorded, replays the
    per-migration times that plan recorded (the agents' sampled rates,
    which the JSON does not keep, recovered from what they produced);
    and the largest |replayed - recorded| seconds left."""
    inv = inventory(bench, run)
    kv = run['kvmplace']
    model = _concurrency(kv['concurrency'])
    if model.shared_source:
        # One pool time for all its members: the rates stay the bench's.
        plan = drain.plan(sched, inv, bench.SOURCE, concurrency=model)
        got = {m['instance']: m['predicted_seconds'] for m in plan['migrations']}
        return inv, max(abs(got.get(m['instance'], float('inf')) - m['predicted_seconds'])
                        for m in kv['migrations'] if m.get('predicted_seconds'))
    wanted = {m['instance']: m['predicted_seconds'] for m in kv['migrations']
              if m.get('predicted_seconds')}

    def late(times: dict) -> set:
        return {n for n, start in times.items() if start > first_start + 1e-3}
    first_start = min(m['predicted_start_seconds'] for m in kv['migrations'])
    recorded_late = late({m['instance']: m['predicted_start_seconds']
                          for m in kv['migrations']})

    def replayed() -> tuple[dict, set]:
        plan = drain.plan(sched, inv, bench.SOURCE, concurrency=model)
        return ({m['instance']: m['predicted_seconds'] for m in plan['migrations']},
                late({m['instance']: m['start_seconds'] for m in plan['migrations']}))
    for _ in range(rounds):
        for name, target in sorted(wanted.items()):
            lo, hi = 0.0, MAX_DIRTY_MIBPS
            for _ in range(24):
                inv.instances[name].dirty_rate_mibps = (lo + hi) / 2
                times, starts_late = replayed()
                if starts_late != recorded_late:
                    # Keep the recorded plan's shape (which moves waited):
                    # a guest that waited must stay shorter, one that did
                    # not, longer.
                    longer = name not in recorded_late
                else:
                    longer = times.get(name, float('inf')) < target
                if longer:
                    lo = inv.instances[name].dirty_rate_mibps
                else:
                    hi = inv.instances[name].dirty_rate_mibps
            inv.instances[name].dirty_rate_mibps = round((lo + hi) / 2, 3)
    got, _ = replayed()
    return inv, max(abs(got.get(n, float('inf')) - t) for n, t in wanted.items())


def _concurrency(recorded: dict, **changes) -> conc.Concurrency:
    """A plan's recorded ``concurrency`` as the model."""
    names = {f.name for f in dataclasses.fields(conc.Concurrency)}
    return dataclasses.replace(conc.Concurrency(**{k: v for k, v in recorded.items()
                                                   if k in names}), **changes)


def _iso(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def records(bench, run: dict, inv: objects.Inventory, index: int, pre_job_seconds: float,
            params: estimator.ModelParams) -> tuple[dict, list[dict]]:
    """``run``'s kvmplace drain as the conductor's records (module doc)."""
    tp = topo.Topology.from_inventory(inv)
    at = index * SEED_GAP_SECONDS
    kv = run['kvmplace']
    migrations = []
    for m in kv['migrations']:
        inst = inv.instances[m['instance']]
        source, dest = inv.hosts[bench.SOURCE], inv.hosts[m['dest']]
        solo = estimator.estimate(inst, source, dest,
                                  tp.widest_path(source.name, dest.name).mbps, params)
        created = at + m['start_seconds']
        finished = created + m['record_seconds']
        migrations.append({
            'id': f"{run['seed']}-{m['instance']}", 'status': m['status'],
            'source': bench.SOURCE, 'dest': m['dest'], 'policy': {},
            'created_at': _iso(created), 'started_at': _iso(created + pre_job_seconds),
            'finished_at': _iso(finished),
            'estimate': {'bandwidth_mibps': solo.bandwidth_mibps,
                         'inputs': {'memory_mib': inst.memory_mib,
                                    'dirty_rate_mibps': inst.dirty_rate_mibps}},
            'result': {'status': m['status'], 'elapsed_seconds': m['job_seconds']}})
    return ({'id': str(run['seed']), 'created_at': _iso(at),
             'finished_at': _iso(at + kv['record_makespan_seconds'])}, migrations)


def score(run: dict, plan: dict) -> dict:
    """Per-migration and makespan errors of ``plan`` against ``run``'s records."""
    kv = run['kvmplace']
    planned = {m['instance']: m for m in plan['migrations']}
    errors = []
    for m in kv['migrations']:
        p = planned.get(m['instance'])
        if m['status'] == 'completed' and p:
            errors.append(abs(p['predicted_seconds'] - m['record_seconds']) / m['record_seconds'])
    record = kv['record_makespan_seconds']
    return {'migration_errors': errors,
            'makespan_error': abs(plan['predicted_makespan_seconds'] - record) / record,
            'predicted_seconds': {m['instance']: planned[m['instance']]['predicted_seconds']
                                  for m in kv['migrations'] if m['instance'] in planned},
            'predicted_makespan_seconds': plan['predicted_makespan_seconds']}


def replay(bench, result: dict) -> dict:
    conf = lab_conf(chose_limit(result))
    sched = manager.SchedulerManager(conf)
    params = sched.params
    prior = conc.Concurrency.from_conf(conf)
    prior_samples = conf.estimator.learning_prior_migrations
    runs = sorted(result['runs'], key=lambda r: r['seed'])
    first = _concurrency(runs[0]['kvmplace']['concurrency'])
    pre_job = max(0.0, first.record_overhead_seconds - first.verify_seconds)
    lab = [calibrated_inventory(bench, run, sched) for run in runs]
    seen = [records(bench, run, inv, i, pre_job, params)
            for i, (run, (inv, _)) in enumerate(zip(runs, lab))]
    models: dict[str, dict] = {name: {'seeds': []} for name in ('recorded', 'old', 'new')}
    for k, (run, (inv, residual)) in enumerate(zip(runs, lab)):
        learned = {'recorded': _concurrency(run['kvmplace']['concurrency'])}
        for name, shared in (('old', False), ('new', True)):
            if k == 0:
                learned[name] = dataclasses.replace(first, shared_source=shared)
            else:
                learned[name] = conc.fit(seen[:k], params,
                                         dataclasses.replace(prior, shared_source=shared),
                                         prior_samples)
        for name, model in learned.items():
            plan = drain.plan(sched, inv, bench.SOURCE, concurrency=model)
            models[name]['seeds'].append({'seed': run['seed'], 'concurrency': model.to_dict(),
                                          **score(run, plan)})
        models['recorded']['seeds'][-1]['calibration_residual_seconds'] = round(residual, 3)
        models['recorded']['seeds'][-1]['dirty_rates_mibps'] = {
            name: inv.instances[name].dirty_rate_mibps
            for name in sorted(inv.instances) if inv.instances[name].host == bench.SOURCE}
    out = {}
    for name, m in models.items():
        per_seed = [s.pop('migration_errors') for s in m['seeds']]
        spans = [s['makespan_error'] for s in m['seeds']]
        out[name] = {
            'migration_prediction_mape': round(statistics.mean(sum(per_seed, [])), 3),
            'makespan_prediction_median_abs_error': round(statistics.median(spans), 3),
            'makespan_prediction_errors': [round(e, 3) for e in spans],
            'seeds': m['seeds']}
        if len(per_seed) > 1:
            # The seeds whose figures the replay learned itself (seed 1's
            # are the recorded ones, learned in the per-stream model).
            out[name]['after_first_seed'] = {
                'migration_prediction_mape': round(statistics.mean(sum(per_seed[1:], [])), 3),
                'makespan_prediction_median_abs_error': round(statistics.median(spans[1:]), 3)}
    return {'models': out,
            'recorded_in_json': {k: result.get(k) for k in (
                'migration_prediction_mape', 'makespan_prediction_median_abs_error',
                'makespan_prediction_errors', 'commit', 'date')},
            'measured_seconds': {str(r['seed']): {m['instance']: m['record_seconds']
                                                  for m in r['kvmplace']['migrations']}
                                 for r in runs}}
