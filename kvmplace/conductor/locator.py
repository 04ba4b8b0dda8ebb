"""Where a guest is: from the agents, live (locate), or from the last
stored report (guest_state)."""
from __future__ import annotations

import logging
from typing import Optional

from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor import validate as v
from kvmplace.conductor.db import api as db_api
from kvmplace.exception import NotFound

LOG = logging.getLogger(__name__)

#: The guest state a report leaves out: a listed guest runs.
RUNNING = 'running'


class Locator:
    def __init__(self, db: db_api.Database, agents, clock: clock_mod.Clock = clock_mod.REAL):
        self.db = db
        self.agents = agents
        self.clock = clock

    def guest_state(self, host: str, instance: str) -> Optional[dict]:
        """The guest as ``host`` last reported it, or None."""
        try:
            state = self.db.get_host(host)['state']
        except NotFound:
            return None
        for guest in state.get('instances') or []:
            if guest.get('name') == instance:
                return guest
        return None

    def locate(self, instance: str, hosts: list[str],
               answered: Optional[set] = None) -> dict[str, str]:
        """Ask the agents (live, not the database) where the guest is.

        ``answered`` (if given) collects the hosts that did answer: a host
        missing from the result may not have the guest, or may not have
        been asked at all (agent down, broker down), and a caller deciding
        a record's final state must tell the two apart.
        """
        where: dict[str, str] = {}
        for host in hosts:
            try:
                state = v.host_state(self.agents.get_host_state({}, host))
            except Exception as exc:  # noqa: BLE001 - an unreachable host is reported
                LOG.warning('locate %s: %s does not answer: %s', instance, host, exc)
                continue
            if answered is not None:
                answered.add(host)
            try:
                self.db.report_host(host, state, self.clock.time())
            except db_api.DatabaseError as exc:
                LOG.warning('locate %s: state of %s not stored: %s', instance, host, exc)
            for guest in state.get('instances') or []:
                if guest.get('name') == instance:
                    where[host] = guest.get('state', RUNNING)
        return where
