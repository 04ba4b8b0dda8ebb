"""What the conductor's RPC server dispatches to: the RPC methods, nothing else.

oslo.messaging's dispatcher calls any public attribute of an endpoint by
name. When the ConductorManager itself was the endpoint, its internals
(``learn``, ``notify_final``, ``locate``, ``start_migration``, ``recover``,
``stop``...) were callable by anyone on the bus: a forged ``learn`` call
poisoned the learned path rates. This endpoint lists the RPC methods of
:mod:`kvmplace.conductor.rpcapi` (API 1.1) one by one and forwards each to
the manager; a call of anything else is refused by the dispatcher
(NoSuchMethod).

Every method declares KvmplaceError (InvalidInput, NotFound, NoValidHost,
DatabaseError...) as expected (``oslo_messaging.expected_exceptions``): a
refused request is the caller's business, logged at debug level, not a
server error with a traceback (anyone on the bus could otherwise fill the
log). The caller still gets the exception with its message.

The agents' casts and the operators' calls are two endpoints served on
two topics: :class:`ReportsEndpoint` (``report_state``,
``migration_progress``, ``migration_finished``) on
``kvmplace-conductor-reports``, :class:`ConductorEndpoint` (everything an
operator, the CLI or a cloud scheduler calls) on ``kvmplace-conductor``.
A compute host's broker account may then publish on the reports topic
and not on the operator topic, so RabbitMQ itself refuses a host's
``migrate`` or ``drain`` (doc/source/user/security.rst).

Adding an RPC method: implement it on the manager, add it to the right
endpoint and to :data:`OPERATOR_METHODS` or :data:`REPORT_METHODS`, and to
the client (rpcapi) with a version bump.
"""
from __future__ import annotations

import functools
from typing import Optional

import oslo_messaging as messaging

from kvmplace import bounds
from kvmplace.conductor import manager as manager_mod
from kvmplace.exception import InvalidInput, KvmplaceError

#: The agents' casts: the only names served on the reports topic.
REPORT_METHODS = ('report_state', 'migration_progress', 'migration_finished')

#: Calls from operators and clients (CLI, a cloud scheduler): the only
#: names served on the operator topic (with the Nova namespace's, see
#: kvmplace.conductor.decisions).
OPERATOR_METHODS = (
    'select_destinations', 'estimate', 'migrate', 'get_migration', 'list_migrations',
    'abort_migration', 'drain', 'rebalance', 'get_drain', 'list_drains', 'list_hosts',
    'get_host', 'set_maintenance',
    # API 1.1: learned path throughput
    'list_path_rates', 'forget_path_rates',
)

#: The conductor's whole RPC API: the only names a bus client can call.
RPC_METHODS = REPORT_METHODS + OPERATOR_METHODS


def _expected(fn):
    """KvmplaceError expected; every argument sized (kvmplace.bounds)
    before the manager sees it. A cast's refusal reaches nobody: it is
    logged in one line and dropped, as the manager drops a malformed one."""
    @functools.wraps(fn)
    def wrapper(self, ctxt, *args, **kwargs):
        try:
            for key, value in kwargs.items():
                if key == 'host_state':
                    bounds.report(key, value)
                else:
                    bounds.plain(key, value)
        except InvalidInput as exc:
            if fn.__name__ in REPORT_METHODS:
                manager_mod.LOG.warning('%s dropped: %s', fn.__name__, exc)
                return None
            raise
        return fn(self, ctxt, *args, **kwargs)
    return messaging.expected_exceptions(KvmplaceError)(wrapper)


class ReportsEndpoint:
    """The agents' casts to one ConductorManager (API 1.1's casts), served
    on :data:`kvmplace.rpc.CONDUCTOR_REPORTS_TOPIC`."""

    target = messaging.Target(version='1.1')

    def __init__(self, manager: manager_mod.ConductorManager):
        self._manager = manager

    @_expected
    def report_state(self, ctxt, host_state: dict) -> None:
        self._manager.report_state(ctxt, host_state)

    @_expected
    def migration_progress(self, ctxt, migration_id: str, progress: dict) -> None:
        self._manager.migration_progress(ctxt, migration_id, progress)

    @_expected
    def migration_finished(self, ctxt, migration_id: str, result: dict) -> None:
        self._manager.migration_finished(ctxt, migration_id, result)


class ConductorEndpoint:
    """The operators' RPC surface of one ConductorManager (API 1.1), served
    on :data:`kvmplace.rpc.CONDUCTOR_TOPIC`: no agent cast here."""

    target = messaging.Target(version='1.1')

    def __init__(self, manager: manager_mod.ConductorManager):
        self._manager = manager

    @_expected
    def select_destinations(self, ctxt, instance: str, policy: Optional[dict] = None,
                            force_hosts: Optional[list] = None,
                            ignore_hosts: Optional[list] = None) -> dict:
        return self._manager.select_destinations(ctxt, instance, policy=policy,
                                                 force_hosts=force_hosts,
                                                 ignore_hosts=ignore_hosts)

    @_expected
    def estimate(self, ctxt, instance: str, dest: str, policy: Optional[dict] = None) -> dict:
        return self._manager.estimate(ctxt, instance, dest, policy=policy)

    @_expected
    def migrate(self, ctxt, instance: str, dest: Optional[str] = None,
                policy: Optional[dict] = None) -> dict:
        return self._manager.migrate(ctxt, instance, dest=dest, policy=policy)

    @_expected
    def get_migration(self, ctxt, migration_id: str) -> dict:
        return self._manager.get_migration(ctxt, migration_id)

    @_expected
    def list_migrations(self, ctxt, status: Optional[str] = None,
                        instance: Optional[str] = None, limit: int = 50) -> list[dict]:
        return self._manager.list_migrations(ctxt, status=status, instance=instance,
                                             limit=limit)

    @_expected
    def abort_migration(self, ctxt, migration_id: str) -> dict:
        return self._manager.abort_migration(ctxt, migration_id)

    @_expected
    def drain(self, ctxt, host: str, dry_run: bool = False) -> dict:
        return self._manager.drain(ctxt, host, dry_run=dry_run)

    @_expected
    def rebalance(self, ctxt, threshold: float = 0.1, dry_run: bool = False) -> dict:
        return self._manager.rebalance(ctxt, threshold=threshold, dry_run=dry_run)

    @_expected
    def get_drain(self, ctxt, drain_id: str) -> dict:
        return self._manager.get_drain(ctxt, drain_id)

    @_expected
    def list_drains(self, ctxt, status: Optional[str] = None) -> list[dict]:
        return self._manager.list_drains(ctxt, status=status)

    @_expected
    def list_hosts(self, ctxt) -> list[dict]:
        return self._manager.list_hosts(ctxt)

    @_expected
    def get_host(self, ctxt, host: str) -> dict:
        return self._manager.get_host(ctxt, host)

    @_expected
    def set_maintenance(self, ctxt, host: str, on: bool, reason: Optional[str] = None) -> dict:
        return self._manager.set_maintenance(ctxt, host, on, reason=reason)

    # -- API 1.1: learned path throughput ---------------------------------------
    @_expected
    def list_path_rates(self, ctxt) -> list[dict]:
        return self._manager.list_path_rates(ctxt)

    @_expected
    def forget_path_rates(self, ctxt, source: Optional[str] = None,
                          dest: Optional[str] = None) -> dict:
        return self._manager.forget_path_rates(ctxt, source=source, dest=dest)
