"""Guests a drain cannot live-migrate, and what the operator must do.

A host is empty when no guest is *defined* on it, not when none runs: a
shut-off guest is a definition and disks that decommissioning the host
would lose. The drain used to count only running and paused guests (the
scheduler's inventory) and ended "completed" with shut-off, suspended or
crashed guests still defined (issue 16). The host's own report lists every
defined domain with its libvirt state; this module reads it and says, per
guest, why a live migration cannot move it and what to do instead.
"""
from __future__ import annotations

from typing import AbstractSet, Any

#: libvirt states (as the agents report them) a live migration can move.
LIVE_STATES = ('running', 'paused')

#: What the operator must do, by the guest's libvirt state.
ACTIONS = {
    'shutoff': ('start it, so that a drain can live-migrate it; or move it offline '
                '(copy its disks and XML to another host, define it there, undefine it '
                'here); or undefine it if it is no longer needed'),
    'crashed': ('find out why it crashed (virsh domstate --reason, the QEMU log), then '
                'destroy and start it again, or undefine it'),
    'pmsuspended': ('wake it (virsh dompmwakeup), so that a drain can live-migrate it; '
                    'or shut it down and move it offline'),
    'shutdown': 'wait until it has shut off, then move it offline or undefine it',
    'blocked': 'find out why it is blocked on a resource, then start the drain again',
}
DEFAULT_ACTION = ('check its state with virsh domstate --reason; start it so that a drain '
                  'can live-migrate it, or move it offline, or undefine it')


def blockers(report: dict[str, Any], moved: AbstractSet[str] = frozenset()) -> list[dict]:
    """``[{"instance", "state", "action"}]``: every guest defined in the
    host's report that a live migration cannot move, except those in
    ``moved`` (their migration completed; the report may be older)."""
    out = []
    for guest in report.get('instances') or []:
        name = guest.get('name')
        state = guest.get('state') or 'unknown'
        if not name or name in moved or guest.get('incoming'):
            continue
        if state in LIVE_STATES:
            continue
        out.append({'instance': name, 'state': state,
                    'action': ACTIONS.get(state, DEFAULT_ACTION)})
    return sorted(out, key=lambda b: b['instance'])


def summary(host: str, found: list[dict]) -> str:
    """One line for the drain's error: each guest, its state, what to do."""
    return (f'{host} still defines {len(found)} guest(s) a live migration cannot move: ' +
            '; '.join(f"{b['instance']} ({b['state']}): {b['action']}" for b in found))
