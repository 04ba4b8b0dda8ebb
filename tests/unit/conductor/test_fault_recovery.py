"""The workflow's answers to the faults of tests/integration/test_faults.py,
with in-memory agents (fakes.py), so each decision is pinned down quickly:

- the source agent restarts mid-copy and has forgotten the job, while
  libvirt carries the migration on (what the lab showed): the conductor
  keeps watching and records the true outcome, without aborting it;
- the destination cannot be asked to verify a guest whose copy completed:
  the record stays 'verifying' (no rollback is possible, and 'failed'
  would misstate where the guest runs) and completes once it answers, or
  fails after [conductor] verify_timeout_seconds saying why.
"""
from __future__ import annotations

import threading
import time

from kvmplace.conductor.db import api as db_api
from tests.unit.conductor import fakes
from tests.unit.conductor.test_workflow import cloud, conf, db, make, wait_final  # noqa: F401


class RestartedSourceAgent(fakes.FakeAgents):
    """Once ``restart()`` is called the source agent is a new process: no
    casts reach the conductor, and get_job only knows what libvirt says
    (a job is active or not), not which migration it is nor its result."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.restarted = threading.Event()

    def restart(self) -> None:
        self.restarted.set()
        self.conductor_backup, self.conductor = self.conductor, None

    def get_job(self, ctxt, host, instance):
        job = super().get_job(ctxt, host, instance)
        if not self.restarted.is_set():
            return job
        return {'active': bool(job.get('active')), 'migration_id': None, 'instance': instance,
                'progress': {}, 'result': None}


def test_a_restarted_source_agent_does_not_make_the_conductor_give_up(conf, db, cloud):
    agents = RestartedSourceAgent(cloud, migrate_seconds=10.0)
    mgr, _ = make(conf, db, cloud)
    mgr.agents = agents
    agents.conductor = mgr
    rec = mgr.migrate({}, 'vm1', dest='h2')
    deadline = time.monotonic() + 10
    while 'vm1' not in agents.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    agents.restart()
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert cloud.guests['vm1']['host'] == 'h2'
    assert ('abort', 'h1') not in agents.calls          # the copy was left to finish
    assert [s['status'] for s in final['steps'] if s['name'] == 'post_verify'] == ['ok']


class UnreachableDestination(fakes.FakeAgents):
    """post_verify cannot reach the destination until ``back`` is set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.back = threading.Event()
        self.asked = 0

    def post_verify(self, ctxt, host, **kwargs):
        self.asked += 1
        if not self.back.is_set():
            raise TimeoutError(f'{host} does not answer')
        return super().post_verify(ctxt, host, **kwargs)


def _start(conf, db, cloud, timeout_s: int):
    conf.set_override('verify_timeout_seconds', timeout_s, group='conductor')
    agents = UnreachableDestination(cloud, migrate_seconds=0.2)
    mgr, _ = make(conf, db, cloud)
    mgr.agents = agents
    agents.conductor = mgr
    return mgr, agents, mgr.migrate({}, 'vm1', dest='h2')


def test_verification_waits_for_a_destination_that_comes_back(conf, db, cloud):
    mgr, agents, rec = _start(conf, db, cloud, timeout_s=120)
    deadline = time.monotonic() + 30
    while agents.asked < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    now = mgr.get_migration({}, rec['id'])
    assert now['status'] == 'verifying', now            # no rollback, no failure
    failed = [s for s in now['steps'] if s['name'] == 'post_verify' and s['finished_at']]
    assert failed and all(s['status'] == 'failed' for s in failed)
    assert 'does not answer' in failed[0]['message']
    agents.back.set()
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'completed', final
    assert [s['status'] for s in final['steps'] if s['name'] == 'post_verify'][-1] == 'ok'


def test_verification_gives_up_after_the_timeout_and_says_why(conf, db, cloud):
    mgr, agents, rec = _start(conf, db, cloud, timeout_s=2)
    final = wait_final(mgr, rec['id'], timeout=60)
    assert final['status'] == 'failed'
    assert 'handed over to h2' in final['error'] and 'could not be verified' in final['error']
    assert cloud.guests['vm1']['host'] == 'h2'          # where it really is
    assert final['status'] in db_api.FINAL_STATUSES
