"""Client side of the agent RPC API (topic ``kvmplace-agent``, server=host).

This module is the contract between the conductor and the agents. Every
argument and return value is plain data. Refusals that are a normal answer
(a destination without room) come back as ``{"ok": False, "reason": ...}``;
bad arguments and failures raise ``kvmplace.exception`` errors on the
caller's side with the agent's reason.

API version history:

* 1.0 - get_host_state, check_destination, pre_pin, restore_pin, migrate,
  get_job, abort, post_verify
* 1.1 - pre_pin and restore_pin take an optional ``migration_id``: while a
  guest migrates, the agent refuses pinning requests that are not that
  migration's. Sent (as 1.1) only when given, so 1.0 agents still answer
  the calls that carry none.
"""
from __future__ import annotations

from typing import Any, Optional

from kvmplace import rpc


class AgentAPI:
    VERSION = '1.1'

    def __init__(self, conf=None, timeout: Optional[int] = None):
        kwargs = {} if conf is None else {'conf': conf}
        self.client = rpc.get_client(rpc.AGENT_TOPIC, self.VERSION, timeout=timeout, **kwargs)

    def _call(self, ctxt, host: str, method: str, version: Optional[str] = None,
              **kwargs) -> Any:
        # Each call says the oldest version that has its arguments (1.0
        # unless told), so agents not yet upgraded answer it: the client's
        # own VERSION is only the newest it can speak.
        prepared = self.client.prepare(server=host, version=version or '1.0')
        return prepared.call(ctxt, method, **kwargs)

    @staticmethod
    def _with_migration(migration_id: Optional[str], kwargs: dict) -> tuple[str, dict]:
        """(version, kwargs): ``migration_id`` is a 1.1 argument."""
        if migration_id is None:
            return '1.0', kwargs
        return '1.1', dict(kwargs, migration_id=migration_id)

    def get_host_state(self, ctxt, host: str) -> dict:
        """The host's state: Host fields (ARCHITECTURE inventory) plus
        ``instances`` (list of guest dicts: name, uuid, host, memory_mib,
        vcpus, state, dirty_rate_mibps, emulator_node, emulator_cpus,
        qemu_pid, qemu_affinity, vcpu_cpus, disks, disk_gib,
        shared_storage), ``libvirt_uri``, ``migration_address``,
        ``reported_at``, ``active_jobs``."""
        return self._call(ctxt, host, 'get_host_state')

    def check_destination(self, ctxt, host: str, instance: dict, source_cpu_model: Optional[str]
                          ) -> dict:
        """Can ``host`` take this guest? ``instance`` is the guest dict from
        the source's state. Returns ``{"ok", "reason", "node", "cpus",
        "libvirt_uri", "migration_uri"}``: the healthy NUMA node and CPUs the
        incoming QEMU main thread should use, and where to migrate to."""
        return self._call(ctxt, host, 'check_destination', instance=instance,
                          source_cpu_model=source_cpu_model)

    def pre_pin(self, ctxt, host: str, instance: str, node: Optional[int] = None,
                migration_id: Optional[str] = None) -> dict:
        """Pin the guest's emulator thread to ``node`` (None: the healthiest
        node with room). Returns ``{"node", "cpus", "previous_cpus",
        "affinity"}``; ``affinity`` is read back from /proc."""
        version, kwargs = self._with_migration(migration_id, {'instance': instance,
                                                              'node': node})
        return self._call(ctxt, host, 'pre_pin', version=version, **kwargs)

    def restore_pin(self, ctxt, host: str, instance: str, cpus: str,
                    migration_id: Optional[str] = None) -> dict:
        """Put the emulator pinning back to ``cpus``; returns ``{"cpus", "affinity"}``."""
        version, kwargs = self._with_migration(migration_id, {'instance': instance,
                                                              'cpus': cpus})
        return self._call(ctxt, host, 'restore_pin', version=version, **kwargs)

    def migrate(self, ctxt, host: str, migration_id: str, instance: str, dest_host: str,
                dest_uri: str, migrate_uri: Optional[str], dest_cpus: Optional[str],
                policy: dict) -> dict:
        """Start a live migration; returns at once ``{"started": True}``.

        The agent polls job statistics at least every second and casts
        ``migration_progress(migration_id, progress)`` to the conductor, then
        ``migration_finished(migration_id, result)`` with ``result["status"]``
        one of completed, failed, aborted, timed-out."""
        return self._call(ctxt, host, 'migrate', migration_id=migration_id, instance=instance,
                          dest_host=dest_host, dest_uri=dest_uri, migrate_uri=migrate_uri,
                          dest_cpus=dest_cpus, policy=policy)

    def get_job(self, ctxt, host: str, instance: str) -> dict:
        """``{"active", "migration_id", "progress", "result"}`` for the guest's
        current or last migration job (lets a restarted conductor resume)."""
        return self._call(ctxt, host, 'get_job', instance=instance)

    def abort(self, ctxt, host: str, instance: str) -> dict:
        """Abort the guest's running migration job: ``{"aborted": bool}``."""
        return self._call(ctxt, host, 'abort', instance=instance)

    def post_verify(self, ctxt, host: str, instance: str, uuid: str, memory_mib: int,
                    vcpus: int, cpus: Optional[str]) -> dict:
        """On the destination: is the guest running here with the same UUID,
        memory and vCPUs, its main thread on ``cpus``? ``{"ok", "reason",
        "affinity"}``."""
        return self._call(ctxt, host, 'post_verify', instance=instance, uuid=uuid,
                          memory_mib=memory_mib, vcpus=vcpus, cpus=cpus)
