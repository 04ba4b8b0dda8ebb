"""The cloud's inventory as kvmplace host states: Nova and Placement facts,
with the kvmplace agents' facts laid over them.

From Nova (admin): the nova-compute services (enabled, up, disabled
reason), the hypervisors (compute node UUIDs, which are Placement's
resource provider UUIDs) and every server with its host, status, flavor
(RAM, vCPUs, root disk) and libvirt domain name. From Placement, per
compute node: the VCPU and MEMORY_MB inventories (total, reserved,
allocation ratio) and their usage. From the kvmplace agent beside
nova-compute, when it reports: NUMA nodes and their memory bandwidth, link
speed, CPU model and per guest (matched by instance UUID) its dirty rate
and emulator pinning.

A fact nobody gives takes the inventory's documented default: without an
agent a host has no NUMA figures (health 1.0: no slow-node penalty, no
pre-pin), ``[nova] default_link_mbps`` and no CPU model; a guest has dirty
rate 0 and is taken to be on shared storage (Nova's ``block_migration
auto`` decides what is copied).
"""
from __future__ import annotations

from typing import Any, Optional

from kvmplace.validation import NAME_RE

#: Server statuses (Nova's) kvmplace counts as a running guest.
_RUNNING = {'ACTIVE': 'running', 'MIGRATING': 'running', 'PAUSED': 'paused'}
#: What the agent knows of a guest that Nova does not.
_AGENT_GUEST_FIELDS = ('dirty_rate_mibps', 'emulator_node', 'emulator_cpus', 'qemu_pid',
                       'qemu_affinity', 'vcpu_cpus', 'disks', 'disk_gib', 'shared_storage',
                       'cpu_model')
#: What the agent knows of a host that Nova and Placement do not.
_AGENT_HOST_FIELDS = ('numa', 'link_mbps', 'cpu_model', 'libvirt_uri', 'migration_address',
                      'active_jobs', 'nics')


def guest_state(server: dict) -> str:
    return _RUNNING.get(str(server.get('status')), str(server.get('status') or '').lower())


def names(servers: list[dict]) -> dict[str, str]:
    """kvmplace's name of each server (by UUID): its Nova name when that is
    unique in the cloud and a valid kvmplace name, else its UUID."""
    count: dict[str, int] = {}
    for s in servers:
        count[s.get('name') or ''] = count.get(s.get('name') or '', 0) + 1
    out = {}
    for s in servers:
        name = s.get('name') or ''
        ok = count[name] == 1 and NAME_RE.fullmatch(name) and name != s['id']
        out[s['id']] = name if ok else s['id']
    return out


def _capacity(inventory: dict, usage: float) -> tuple[int, int]:
    """(usable, used) of one resource class: (total - reserved) x ratio."""
    total = float(inventory.get('total') or 0) - float(inventory.get('reserved') or 0)
    return int(total * float(inventory.get('allocation_ratio') or 1.0)), int(usage or 0)


def host_facts(service: dict, nodes: list[dict], servers: list[dict],
               server_names: dict[str, str], prefix: str, default_link_mbps: int) -> dict:
    """One compute host's state from Nova and Placement alone.

    ``nodes``: [{"hypervisor": ..., "inventories": ..., "usages": ...}].
    """
    vcpus = vcpus_used = memory = memory_used = 0
    for node in nodes:
        inv = node.get('inventories') or {}
        use = node.get('usages') or {}
        v, vu = _capacity(inv.get('VCPU') or {}, use.get('VCPU', 0))
        m, mu = _capacity(inv.get('MEMORY_MB') or {}, use.get('MEMORY_MB', 0))
        vcpus, vcpus_used = vcpus + v, vcpus_used + vu
        memory, memory_used = memory + m, memory_used + mu
    reason = service.get('disabled_reason') or ''
    disabled = service.get('status') == 'disabled'
    ours = disabled and reason.startswith(prefix)
    up = service.get('state') == 'up' and not service.get('forced_down')
    guests = []
    for s in servers:
        flavor = s.get('flavor') or {}
        volume_backed = not s.get('image')
        guests.append({
            'name': server_names.get(s['id'], s['id']), 'uuid': s['id'],
            'host': service['host'], 'state': guest_state(s),
            'memory_mib': int(flavor.get('ram') or 0), 'vcpus': int(flavor.get('vcpus') or 1),
            'disk_gib': 0.0 if volume_backed else float(flavor.get('disk') or 0),
            'shared_storage': True,
            'domain': s.get('OS-EXT-SRV-ATTR:instance_name'),
            'nova_status': s.get('status'), 'task_state': s.get('OS-EXT-STS:task_state')})
    return {
        'name': service['host'],
        'enabled': up and (not disabled or ours),
        'maintenance': bool(ours),
        'vcpus': max(vcpus, 1), 'vcpus_used': vcpus_used,
        'memory_mib': max(memory, 1), 'memory_used_mib': memory_used,
        'link_mbps': default_link_mbps, 'numa': [],
        'instances': guests,
        'nova': {'service_id': service.get('id'), 'status': service.get('status'),
                 'state': service.get('state'), 'forced_down': bool(service.get('forced_down')),
                 'disabled_reason': reason or None,
                 'nodes': [n['hypervisor'] for n in nodes]},
        'agent': None,
    }


def merge(facts: dict, agent_state: Optional[dict], agent_age_s: Optional[float]) -> dict:
    """Nova's facts with the agent's laid over them (the agent knows NUMA,
    links and dirty rates; Nova knows where guests are and what they are)."""
    state = dict(facts)
    if not agent_state:
        state['agent'] = None
        return state
    for key in _AGENT_HOST_FIELDS:
        if agent_state.get(key) is not None:
            state[key] = agent_state[key]
    by_uuid = {g.get('uuid'): g for g in agent_state.get('instances') or [] if g.get('uuid')}
    guests = []
    for guest in facts['instances']:
        seen = by_uuid.get(guest['uuid'])
        merged = dict(guest)
        if seen:
            for key in _AGENT_GUEST_FIELDS:
                if seen.get(key) is not None:
                    merged[key] = seen[key]
            merged['domain'] = merged.get('domain') or seen.get('name')
        guests.append(merged)
    state['instances'] = guests
    state['agent'] = {'reported_seconds_ago': None if agent_age_s is None
                      else round(agent_age_s, 1)}
    return state


def plain_list(answer: Any, key: str) -> list[dict]:
    value = (answer or {}).get(key) if isinstance(answer, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
