"""Client side of the conductor RPC API (topic ``kvmplace-conductor``; the
agents' casts on ``kvmplace-conductor-reports``).

For the CLI and for other services - a cloud scheduler asking "where
should this guest go?" - and for the agents' casts. All arguments and
results are plain data; errors arrive as ``kvmplace.exception`` classes
with the conductor's message.

Usage from another service::

    from oslo_config import cfg
    from kvmplace.conductor import rpcapi
    api = rpcapi.ConductorAPI()              # uses cfg.CONF's transport_url
    ranked = api.select_destinations({}, 'vm-17')['ranked']

API version history:

* 1.0 - select_destinations, estimate, migrate, get_migration,
  list_migrations, abort_migration, list_hosts, get_host, set_maintenance,
  drain, get_drain, list_drains, rebalance; casts report_state,
  migration_progress, migration_finished
* 1.1 - list_path_rates, forget_path_rates (learned path throughput)

The casts report_state, migration_progress and migration_finished go to the
topic ``kvmplace-conductor-reports`` (same versions), where the conductor
serves them alone, so broker permissions can let an agent report without
letting it call the operators' methods (doc/source/user/security.rst).
"""
from __future__ import annotations

from typing import Any, Optional

from kvmplace import rpc


class ConductorAPI:
    #: What every call asks for unless it needs more (prepare(version=...)),
    #: so a 1.0 conductor still serves the 1.0 methods of a newer client.
    VERSION = '1.0'

    def __init__(self, conf=None, timeout: Optional[int] = None):
        kwargs = {} if conf is None else {'conf': conf}
        self.client = rpc.get_client(rpc.CONDUCTOR_TOPIC, self.VERSION, timeout=timeout,
                                     **kwargs)
        self.reports = rpc.get_client(rpc.CONDUCTOR_REPORTS_TOPIC, self.VERSION,
                                      timeout=timeout, **kwargs)

    def _call(self, ctxt, method: str, **kwargs) -> Any:
        return self.client.prepare().call(ctxt or {}, method, **kwargs)

    def _cast(self, ctxt, method: str, **kwargs) -> None:
        self.reports.prepare().cast(ctxt or {}, method, **kwargs)

    # -- for schedulers and operators -----------------------------------------
    def select_destinations(self, ctxt, instance: str, policy: Optional[dict] = None,
                            force_hosts: Optional[list] = None,
                            ignore_hosts: Optional[list] = None) -> dict:
        """Ranked targets with reasons: ``{"instance", "source", "ranked",
        "rejected"}`` exactly as ``kvmplace select -f json``."""
        return self._call(ctxt, 'select_destinations', instance=instance, policy=policy,
                          force_hosts=force_hosts, ignore_hosts=ignore_hosts)

    def estimate(self, ctxt, instance: str, dest: str, policy: Optional[dict] = None) -> dict:
        """ESTIMATE for moving ``instance`` to ``dest`` from live host states."""
        return self._call(ctxt, 'estimate', instance=instance, dest=dest, policy=policy)

    def migrate(self, ctxt, instance: str, dest: Optional[str] = None,
                policy: Optional[dict] = None) -> dict:
        """Start a migration (``dest`` None: the best host); the queued record."""
        return self._call(ctxt, 'migrate', instance=instance, dest=dest, policy=policy)

    def get_migration(self, ctxt, migration_id: str) -> dict:
        """The record with every step (``steps``), by id or unambiguous prefix."""
        return self._call(ctxt, 'get_migration', migration_id=migration_id)

    def list_migrations(self, ctxt, status: Optional[str] = None,
                        instance: Optional[str] = None, limit: int = 50) -> list:
        return self._call(ctxt, 'list_migrations', status=status, instance=instance,
                          limit=limit)

    def abort_migration(self, ctxt, migration_id: str) -> dict:
        return self._call(ctxt, 'abort_migration', migration_id=migration_id)

    def list_hosts(self, ctxt) -> list:
        return self._call(ctxt, 'list_hosts')

    def get_host(self, ctxt, host: str) -> dict:
        return self._call(ctxt, 'get_host', host=host)

    def set_maintenance(self, ctxt, host: str, on: bool, reason: Optional[str] = None) -> dict:
        return self._call(ctxt, 'set_maintenance', host=host, on=on, reason=reason)

    def list_path_rates(self, ctxt) -> list:
        """Learned throughput per (source, dest) path, with age and whether
        predictions use it (1.1)."""
        return self.client.prepare(version='1.1').call(ctxt or {}, 'list_path_rates')

    def forget_path_rates(self, ctxt, source: Optional[str] = None,
                          dest: Optional[str] = None) -> dict:
        """Forget learned paths from ``source`` and/or to ``dest`` (both None:
        all), e.g. after a link upgrade (1.1)."""
        return self.client.prepare(version='1.1').call(ctxt or {}, 'forget_path_rates',
                                                       source=source, dest=dest)

    def drain(self, ctxt, host: str, dry_run: bool = False) -> dict:
        """Drain ``host``: the plan (dry run) or the started drain record."""
        return self._call(ctxt, 'drain', host=host, dry_run=dry_run)

    def get_drain(self, ctxt, drain_id: str) -> dict:
        """The drain or rebalance record with its plan and its migrations."""
        return self._call(ctxt, 'get_drain', drain_id=drain_id)

    def list_drains(self, ctxt, status: Optional[str] = None) -> list:
        return self._call(ctxt, 'list_drains', status=status)

    def rebalance(self, ctxt, threshold: float = 0.1, dry_run: bool = False) -> dict:
        """Rebalance the cluster: the plan (dry run) or the started record."""
        return self._call(ctxt, 'rebalance', threshold=threshold, dry_run=dry_run)

    # -- casts from the agents ------------------------------------------------
    def report_state(self, ctxt, host_state: dict) -> None:
        self._cast(ctxt, 'report_state', host_state=host_state)

    def migration_progress(self, ctxt, migration_id: str, progress: dict) -> None:
        self._cast(ctxt, 'migration_progress', migration_id=migration_id, progress=progress)

    def migration_finished(self, ctxt, migration_id: str, result: dict) -> None:
        self._cast(ctxt, 'migration_finished', migration_id=migration_id, result=result)
