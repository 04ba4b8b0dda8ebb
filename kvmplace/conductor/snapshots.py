"""The scheduler's view of the cloud: inventory and topology, built from
the stored reports, with the last topology cached for the link-room checks.

Admission asks a link's capacity from the migration threads (one per
running workflow, under the admission's own lock) while RPC threads and
drains build new snapshots: the cached topology is only read and replaced
under this module's lock, and never built while holding it (building reads
the database).
"""
from __future__ import annotations

import threading
from typing import Optional

from kvmplace import objects
from kvmplace import resources
from kvmplace import topology as topo
from kvmplace.conductor import hoststate
from kvmplace.conductor import learning
from kvmplace.conductor.db import api as db_api


class Snapshots:
    """Builds (inventory, topology) snapshots; caches the latest topology."""

    def __init__(self, conf, db: db_api.Database, scheduler, links: list[dict]):
        self.conf = conf
        self.db = db
        self.scheduler = scheduler
        self.links = links
        self._lock = threading.Lock()
        self._topology: Optional[topo.Topology] = None

    def snapshot(self, exclude_migration: Optional[str] = None
                 ) -> tuple[objects.Inventory, topo.Topology]:
        """Current inventory (with in-flight claims) and topology."""
        active = [m for m in self.db.unfinished_migrations() if m['id'] != exclude_migration]
        inventory = hoststate.build_inventory(self.db.list_hosts(), active,
                                              self.conf.scheduler.host_down_seconds,
                                              self.links)
        topology = topo.Topology.from_inventory(inventory)
        if self.conf.estimator.learn_path_throughput:
            inventory.path_rates = learning.trusted_rates(
                self.db.path_learning(self.conf.estimator.learned_max_age_seconds),
                topology, self.scheduler.params,
                self.conf.estimator.learning_prior_migrations)
        with self._lock:
            self._topology = topology
        return inventory, topology

    def topology(self) -> topo.Topology:
        """The latest snapshot's topology (a new snapshot if there is none)."""
        with self._lock:
            cached = self._topology
        return cached if cached is not None else self.snapshot()[1]

    def link_capacity_mibps(self, link: tuple) -> float:
        """What admission may put on ``link``: its nominal rate x link
        efficiency, minus the configured reserve (effective MiB/s)."""
        return resources.link_mibps(self.topology().capacity_mbps(link),
                                    self.conf.estimator.link_efficiency,
                                    1.0 - self.conf.conductor.link_reserve_fraction)
