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

The workflow gets what it works with explicitly (:class:`Collaborators`,
as Nova's conductor tasks do), not the RPC manager, and resumes a record
through a table from its status to its handler (:data:`RESUME`).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable, Optional

from kvmplace import objects
from kvmplace.conductor import admission as adm
from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor import retry
from kvmplace.conductor.db import api as db_api
from kvmplace.conductor.learning import Learner
from kvmplace.conductor.locator import Locator
from kvmplace.conductor.notifications import Notifications
from kvmplace.conductor.snapshots import Snapshots
from kvmplace.exception import KvmplaceError, NoValidHost
from kvmplace.status import (BEFORE_COPY_STATUSES, FINAL_MIGRATION_STATUSES, JobOutcome,
                             MigrationStatus as MS, StepStatus)

#: Guest states (libvirt's, as the agents report them) in which it runs.
_GUEST_RUNNING = 'running'
_GUEST_ALIVE = (_GUEST_RUNNING, 'paused')

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

    def __init__(self, clock: clock_mod.Clock = clock_mod.REAL):
        self.clock = clock
        self.event = threading.Event()
        self.result: Optional[dict] = None
        self.last_heard = clock.monotonic()
        self.phase: Optional[str] = None
        #: the progress another conductor stored last (MigrationWorkflow._stored_word)
        self.stored_progress: Optional[dict] = None

    def heard(self) -> None:
        self.last_heard = self.clock.monotonic()

    def finish(self, result: dict) -> None:
        self.result = result
        self.heard()
        self.event.set()


class Waiters:
    """One Waiter per migration being watched, shared by the RPC threads
    (agent casts) and the workflow threads."""

    def __init__(self, clock: clock_mod.Clock = clock_mod.REAL):
        self.clock = clock
        self._waiters: dict[str, Waiter] = {}
        self._lock = threading.Lock()

    def get(self, migration_id: str) -> Waiter:
        with self._lock:
            return self._waiters.setdefault(migration_id, Waiter(self.clock))

    def forget(self, migration_id: str) -> None:
        with self._lock:
            self._waiters.pop(migration_id, None)

    def interrupt(self) -> None:
        """Wake every waiting workflow (the conductor stops): each sees
        ``stopping`` at once instead of after its poll interval."""
        with self._lock:
            for waiter in self._waiters.values():
                waiter.event.set()


@dataclasses.dataclass
class Collaborators:
    """Everything a workflow works with, handed in explicitly."""

    conf: Any
    db: db_api.Database
    agents: Any                     # kvmplace.agent.rpcapi.AgentAPI (or a fake)
    scheduler: Any                  # kvmplace.scheduler.manager.SchedulerManager
    admission: adm.Admission
    snapshots: Snapshots
    locator: Locator
    learner: Learner
    notifications: Notifications
    waiters: Waiters
    stopping: threading.Event      # set when the conductor stops
    clock: clock_mod.Clock = clock_mod.REAL
    #: kvmplace.conductor.leases.Leases: whose records these are (None: no checks)
    leases: Any = None


class MigrationWorkflow:
    """Drives one migration record to a final state."""

    def __init__(self, parts: Collaborators, migration_id: str):
        self.parts = parts
        self.db = parts.db
        self.agents = parts.agents
        self.conf = parts.conf
        self.clock = parts.clock
        self.mid = migration_id
        self.rpc_ctxt: dict = {}

    # -- helpers --------------------------------------------------------------
    def record(self) -> dict:
        return self.db.get_migration(self.mid, steps=False)

    def owner(self) -> Optional[str]:
        return self.parts.leases.owner if self.parts.leases is not None else None

    def set(self, **fields: Any) -> dict:
        """Change the record - only while this conductor holds its lease
        (else db_api.LeaseLost: another conductor drives it now)."""
        rec = self.db.update_migration(self.mid, self.owner(), **fields)
        if 'status' in fields:
            # A final status says why, so the log alone explains a failure.
            error = fields.get('error') if fields['status'] in FINAL_MIGRATION_STATUSES else None
            LOG.info('migration %(id)s of %(inst)s: %(status)s%(why)s',
                     {'id': self.mid[:8], 'inst': rec['instance'], 'status': fields['status'],
                      'why': f': {error}' if error else ''})
        return rec

    def _still_mine(self) -> dict:
        """The record, if this conductor still holds its lease - checked
        before undoing anything (unpinning, aborting): a conductor that
        lost the lease must not touch the guest its new owner drives."""
        rec = self.record()
        if self.parts.leases is not None and \
                rec.get('lease_owner') not in (None, self.owner()):
            raise db_api.LeaseLost(f"migration {self.mid} is owned by {rec['lease_owner']} now")
        return rec

    def abort_requested(self) -> bool:
        return bool(self.record()['abort_requested'])

    def check_abort(self) -> None:
        if self.parts.stopping.is_set():
            raise Interrupted()         # nothing new starts on a stopping conductor
        if self.abort_requested():
            raise Aborted()

    def step(self, name: str, host: Optional[str], fn, *, tolerate: bool = False) -> Any:
        """Run ``fn`` as a recorded step: the row exists before it starts."""
        sid = self.db.add_step(self.mid, name, host)
        try:
            result = fn()
        except Exception as exc:
            self.db.finish_step(sid, StepStatus.FAILED, message=_reason(exc))
            if tolerate:
                LOG.warning('migration %s: %s on %s failed: %s', self.mid[:8], name, host,
                            _reason(exc))
                return None
            raise
        status = StepStatus.OK
        message = None
        if isinstance(result, dict) and result.get('ok') is False:
            status, message = StepStatus.REFUSED, result.get('reason')
        self.db.finish_step(sid, status, message=message,
                            data=result if isinstance(result, dict) else None)
        return result

    def event(self, name: str, host: Optional[str] = None, message: Optional[str] = None,
              data: Optional[dict] = None, status: str = StepStatus.OK) -> None:
        self.db.add_step(self.mid, name, host, status=status, message=message, data=data,
                         finished=True)

    # -- entry ----------------------------------------------------------------
    def run(self) -> dict:
        """Drive the record from wherever it stands to a final status: the
        handler for its status (:data:`RESUME`) takes it from there."""
        lost = False
        try:
            self._drive()
        except db_api.LeaseLost as exc:
            # Another conductor adopted the record: it drives the guest
            # now. Touch nothing (no abort, no unpinning, no slot release).
            LOG.warning('migration %s: %s; leaving it to that conductor', self.mid[:8], exc)
            lost = True
        finally:
            if not lost:
                self.parts.admission.release(self.mid)
            self.parts.waiters.forget(self.mid)
        final = self.db.get_migration(self.mid)
        if lost:
            return final
        self.parts.notifications.final(final)
        return final

    def _drive(self) -> None:
        try:
            rec = self.record()
            RESUME[MS(rec['status'])](self, rec)
        except (Interrupted, db_api.LeaseLost):
            raise                       # the record stays for recovery / its new owner
        except Aborted:
            rec = self._still_mine()
            if rec['status'] in BEFORE_COPY_STATUSES:
                self._undo_pin(rec)
                self.set(status=MS.ABORTED, error='aborted by request before the migration '
                         'started')
            else:
                self._rollback(rec, 'aborted by request')
        except Exception as exc:  # noqa: BLE001 - every failure ends in a record
            if not isinstance(exc, KvmplaceError):
                LOG.exception('migration %s failed', self.mid[:8])
            rec = self._still_mine()
            if rec['status'] in (MS.MIGRATING, MS.VERIFYING, MS.ROLLING_BACK):
                self._rollback(rec, _reason(exc))
            else:
                self._undo_pin(rec)
                self.set(status=MS.FAILED, error=_reason(exc))

    # -- resuming a record, by status (RESUME) --------------------------------
    def _start(self, rec: dict) -> None:
        self._from_start()

    def _restart(self, rec: dict) -> None:
        """Interrupted before the copy (conductor restart): undo the
        pinning and start over."""
        self._undo_pin(rec)
        self.event('recovered', message=f"conductor restarted during {rec['status']}; "
                   'starting over')
        self._from_start()

    def _resume_rollback(self, rec: dict) -> None:
        self._rollback(rec, rec.get('error') or 'interrupted rollback resumed')

    def _ended(self, rec: dict) -> None:
        """A final record: nothing to do (a second start of the same id)."""

    # -- forward path ---------------------------------------------------------
    def _from_start(self) -> None:
        self.check_abort()
        rec = self.set(status=MS.SCHEDULING)
        inventory, topology = self.parts.snapshots.snapshot(exclude_migration=self.mid)
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
            self.parts.scheduler.select(inventory, request, topology)))
        if not ranking['ranked']:
            reasons = '; '.join(f"{r['host']}: {r['reason']}" for r in ranking['rejected']
                                if r['filter'] != 'not_source')
            raise NoValidHost(f'no valid host for {instance.name}: {reasons or "no hosts"}')
        source_host = inventory.hosts[instance.host]
        guest = self.parts.locator.guest_state(instance.host, instance.name) or \
            instance.to_dict()
        chosen = None
        # Hosts refused in an earlier round (Nova refused the migration
        # itself: _next_host) are not asked again; every round counts
        # against max_attempts.
        attempts = list(rec.get('attempts') or [])
        refused = {a['host'] for a in attempts if not a.get('ok')}
        left = max(0, self.conf.conductor.max_attempts - len(attempts))
        for cand in [c for c in ranking['ranked'] if c['host'] not in refused][:left]:
            self.check_abort()
            self.set(status=MS.PRECHECKING, dest=cand['host'])
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
        # What a drain's plan expected of it (db.create_migration), kept.
        planned = (rec.get('estimate') or {}).get('planned')
        # What the estimate was made from, so that the finished migration
        # can be compared with it (learning.Learner.learn).
        estimate = dict(cand['estimate'], inputs={
            'memory_mib': instance.memory_mib, 'dirty_rate_mibps': instance.dirty_rate_mibps,
            'disk_mib': instance.disk_mib}, **({'planned': planned} if planned else {}))
        rec = self.set(dest=cand['host'], estimate=estimate, dest_cpus=answer.get('cpus'),
                       instance_uuid=guest.get('uuid'))
        path = topology.widest_path(instance.host, cand['host'])
        cap = policy.bandwidth_cap_mibps
        mibps = float(min(cap, estimate['bandwidth_mibps']) if cap
                      else estimate['bandwidth_mibps'])
        if planned and planned.get('reserve_mibps') and cand['host'] == rec.get('requested_dest'):
            # The plan's hold on the links: a stream in a pool paced by its
            # source's CPUs holds less than its rate (planner/schedule.py).
            mibps = min(mibps, float(planned['reserve_mibps']))
        slot = adm.Slot(self.mid, instance.host, cand['host'], path.links if path else (),
                        mibps, planned=bool(rec.get('drain_id')))
        if self.parts.admission.try_acquire(slot) is not None:
            sid = self.db.add_step(self.mid, 'admission', None, status=StepStatus.WAITING)
            ok = self.parts.admission.acquire(
                slot, cancelled=self.abort_requested,
                on_wait=lambda r: self.db.finish_step(sid, StepStatus.WAITING, message=r))
            self.db.finish_step(sid, StepStatus.OK if ok else StepStatus.CANCELLED)
            if not ok:
                self.check_abort()      # stopping: Interrupted
                raise Aborted()
        self.check_abort()
        self.set(status=MS.PINNING)
        want_node = (estimate.get('pre_pin') or {}).get('node')
        try:
            pin = self.step('pre_pin', instance.host, lambda: self.agents.pre_pin(
                self.rpc_ctxt, instance.host, instance=instance.name, node=want_node,
                migration_id=self.mid))
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
        waiter = self.parts.waiters.get(self.mid)
        self.set(status=MS.MIGRATING)
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
            self.db.finish_step(sid, StepStatus.FAILED, message=_reason(exc))
            raise
        except Exception as exc:  # noqa: BLE001 - no answer (timeout, broker away)
            # The request may have arrived and the copy started; only the
            # answer is missing. Ask the agent, as after a conductor
            # restart, rather than abort a copy that may be running.
            self.event('no_answer', rec['source'], message=f'migrate: {_reason(exc)}; asking '
                       'the source agent what runs', status=StepStatus.FAILED)
            self._wait_and_finish(sid, waiter, resumed=True)
            return
        self.parts.notifications.notify('start', self.record())
        self._wait_and_finish(sid, waiter)

    def _wait_and_finish(self, sid: int, waiter: Waiter, resumed: bool = False) -> None:
        result = self._wait(waiter, resumed)
        status = result.get('status')
        if status == JobOutcome.REFUSED:
            self.db.finish_step(sid, StepStatus.REFUSED, message=result.get('error'),
                                data=result)
            self._next_host(result)
            return
        self.set(result=result)
        if status == JobOutcome.COMPLETED:
            self.db.finish_step(sid, StepStatus.OK, data=result)
            self._verify(self.record())
            return
        self.db.finish_step(sid, StepStatus.FAILED, message=result.get('error') or status,
                            data=result)
        rec = self.record()
        reason = 'aborted by request' if rec['abort_requested'] else \
            f"migration {status}: {result.get('error') or 'no reason given'}"
        self._rollback(rec, reason)

    def _next_host(self, result: dict) -> None:
        """The destination was refused when the migration was asked for
        (the Nova driver: Nova's conductor or scheduler said no to the host;
        nothing was copied, the guest runs on its source): record the
        refused attempt and why, undo the pinning, give the admission slot
        back and go on with the next-ranked host, as after a
        check_destination refusal."""
        rec = self._still_mine()
        attempts = list(rec.get('attempts') or [])
        for attempt in attempts:
            if attempt['host'] == rec['dest'] and attempt.get('ok'):
                attempt.update(ok=False, reason=result.get('error') or 'refused',
                               step='migrate')
        LOG.warning('migration %s: %s; trying the next-ranked host', self.mid[:8],
                    result.get('error'))
        self._undo_pin(rec)
        self.parts.admission.release(self.mid)
        self.parts.waiters.forget(self.mid)     # its result was this refusal
        self.set(status=MS.PRECHECKING, attempts=attempts, pin=None, result=None,
                 progress=None)
        self._from_start()

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
        abort_sent = abort_confirmed = False
        first = resumed
        while True:
            woke = self.clock.wait(waiter.event, 0 if first else interval)
            if woke and waiter.result is not None:
                return waiter.result
            if self.parts.stopping.is_set():
                raise Interrupted()
            stored = self._stored_word(waiter)
            if stored is not None:
                return stored
            if woke:
                return {'status': JobOutcome.FAILED, 'error': 'empty result'}
            if not abort_confirmed and self.abort_requested():
                # Sent again at every poll until the agent confirms: an
                # abort that failed (or whose answer was lost) once must
                # not leave the copy running unwatched.
                if not abort_sent:
                    self.event('abort', rec['source'], message='abort requested')
                abort_sent = True
                abort_confirmed = self._send_abort(rec)
            first = False
            silent = self.clock.monotonic() - waiter.last_heard
            if silent >= quiet_after:
                job = _safe_call(lambda: self.agents.get_job(
                    self.rpc_ctxt, rec['source'], instance=rec['instance']))
                if job.get('ok') is False:
                    # The source agent does not answer (dead, restarting).
                    if silent >= self.conf.conductor.migration_timeout_seconds:
                        return {'status': JobOutcome.FAILED,
                                'error': f'no word from the source agent for {silent:.0f} s'}
                    where = self.parts.locator.locate(rec['instance'],
                                                      [rec['source'], rec['dest']])
                    if where.get(rec['dest']) == _GUEST_RUNNING and rec['source'] not in where:
                        return {'status': JobOutcome.COMPLETED, 'error': None,
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
                where = self.parts.locator.locate(rec['instance'], [rec['source'], rec['dest']])
                if where.get(rec['dest']) == _GUEST_RUNNING and rec['source'] not in where:
                    return {'status': JobOutcome.COMPLETED, 'error': None,
                            'note': 'job result lost; guest found running on destination'}
                if resumed or silent >= quiet_after * 2:
                    return {'status': JobOutcome.FAILED,
                            'error': 'the source agent has no job for this migration'}

    def _stored_word(self, waiter: Waiter) -> Optional[dict]:
        """What other conductors received for this migration (agents cast
        to any conductor on the topic): progress they stored counts as
        word from the agent, a result they stored is the outcome
        (leases.store_result). Raises LeaseLost once another conductor
        owns the record."""
        if self.parts.leases is None:
            return None
        now = self.record()
        if now.get('lease_owner') not in (None, self.owner()):
            raise db_api.LeaseLost(f"migration {self.mid} is owned by {now['lease_owner']} now")
        if now.get('result'):
            return now['result']
        progress = now.get('progress')
        if progress and progress != waiter.stored_progress:
            waiter.stored_progress = progress
            waiter.heard()
        return None

    def _resume_migrating(self, rec: dict) -> None:
        self.event('recovered', message='conductor restarted during migrate; resuming')
        waiter = self.parts.waiters.get(self.mid)
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
        self.set(status=MS.VERIFYING)
        timeout = self.conf.conductor.answer_timeout_seconds

        def not_yet(exc: Any, pause_s: float) -> None:
            LOG.warning('migration %s: cannot verify on %s yet (%s); asking again in %.0f s',
                        self.mid[:8], rec['dest'], _reason(exc), pause_s)

        try:
            answer = retry.call(
                lambda: self.step('post_verify', rec['dest'], lambda: self.agents.post_verify(
                    self.rpc_ctxt, rec['dest'], instance=rec['instance'],
                    uuid=rec.get('instance_uuid') or '', memory_mib=int(
                        self._guest_field(rec, 'memory_mib') or 0),
                    vcpus=int(self._guest_field(rec, 'vcpus') or 0),
                    cpus=rec.get('dest_cpus'))),
                clock=self.clock, retry_on=(Exception,), timeout_s=timeout, on_retry=not_yet)
        except db_api.DatabaseError:
            raise                       # not the destination's fault: the drive resumes it
        except Exception as exc:  # noqa: BLE001 - the destination could not be asked
            self.set(status=MS.FAILED, error=(
                f"the guest was handed over to {rec['dest']} (the copy completed) but "
                f"could not be verified there for {timeout} s: {_reason(exc)}"))
            return
        if not isinstance(answer, dict) or not answer.get('ok'):
            self.set(status=MS.FAILED, error=f"post_verify on {rec['dest']}: "
                     f"{(answer or {}).get('reason') if isinstance(answer, dict) else answer}")
            return
        # Learn before the record turns final, so that whoever waits for
        # the final status also sees what this migration taught.
        verified = self.record()
        learned = self.parts.learner.learn(verified)
        if learned:
            self.event('learn', message=f"{verified['source']} -> {verified['dest']}: "
                       f"observed {learned['observed_mibps']:.1f} MiB/s, path now "
                       f"{learned['mibps']:.1f} MiB/s ({learned['samples']} migrations), "
                       f"predictions use {learned['used_mibps']:.1f} MiB/s",
                       data=learned)
        self.set(status=MS.COMPLETED, error=None)

    def _guest_field(self, rec: dict, name: str):
        guest = (rec.get('result') or {}).get('guest') or {}
        if name in guest:
            return guest[name]
        locator = self.parts.locator
        state = locator.guest_state(rec['source'], rec['instance']) or \
            locator.guest_state(rec['dest'], rec['instance']) or {}
        return state.get(name)

    # -- failure path ---------------------------------------------------------
    def _rollback(self, rec: dict, reason: str) -> None:
        """Leave the guest running on exactly one host, pinning restored."""
        aborted = bool(rec.get('abort_requested'))
        self.set(status=MS.ROLLING_BACK, error=reason)
        sid = self.db.add_step(self.mid, 'rollback', rec['source'])
        # The facts come from the agents. One that does not answer (it is
        # restarting, the broker is away) is asked again for a while: a
        # record finished on "seen nowhere" could say 'failed' of a guest
        # whose copy then completes.
        deadline = self.clock.monotonic() + self.conf.conductor.answer_timeout_seconds
        job = self._until_answered(deadline, lambda: self.agents.get_job(
            self.rpc_ctxt, rec['source'], instance=rec['instance']))
        if job.get('active') and self._job_is_ours(rec, job):
            retry.call(lambda: self._send_abort(rec), clock=self.clock,
                       done=lambda confirmed: confirmed,
                       timeout_s=max(0.0, deadline - self.clock.monotonic()))
            self._wait_job_gone(rec)
        hosts = [h for h in (rec['source'], rec.get('dest')) if h]
        answered: set = set()

        def locate() -> dict[str, str]:
            answered.clear()
            return self.parts.locator.locate(rec['instance'], hosts, answered=answered)

        where = retry.call(locate, clock=self.clock, done=lambda _: answered >= set(hosts),
                           timeout_s=max(0.0, deadline - self.clock.monotonic()))
        dest = rec.get('dest')
        if dest and where.get(dest) == _GUEST_RUNNING and rec['source'] not in where:
            # The switch-over happened after all: the guest lives on the
            # destination now. Finish forward instead of pretending.
            self.db.finish_step(sid, StepStatus.OK, message='guest already runs on the '
                                'destination; verifying instead of rolling back',
                                data={'where': where})
            self._verify(self.record())
            return
        problems = [f'{h} did not answer: where the guest runs there is unknown'
                    for h in hosts if h not in answered]
        if where.get(rec['source']) not in _GUEST_ALIVE:
            problems.append(f'guest not found running on the source (seen: {where or "nowhere"})')
        if dest and dest in where and rec['source'] in where:
            problems.append(f'guest also present on {dest} ({where[dest]})')
        self._undo_pin(rec)
        self.db.finish_step(sid, StepStatus.OK if not problems else StepStatus.FAILED,
                            message='; '.join(problems) or None, data={'where': where})
        final_reason = reason + (' | ' + '; '.join(problems) if problems else '')
        self.set(status=MS.ABORTED if aborted else MS.FAILED, error=final_reason)

    def _job_is_ours(self, rec: dict, job: dict) -> bool:
        """Is the guest's running job this migration's? Only then may it
        be aborted: a job of another migration (another conductor's, of
        the same guest) is never touched. A job without an id (the source
        agent restarted and lost its memory) is ours only if our migrate
        request got through (a 'migrate' step that did not fail)."""
        jid = job.get('migration_id')
        if jid is not None:
            return jid == self.mid
        steps = self.db.get_migration(self.mid)['steps']
        return any(s['name'] == 'migrate' and s['status'] != StepStatus.FAILED for s in steps)

    def _send_abort(self, rec: dict) -> bool:
        """Ask the source to abort; True once it confirms (or has no job)."""
        answer = _safe_call(lambda: self.agents.abort(self.rpc_ctxt, rec['source'],
                                                      instance=rec['instance']))
        if answer.get('aborted') is True:
            return True
        job = _safe_call(lambda: self.agents.get_job(self.rpc_ctxt, rec['source'],
                                                     instance=rec['instance']))
        return job.get('ok') is not False and not job.get('active')

    def _until_answered(self, deadline: float, fn: Callable[[], Any]) -> dict:
        """``fn``'s answer; while it fails (no answer), asked again with a
        growing pause until ``deadline``; then the failure (``ok: False``)."""
        return retry.call(lambda: _safe_call(fn), clock=self.clock,
                          done=lambda answer: answer.get('ok') is not False,
                          timeout_s=max(0.0, deadline - self.clock.monotonic()))

    def _wait_job_gone(self, rec: dict, timeout_s: float = 30.0) -> None:
        """Poll the source every 0.5 s until its (aborted) job is gone."""
        retry.call(lambda: _safe_call(lambda: self.agents.get_job(
            self.rpc_ctxt, rec['source'], instance=rec['instance'])),
            clock=self.clock, done=lambda job: not job.get('active'), timeout_s=timeout_s,
            pause_s=0.5, factor=1.0)

    def _undo_pin(self, rec: dict) -> None:
        pin = rec.get('pin') or {}
        previous = pin.get('previous_cpus')
        if not previous:
            return
        self.step('restore_pin', rec['source'], lambda: self.agents.restore_pin(
            self.rpc_ctxt, rec['source'], instance=rec['instance'], cpus=previous,
            migration_id=self.mid), tolerate=True)


#: How a record is picked up, by its status: the workflow's entry points.
RESUME: dict[MS, Callable[[MigrationWorkflow, dict], None]] = {
    MS.QUEUED: MigrationWorkflow._start,
    MS.SCHEDULING: MigrationWorkflow._restart,
    MS.PRECHECKING: MigrationWorkflow._restart,
    MS.PINNING: MigrationWorkflow._restart,
    MS.MIGRATING: MigrationWorkflow._resume_migrating,
    MS.VERIFYING: MigrationWorkflow._verify,
    MS.ROLLING_BACK: MigrationWorkflow._resume_rollback,
    MS.COMPLETED: MigrationWorkflow._ended,
    MS.FAILED: MigrationWorkflow._ended,
    MS.ABORTED: MigrationWorkflow._ended,
}


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
