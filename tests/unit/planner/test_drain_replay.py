"""benchmarks/drain_bench.py --replay: the recorded drains replayed through
the drain planner, offline (two seeds of the committed result, to stay
quick)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
RESULT = os.path.join(ROOT, 'doc', 'source', 'benchmarks', 'data', 'drain-seeds.json')


@pytest.fixture(scope='module')
def replayed():
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    try:
        import drain_bench
        import drain_replay
    finally:
        sys.path.pop(0)
    with open(RESULT) as f:
        result = json.load(f)
    result['runs'] = result['runs'][:2]
    return result, drain_replay.replay(drain_bench, result)


def test_the_recorded_plans_are_reproduced_by_the_planner(replayed):
    """The reconstruction is checked where it can be: with each seed's
    recorded concurrency, the planner gives back the recorded plan."""
    result, out = replayed
    for run, seed in zip(result['runs'], out['models']['recorded']['seeds']):
        recorded = run['kvmplace']
        assert seed['predicted_makespan_seconds'] == pytest.approx(
            recorded['predicted_makespan_seconds'], rel=0.05)
        for m in recorded['migrations']:
            assert seed['predicted_seconds'][m['instance']] == pytest.approx(
                m['predicted_seconds'], abs=0.5)


def test_both_models_are_scored_seed_by_seed_with_what_came_before(replayed):
    result, out = replayed
    old, new = out['models']['old'], out['models']['new']
    # Seed 1 takes its recorded figures; seed 2 what seed 1's records taught.
    assert old['seeds'][0]['concurrency']['contention'] == \
        result['runs'][0]['kvmplace']['concurrency']['contention']
    assert new['seeds'][1]['concurrency']['shared_source']
    assert not old['seeds'][1]['concurrency']['shared_source']
    assert new['seeds'][1]['concurrency']['samples'] == len(
        result['runs'][0]['kvmplace']['migrations'])
    # The pool model gives the four migrations that left together one end.
    ends = {round(p, 3) for name, p in new['seeds'][1]['predicted_seconds'].items()
            if name != 'lab-vm3'}
    assert len(ends) == 1
    for model in (old, new):
        assert 0.0 < model['migration_prediction_mape'] < 1.0
        assert len(model['makespan_prediction_errors']) == 2


@pytest.fixture(scope='module')
def replayed_pool():
    """The first two seeds of the run whose plans used the shared-source
    pool and chose QEMU's downtime limit per migration."""
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    try:
        import drain_bench
        import drain_replay
    finally:
        sys.path.pop(0)
    with open(os.path.join(os.path.dirname(RESULT), 'drain-seeds-downtime-limit.json')) as f:
        result = json.load(f)
    result['runs'] = result['runs'][:2]
    return result, drain_replay.replay(drain_bench, result)


def test_shared_source_plans_are_reproduced_as_recorded(replayed_pool):
    """A pool's members share one recorded time: the replay keeps the
    recorded concurrency as recorded (shared source included) and gives
    back that time; replayed as per-stream plans, the dirty rates fitted to
    one pool time made the planner predict 165 s for a 15.5 s plan."""
    result, out = replayed_pool
    for run, seed in zip(result['runs'], out['models']['recorded']['seeds']):
        recorded = run['kvmplace']
        assert seed['concurrency']['shared_source']
        assert seed['calibration_residual_seconds'] < 0.5
        assert seed['predicted_makespan_seconds'] == pytest.approx(
            recorded['predicted_makespan_seconds'], rel=0.05)
        for m in recorded['migrations']:
            assert seed['predicted_seconds'][m['instance']] == pytest.approx(
                m['predicted_seconds'], abs=0.5)
    assert out['models']['new']['migration_prediction_mape'] < 0.5


def test_the_limit_is_planned_as_the_run_chose_it():
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    try:
        import drain_replay
    finally:
        sys.path.pop(0)
    assert drain_replay.chose_limit({'choose_downtime_limit': True})
    assert not drain_replay.chose_limit({'choose_downtime_limit': False, 'commit': 'ae9f6de'})
    assert not drain_replay.chose_limit({})
    assert drain_replay.lab_conf(True).estimator.choose_downtime_limit
    assert not drain_replay.lab_conf(False).estimator.choose_downtime_limit
    if subprocess.run(['git', 'cat-file', '-e', 'ae9f6de^{commit}'], cwd=ROOT,
                      capture_output=True, check=False).returncode:
        pytest.skip('no git history of the committed runs here')
    # The downtime-limit run's commit has the choice; the pool-holds run's not.
    assert drain_replay.chose_limit({'commit': 'ae9f6de4e8ec0bf81199a09d79b3e9ae1079f8f8'})
    assert not drain_replay.chose_limit({'commit': '68ff554567de42344f6d60ddce8b2cc3dcc6362e'})
