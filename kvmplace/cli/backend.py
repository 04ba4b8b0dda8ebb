"""Where the answers come from: an offline inventory, or the conductor.

Commands ask a back end the same questions either way (select, estimate,
plan a drain or a rebalance) and get the same plain data back, so a
command module never needs to know about the other's transport, and the
explanations (explain.py) work the same offline and online.
"""
from __future__ import annotations

from typing import Optional

from kvmplace import inventory as inv
from kvmplace import objects
from kvmplace.cli import client
from kvmplace.exception import InvalidInput, KvmplaceError


class Offline:
    """Plans on an inventory file with this machine's scheduler plugins."""

    online = False

    def __init__(self, app, path: str):
        from kvmplace.scheduler import manager
        self.app = app
        self.inventory = inv.load(path)
        self.scheduler = manager.SchedulerManager(app.conf)

    def select(self, instance: str, policy: objects.Policy, force_hosts: tuple = (),
               ignore_hosts: tuple = (), ranked_columns: bool = False) -> dict:
        """The scheduler's answer; with ``ranked_columns`` its ``ranked`` is
        the scheduler's RankedHosts, for an answer only written as JSON."""
        request = objects.MigrationRequest(instance=instance, force_hosts=list(force_hosts),
                                           ignore_hosts=list(ignore_hosts), policy=policy)
        return self.scheduler.select(self.inventory, request, ranked_columns=ranked_columns)

    def estimate(self, instance: str, dest: str, policy: objects.Policy) -> dict:
        return self.scheduler.estimate(self.inventory, instance, dest, policy=policy).to_dict()

    def drain(self, host: str, policy: objects.Policy, dry_run: bool) -> dict:
        from kvmplace.planner import drain
        _offline_is_a_dry_run(dry_run)
        if host in self.inventory.hosts and not self.inventory.instances_on(host):
            return empty_drain(host)
        return drain.plan(self.scheduler, self.inventory, host, policy=policy,
                          reserve_fraction=self.app.conf.conductor.link_reserve_fraction)

    def rebalance(self, threshold: float, policy: objects.Policy, dry_run: bool) -> dict:
        from kvmplace.planner import rebalance
        _offline_is_a_dry_run(dry_run)
        return rebalance.plan(self.scheduler, self.inventory, threshold, policy=policy,
                              reserve_fraction=self.app.conf.conductor.link_reserve_fraction)

    def capacities(self) -> Optional[dict]:
        """Effective MiB/s per link, for the plan picture."""
        from kvmplace import estimator
        from kvmplace import topology as topo
        from kvmplace.planner import schedule
        topology = topo.Topology.from_inventory(self.inventory)
        capacity = schedule.link_capacity(
            topology, estimator.ModelParams.from_conf(self.app.conf),
            self.app.conf.conductor.link_reserve_fraction)
        return {link: capacity(link) for link in topology.links()}


class Conductor:
    """Asks the running conductor (needs --config-file with transport_url)."""

    online = True

    def __init__(self, app):
        self.app = app
        self._api = None

    @property
    def api(self):
        if self._api is None:
            self._api = client.conductor(self.app)
        return self._api

    def select(self, instance: str, policy: objects.Policy, force_hosts: tuple = (),
               ignore_hosts: tuple = (), ranked_columns: bool = False) -> dict:
        """The conductor's answer: plain data whatever ``ranked_columns``."""
        from kvmplace.cli import options
        return client.call(self.api.select_destinations, instance,
                           policy=options.policy_dict(policy), force_hosts=list(force_hosts),
                           ignore_hosts=list(ignore_hosts))

    def estimate(self, instance: str, dest: str, policy: objects.Policy) -> dict:
        from kvmplace.cli import options
        return client.call(self.api.estimate, instance, dest,
                           policy=options.policy_dict(policy))

    def drain(self, host: str, policy: objects.Policy, dry_run: bool) -> dict:
        try:
            if dry_run:
                return client.call(self.api.drain, host, dry_run=True)
            return client.call(self.api.drain, host)
        except KvmplaceError as exc:
            # The conductor refuses to plan an empty host; for a dry run
            # that is simply an empty plan (a script may drain every host).
            if dry_run and 'has no guests' in str(exc):
                return empty_drain(host)
            raise

    def rebalance(self, threshold: float, policy: objects.Policy, dry_run: bool) -> dict:
        if dry_run:
            return client.call(self.api.rebalance, threshold=threshold, dry_run=True)
        return client.call(self.api.rebalance, threshold=threshold)

    def capacities(self) -> Optional[dict]:
        return None


def for_args(app, parsed_args) -> Offline | Conductor:
    """The offline back end with --inventory, else the conductor."""
    if getattr(parsed_args, 'inventory', None):
        return Offline(app, parsed_args.inventory)
    return Conductor(app)


def empty_drain(host: str) -> dict:
    """The plan of a host that has no guest: nothing to move, done."""
    return {'host': host, 'migrations': [], 'unplaced': [],
            'predicted_makespan_seconds': 0.0, 'physical_bound_seconds': 0.0,
            'memory_to_move_mib': 0, 'note': f'{host} has no guests: nothing to move'}


def _offline_is_a_dry_run(dry_run: bool) -> None:
    if not dry_run:
        raise InvalidInput('--dry-run', 'an offline inventory can only be planned: '
                           'add --dry-run (or drop --inventory to act for real)')
