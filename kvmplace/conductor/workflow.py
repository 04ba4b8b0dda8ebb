"""One live migration, step by step (ARCHITECTURE "One migration").

schedule -> check_destination (next-ranked host on refusal) -> admission
(limits, link room) -> pre_pin -> migrate (progress casts) -> post_verify
-> completed; on failure or abort: rollback (abort the job, make sure the
guest runs on exactly one host, restore the source pinning) and record why.

Every status change and step is committed before the next step starts.
``run`` looks at the record's status first, so the same code resumes a
migration after a conductor restart (the "recovery" of the issue).

Faults (tests/integration/test_faults.py shows each on the lab): a final
status is only recorded on facts from the agents. A call that gets no
answer (agent dead or restarting, broker away) is not a refusal: the
conductor asks again - a lost migrate reply leads to asking the source
what runs, a rollback waits for the source and destination to say where
the guest is, post_verify is retried while the destination cannot be
asked (the guest has left its source by then: there is nothing to roll
back to). The copy itself is libvirt's peer-to-peer job and survives the
source agent; a restarted agent only knows that libvirt runs a job, which
is taken to be this migration's. How long to keep asking:
[conductor] answer_timeout_seconds.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

from kvmplace import objects
from kvmplace.conductor import admission as adm
from kvmplace.exception import KvmplaceError, NoValidHost

LOG = logging.getLogger(__name__)


class Aborted(Exception):
    """The operator asked to abort this migration."""


class Interrupted(Exception):
    """The conductor is stopping while this workflow waits on a migration.

    The record stays in the status last committed (no outcome without the
    agents' answer): the next conductor's recovery resumes it and asks the
    agents how the migration ended. Without this a stopping conductor
    waited for every running migration to end - Python joins the worker
    threads at exit - so SIGTERM could take as long as the longest copy.
    """


class Waiter:
    """Where the agent's progress and result casts meet the workflow thread."""

    def __init__(self):
        self.event = threading.Event()
        self.result: Optional[dict] = None
        self.last_heard = time.monotonic()
        self.phase: Optional[str] = None

    def heard(self) -> None:
        self.last_heard = time.monotonic()

    def finish(self, result: dict) -> None:
        self.result = result
        self.heard()
        self.event.set()


class MigrationWorkflow:
    """Drives one migration record to a final state."""

    def __init__(self, ctx, migration_id: str):
        self.ctx = ctx  # the ConductorManager: db, agents, scheduler, admission...
        self.db = ctx.db
        self.agents = ctx.agents
        self.conf = ctx.conf
        self.mid = migration_id
        self.rpc_ctxt: dict = {}

    # -- helpers --------------------------------------------------------------
    def record(self) -> dict:
        return self.db.get_migration(self.mid, steps=False)

    def set(self, **fields: Any) -> dict:
        rec = self.db.update_migration(self.mid, **fields)
        if 'status' in fields:
            LOG.info('migration %(id)s of %(inst)s: %(status)s',
                     {'id': self.mid[:8], 'inst': rec['instance'], 'status': fields['status']})
        return rec

    def abort_requested(self) -> bool:
        return bool(self.record()['abort_requested'])

    def check_abort(self) -> None:
        if self.abort_requested():
            raise Aborted()

    def step(self, name: str, host: Optional[str], fn, *, tolerate: bool = False) -> Any:
        """Run ``fn`` as a recorded step: the row exists before it starts."""
        sid = self.db.add_step(self.mid, name, host)
        try:
            result = fn()
        except Exception as exc:
            self.db.finish_step(sid, 'failed', message=_reason(exc))
            if tolerate:
                LOG.warning('migration %s: %s on %s failed: %s', self.mid[:8], name, host,
                            _reason(exc))
                return None
            raise
        status = 'ok'
        message = None
        if isinstance(result, dict) and result.get('ok') is False:
            status, message = 'refused', result.get('reason')
        self.db.finish_step(sid, status, message=message,
                            data=result if isinstance(result, dict) else None)
        return result

    def event(self, name: str, host: Optional[str] = None, message: Optional[str] = None,
              data: Optional[dict] = None, status: str = 'ok') -> None:
        self.db.add_step(self.mid, name, host, status=status, message=message, data=data,
                         finished=True)

    # -- entry ----------------------------------------------------------------
    def run(self) -> dict:
        """Drive the record from wherever it stands to a final status."""
        try:
            rec = self.record()
            status = rec['status']
            if status in ('queued', 'scheduling', 'prechecking', 'pinning'):
                if status != 'queued':
                    self._undo_pin(rec)
                    self.event('recovered', message=f'conductor restarted during {status}; '
                               'starting over')
                self._from_start()
            elif status == 'migrating':
                self._resume_migrating(rec)
            elif status == 'verifying':
                self._verify(rec)
            elif status in ('rolling-back', 'aborting'):
                self._rollback(rec, rec.get('error') or 'interrupted rollback resumed')
        except Interrupted:
            raise                       # the record stays for recovery: no outcome
        except Aborted:
            rec = self.record()
            if rec['status'] in ('queued', 'scheduling', 'prechecking', 'pinning'):
                self._undo_pin(rec)
                self.set(status='aborted', error='aborted by request before the migration '
                         'started')
            else:
                self._rollback(rec, 'aborted by request')
        except Exception as exc:  # noqa: BLE001 - every failure ends in a record
            LOG.exception('migration %s failed', self.mid[:8]) if not isinstance(
                exc, KvmplaceError) else None
            rec = self.record()
            if rec['status'] in ('migrating', 'verifying', 'rolling-back'):
                self._rollback(rec, _reason(exc))
            else:
                self._undo_pin(rec)
                self.set(status='failed', error=_reason(exc))
        finally:
            self.ctx.admission.release(self.mid)
            self.ctx.forget_waiter(self.mid)
        final = self.db.get_migration(self.mid)
        self.ctx.notify_final(final)
        return final

    # -- forward path ---------------------------------------------------------
    def _from_start(self) -> None:
        self.check_abort()
        rec = self.set(status='scheduling')
        inventory, topology = self.ctx.snapshot(exclude_migration=self.mid)
        instance = inventory.instances.get(rec['instance'])
        if instance is None:
            raise KvmplaceError(f'instance "{rec["instance"]}" is not running on any '
                                'reporting host')
        if instance.host != rec['source']:
            rec = self.set(source=instance.host)
        policy = objects.Policy.from_dict(rec.get('policy') or {})
        request = objects.MigrationRequest(
            instance=instance.name, policy=policy,
            force_hosts=[rec['requested_dest']] if rec.get('requested_dest') else [])
        ranking = self.step('schedule', None, lambda: _summary(
            self.ctx.scheduler.select(inventory, request, topology)))
        if not ranking['ranked']:
            reasons = '; '.join(f"{r['host']}: {r['reason']}" for r in ranking['rejected']
                                if r['filter'] != 'not_source')
            raise NoValidHost(f'no valid host for {instance.name}: {reasons or "no hosts"}')
        source_host = inventory.hosts[instance.host]
        guest = self.ctx.guest_state(instance.host, instance.name) or instance.to_dict()
        chosen = None
        attempts = []
        for cand in ranking['ranked'][:self.conf.conductor.max_attempts]:
            self.check_abort()
            self.set(status='prechecking', dest=cand['host'])
            answer = self.step('check_destination', cand['host'], lambda c=cand: _safe_call(
                lambda: self.agents.check_destination(
                    self.rpc_ctxt, c['host'], instance=guest,
                    source_cpu_model=instance.cpu_model or source_host.cpu_model)))
            attempts.append({'host': cand['host'], 'ok': bool(answer.get('ok')),
                             'reason': answer.get('reason')})
            self.set(attempts=attempts)
            if answer.get('ok'):
                chosen = (cand, answer)
                break
        if chosen is None:
            raise NoValidHost('every destination refused: ' + '; '.join(
                f"{a['host']}: {a['reason']}" for a in attempts))
        cand, answer = chosen
        # What the estimate was made from, so that the finished migration
        # can be compared with it (learning, ConductorManager.learn).
        estimate = dict(cand['estimate'], inputs={
            'memory_mib': instance.memory_mib, 'dirty_rate_mibps': instance.dirty_rate_mibps,
            'disk_mib': instance.disk_mib})
        rec = self.set(dest=cand['host'], estimate=estimate, dest_cpus=answer.get('cpus'),
                       instance_uuid=guest.get('uuid'))
        path = topology.widest_path(instance.host, cand['host'])
        cap = policy.bandwidth_cap_mibps
        slot = adm.Slot(self.mid, instance.host, cand['host'], path.links if path else (),
                        float(min(cap, estimate['bandwidth_mibps']) if cap
                              else estimate['bandwidth_mibps']),
                        planned=bool(rec.get('drain_id')))
        if self.ctx.admission.try_acquire(slot) is not None:
            sid = self.db.add_step(self.mid, 'admission', None, status='waiting')
            ok = self.ctx.admission.acquire(
                slot, cancelled=self.abort_requested,
                on_wait=lambda r: self.db.finish_step(sid, 'waiting', message=r))
            self.db.finish_step(sid, 'ok' if ok else 'cancelled')
            if not ok:
                raise Aborted()
        self.check_abort()
        self.set(status='pinning')
        want_node = (estimate.get('pre_pin') or {}).get('node')
        try:
            pin = self.step('pre_pin', instance.host, lambda: self.agents.pre_pin(
                self.rpc_ctxt, instance.host, instance=instance.name, node=want_node))
        except KvmplaceError as exc:
            # Refused: nothing was pinned. The migration goes on without.
            LOG.warning('migration %s: pre_pin refused: %s', self.mid[:8], _reason(exc))
            pin = None
        except Exception as exc:  # noqa: BLE001 - no answer: it may have pinned
            # The answer (with the pinning to restore) is lost, but the
            # pinning may have happened: remember what the agent last
            # reported, so a rollback puts it back (no stale pinning).
            previous = guest.get('emulator_cpus')
            LOG.warning('migration %s: no answer to pre_pin (%s); a rollback restores the '
                        'reported pinning %s', self.mid[:8], _reason(exc), previous)
            pin = {'previous_cpus': previous, 'uncertain': True} if previous else None
        if pin:
            rec = self.set(pin=pin)
        self.check_abort()
        self._migrate(self.record(), answer)

    def _migrate(self, rec: dict, answer: dict) -> None:
        waiter = self.ctx.waiter(self.mid)
        self.set(status='migrating')
        policy = dict(rec.get('policy') or {})
        sid = self.db.add_step(self.mid, 'migrate', rec['source'])
        self.set(progress={'step_id': sid, 'phase': 'setup'})
        try:
            self.agents.migrate(self.rpc_ctxt, rec['source'], migration_id=self.mid,
                                instance=rec['instance'], dest_host=rec['dest'],
                                dest_uri=answer['libvirt_uri'],
                                migrate_uri=answer.get('migration_uri'),
                                dest_cpus=rec.get('dest_cpus'), policy=policy)
        except KvmplaceError as exc:
            # The agent answered: it refused, nothing started.
            self.db.finish_step(sid, 'failed', message=_reason(exc))
            raise
        except Exception as exc:  # noqa: BLE001 - no answer (timeout, broker away)
            # The request may have arrived and the copy started; only the
            # answer is missing. Ask the agent, as after a conductor
            # restart, rather than abort a copy that may be running.
            self.event('no_answer', rec['source'], message=f'migrate: {_reason(exc)}; asking '
                       'the source agent what runs', status='failed')
            self._wait_and_finish(sid, waiter, resumed=True)
            return
        self.ctx.notify('start', self.record())
        self._wait_and_finish(sid, waiter)

    def _wait_and_finish(self, sid: int, waiter: Waiter, resumed: bool = False) -> None:
        result = self._wait(waiter, resumed)
        status = result.get('status')
        self.set(result=result)
        if status == 'completed':
            self.db.finish_step(sid, 'ok', data=result)
            self._verify(self.record())
            return
        self.db.finish_step(sid, 'failed', message=result.get('error') or status, data=result)
        rec = self.record()
        reason = 'aborted by request' if rec['abort_requested'] else \
            f"migration {status}: {result.get('error') or 'no reason given'}"
        self._rollback(rec, reason)

    def _wait(self, waiter: Waiter, resumed: bool = False) -> dict:
        """Wait for the agent's result; poll the agent when it goes quiet.

        After a conductor restart (``resumed``) the agent is asked at once:
        casts sent while the conductor was down are lost, and a job that is
        gone with the guest still on the source has failed for good.
        """
        rec = self.record()
        interval = self.conf.conductor.monitor_interval_seconds
        quiet_after = 3.0 * interval
        if resumed:
            waiter.last_heard -= quiet_after
        abort_sent = False
        first = resumed
        while True:
            if waiter.event.wait(0 if first else interval):
                return waiter.result or {'status': 'failed', 'error': 'empty result'}
            if self.ctx.stopping():
                raise Interrupted()
            if not abort_sent and self.abort_requested():
                abort_sent = True
                self.event('abort', rec['source'], message='abort requested')
                _safe_call(lambda: self.agents.abort(self.rpc_ctxt, rec['source'],
                                                     instance=rec['instance']))
            first = False
            silent = time.monotonic() - waiter.last_heard
            if silent >= quiet_after:
                job = _safe_call(lambda: self.agents.get_job(
                    self.rpc_ctxt, rec['source'], instance=rec['instance']))
                if job.get('ok') is False:
                    # The source agent does not answer (dead, restarting).
                    if silent >= self.conf.conductor.migration_timeout_seconds:
                        return {'status': 'failed', 'error': f'no word from the source agent '
                                f'for {silent:.0f} s'}
                    where = self.ctx.locate(rec['instance'], [rec['source'], rec['dest']])
                    if where.get(rec['dest']) == 'running' and rec['source'] not in where:
                        return {'status': 'completed', 'error': None,
                                'note': 'source agent silent; guest found on destination'}
                    continue
                if job.get('active') and job.get('migration_id') in (self.mid, None):
                    # None: the source agent restarted and lost its memory of
                    # the job, but libvirt still runs it - a peer-to-peer
                    # migration goes on inside libvirtd when the agent dies
                    # (seen on the lab, tests/integration/test_faults.py). A
                    # guest has one migration at a time, so it is this one:
                    # keep watching, and let libvirt tell how it ends.
                    waiter.heard()
                    continue
                result = job.get('result')
                if result and job.get('migration_id') == self.mid:
                    return result
                # No job, no result: the agent restarted and lost the job.
                where = self.ctx.locate(rec['instance'], [rec['source'], rec['dest']])
                if where.get(rec['dest']) == 'running' and rec['source'] not in where:
                    return {'status': 'completed', 'error': None,
                            'note': 'job result lost; guest found running on destination'}
                if resumed or silent >= quiet_after * 2:
                    return {'status': 'failed',
                            'error': 'the source agent has no job for this migration'}

    def _resume_migrating(self, rec: dict) -> None:
        self.event('recovered', message='conductor restarted during migrate; resuming')
        waiter = self.ctx.waiter(self.mid)
        sid = (rec.get('progress') or {}).get('step_id')
        if sid is None:
            sid = self.db.add_step(self.mid, 'migrate', rec['source'])
        self._wait_and_finish(sid, waiter, resumed=True)

    def _verify(self, rec: dict) -> None:
        """Check the guest on the destination (post_verify), then record
        the outcome.

        We get here when the copy has completed: the source has handed the
        guest over and undefined its copy. If the destination cannot be
        *asked* (its agent or its libvirtd is down - an exception, not an
        answer), there is nothing to roll back to, and recording a failure
        would misstate where the guest runs. So the question is asked
        again, with a growing pause, for up to
        [conductor] answer_timeout_seconds, the record staying 'verifying'
        with each unanswered attempt as a failed post_verify step; it
        completes as soon as the destination answers that all is well.
        Only if it never answers in that time does the record end 'failed',
        saying that the guest was handed over but could not be verified.
        A destination that answers and finds something wrong (wrong CPUs,
        wrong UUID) fails at once, with what it found.
        """
        self.set(status='verifying')
        timeout = self.conf.conductor.answer_timeout_seconds
        deadline = time.monotonic() + timeout
        pause = 1.0
        while True:
            try:
                answer = self.step('post_verify', rec['dest'], lambda: self.agents.post_verify(
                    self.rpc_ctxt, rec['dest'], instance=rec['instance'],
                    uuid=rec.get('instance_uuid') or '', memory_mib=int(
                        self._guest_field(rec, 'memory_mib') or 0),
                    vcpus=int(self._guest_field(rec, 'vcpus') or 0),
                    cpus=rec.get('dest_cpus')))
                break
            except Exception as exc:  # noqa: BLE001 - the destination could not be asked
                why = _reason(exc)
            if time.monotonic() + pause > deadline:
                self.set(status='failed', error=(
                    f"the guest was handed over to {rec['dest']} (the copy completed) but "
                    f"could not be verified there for {timeout} s: {why}"))
                return
            LOG.warning('migration %s: cannot verify on %s yet (%s); asking again in %.0f s',
                        self.mid[:8], rec['dest'], why, pause)
            time.sleep(pause)
            pause = min(2 * pause, 15.0)
        if not isinstance(answer, dict) or not answer.get('ok'):
            self.set(status='failed', error=f"post_verify on {rec['dest']}: "
                     f"{(answer or {}).get('reason') if isinstance(answer, dict) else answer}")
            return
        # Learn before the record turns final, so that whoever waits for
        # the final status also sees what this migration taught.
        verified = self.record()
        learned = self.ctx.learn(verified)
        if learned:
            self.event('learn', message=f"{verified['source']} -> {verified['dest']}: "
                       f"observed {learned['observed_mibps']:.1f} MiB/s, path now "
                       f"{learned['mibps']:.1f} MiB/s ({learned['samples']} migrations), "
                       f"predictions use {learned['used_mibps']:.1f} MiB/s",
                       data=learned)
        self.set(status='completed', error=None)

    def _guest_field(self, rec: dict, name: str):
        guest = (rec.get('result') or {}).get('guest') or {}
        if name in guest:
            return guest[name]
        state = self.ctx.guest_state(rec['source'], rec['instance']) or \
            self.ctx.guest_state(rec['dest'], rec['instance']) or {}
        return state.get(name)

    # -- failure path ---------------------------------------------------------
    def _rollback(self, rec: dict, reason: str) -> None:
        """Leave the guest running on exactly one host, pinning restored."""
        aborted = bool(rec.get('abort_requested'))
        self.set(status='rolling-back', error=reason)
        sid = self.db.add_step(self.mid, 'rollback', rec['source'])
        # The facts come from the agents. One that does not answer (it is
        # restarting, the broker is away) is asked again for a while: a
        # record finished on "seen nowhere" could say 'failed' of a guest
        # whose copy then completes.
        deadline = time.monotonic() + self.conf.conductor.answer_timeout_seconds
        job = self._until_answered(deadline, lambda: self.agents.get_job(
            self.rpc_ctxt, rec['source'], instance=rec['instance']))
        if job.get('active'):
            _safe_call(lambda: self.agents.abort(self.rpc_ctxt, rec['source'],
                                                 instance=rec['instance']))
            self._wait_job_gone(rec)
        hosts = [h for h in (rec['source'], rec.get('dest')) if h]
        answered: set = set()
        pause = 1.0
        while True:
            answered.clear()
            where = self.ctx.locate(rec['instance'], hosts, answered=answered)
            if answered >= set(hosts) or time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
            pause = min(2 * pause, 15.0)
        dest = rec.get('dest')
        if dest and where.get(dest) == 'running' and rec['source'] not in where:
            # The switch-over happened after all: the guest lives on the
            # destination now. Finish forward instead of pretending.
            self.db.finish_step(sid, 'ok', message='guest already runs on the destination; '
                                'verifying instead of rolling back', data={'where': where})
            self._verify(self.record())
            return
        problems = [f'{h} did not answer: where the guest runs there is unknown'
                    for h in hosts if h not in answered]
        if where.get(rec['source']) not in ('running', 'paused'):
            problems.append(f'guest not found running on the source (seen: {where or "nowhere"})')
        if dest and dest in where and rec['source'] in where:
            problems.append(f'guest also present on {dest} ({where[dest]})')
        self._undo_pin(rec)
        self.db.finish_step(sid, 'ok' if not problems else 'failed',
                            message='; '.join(problems) or None, data={'where': where})
        final_reason = reason + (' | ' + '; '.join(problems) if problems else '')
        self.set(status='aborted' if aborted else 'failed', error=final_reason)

    def _until_answered(self, deadline: float, fn) -> dict:
        """``fn``'s answer; while it fails (no answer), asked again with a
        growing pause until ``deadline``; then the failure (``ok: False``)."""
        pause = 1.0
        while True:
            answer = _safe_call(fn)
            if answer.get('ok') is not False or time.monotonic() + pause > deadline:
                return answer
            time.sleep(pause)
            pause = min(2 * pause, 15.0)

    def _wait_job_gone(self, rec: dict, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = _safe_call(lambda: self.agents.get_job(self.rpc_ctxt, rec['source'],
                                                         instance=rec['instance']))
            if not job.get('active'):
                return
            time.sleep(0.5)

    def _undo_pin(self, rec: dict) -> None:
        pin = rec.get('pin') or {}
        previous = pin.get('previous_cpus')
        if not previous:
            return
        self.step('restore_pin', rec['source'], lambda: self.agents.restore_pin(
            self.rpc_ctxt, rec['source'], instance=rec['instance'], cpus=previous),
            tolerate=True)


def _summary(selection: dict) -> dict:
    """What the schedule step keeps: the ranking, without every weigher row."""
    return {'ranked': [{'host': r['host'], 'weight': r['weight'], 'estimate': r['estimate']}
                       for r in selection['ranked']],
            'rejected': selection['rejected']}


def _safe_call(fn) -> dict:
    """An RPC call whose failure is an answer (``ok: False``), not a crash."""
    try:
        result = fn()
        return result if isinstance(result, dict) else {'ok': True, 'value': result}
    except Exception as exc:  # noqa: BLE001 - reported as the step's reason
        return {'ok': False, 'reason': _reason(exc)}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    name = type(exc).__name__
    if name in ('MessagingTimeout',):
        return f'no answer in time ({first})'
    return first
