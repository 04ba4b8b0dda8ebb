"""Turn the agents' latest reports into the scheduler's Inventory.

Reports can be a few seconds old, and migrations already under way have not
landed yet, so in-flight migrations are *claimed* against their destination
(memory and vCPUs counted as used there) the way Nova claims resources:
two concurrent requests must not both fill the last free space on a host.
"""
from __future__ import annotations

import json
import time
from typing import Optional

from kvmplace import inventory as inv_mod
from kvmplace import objects
from kvmplace import resources


def build_inventory(host_rows: list[dict], active_migrations: list[dict],
                    host_down_seconds: float, links: Optional[list[dict]] = None,
                    now: Optional[float] = None) -> objects.Inventory:
    now = time.time() if now is None else now
    hosts: dict[str, objects.Host] = {}
    instances: dict[str, objects.Instance] = {}
    for row in host_rows:
        state = dict(row.get('state') or {})
        guests = state.pop('instances', []) or []
        host = objects.Host.from_dict({**state, 'name': row['name']})
        reported = row.get('reported_at')
        host.updated_at = reported
        host.up = resources.host_is_up(reported, now, host_down_seconds)
        host.maintenance = bool(row.get('maintenance')) or bool(state.get('maintenance'))
        host.enabled = not row.get('disabled') and state.get('enabled', True)
        hosts[host.name] = host
        for g in guests:
            if g.get('state', 'running') not in ('running', 'paused'):
                continue
            inst = objects.Instance.from_dict({**g, 'host': host.name})
            # A guest seen on two hosts mid-migration: the source's copy is the live one.
            if inst.name in instances and g.get('incoming'):
                continue
            instances[inst.name] = inst
    for mig in active_migrations:
        dest = hosts.get(mig.get('dest') or '')
        inst = instances.get(mig['instance'])
        if dest is None or inst is None or inst.host == dest.name:
            continue
        dest.memory_used_mib += inst.memory_mib
        dest.vcpus_used += inst.vcpus
    link_objs = [objects.Link(**link) for link in links or []]
    return objects.Inventory(hosts=hosts, instances=instances, links=link_objs)


def load_links(path: Optional[str]) -> list[dict]:
    """Links of the topology file ({"links": [...]}, the inventory's format)."""
    if not path:
        return []
    with open(path, encoding='utf-8') as fh:
        data = inv_mod.parse_text(fh.read(), path)
    if not isinstance(data, dict) or not isinstance(data.get('links', []), list):
        from kvmplace.exception import InvalidInput
        raise InvalidInput('[conductor] topology_file', 'must hold {"links": [...]}')
    return [{'a': link['a'], 'b': link['b'], 'mbps': float(link['mbps'])}
            for link in data.get('links', [])]


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
