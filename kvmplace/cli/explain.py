"""Why: the explanations an operator needs where the plain answer is a shrug.

- An unplaced guest: per host, the filter that refused it and why, and
  the policy option that would place it (``--auto-converge`` ...), found
  by asking the scheduler again with that option.
- A rebalance that moves nothing: which of its reasons holds.
- ``estimate --to H``: the filters that would refuse H (the estimate
  itself is computed for any host; ``select`` would not pick this one).
- ``select`` with no valid host: the option that would give one.

Works on either back end (backend.py): the questions are ``select`` calls.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from kvmplace import objects
from kvmplace.exception import KvmplaceError

#: Policy options tried, in order, for a guest no host accepts.
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ('--auto-converge', {'allow_auto_converge': True}),
    ('--post-copy', {'allow_post_copy': True}),
    ('--auto-converge --post-copy', {'allow_auto_converge': True, 'allow_post_copy': True}),
]

#: Rejections that say nothing about the guest (the host it is leaving).
_NOT_A_REASON = ('not_source',)


def suggestion(backend, instance: str, policy: objects.Policy,
               force_hosts: tuple = (), ignore_hosts: tuple = ()) -> Optional[dict]:
    """The first policy option under which some host accepts ``instance``:
    ``{"option": "--auto-converge", "hosts": [...]}``, or None."""
    for option, change in OPTIONS:
        if all(getattr(policy, k) for k in change):
            continue            # already given: no news
        tried = dataclasses.replace(policy, **change)
        try:
            result = backend.select(instance, tried, force_hosts, ignore_hosts)
        except KvmplaceError:
            return None
        if result['ranked']:
            return {'option': option, 'hosts': [r['host'] for r in result['ranked']]}
    return None


def unplaced(backend, entries: list[dict], policy: objects.Policy) -> None:
    """Add to each unplaced guest ``rejected`` (per host: filter, reason)
    and ``suggestion`` (or None), in place."""
    for entry in entries:
        if 'rejected' in entry and 'suggestion' in entry:
            continue
        try:
            result = backend.select(entry['instance'], policy)
        except KvmplaceError:
            continue            # e.g. the guest is gone: the reason stands alone
        entry['rejected'] = [r for r in result['rejected'] if r['filter'] not in _NOT_A_REASON]
        if result['ranked'] and not entry['rejected']:
            entry.setdefault('detail', 'every host that accepts it alone was filled by the '
                                       'other guests of this plan')
        entry['suggestion'] = suggestion(backend, entry['instance'], policy)


def estimate_rejections(backend, instance: str, dest: str,
                        policy: objects.Policy) -> list[dict]:
    """The filters that would refuse ``dest`` for ``instance``."""
    try:
        result = backend.select(instance, policy, force_hosts=(dest,))
    except KvmplaceError:
        return []
    return [{'filter': r['filter'], 'reason': r['reason']} for r in result['rejected']
            if r['host'] == dest and r['filter'] != 'force_hosts']


def nothing_moves(plan: dict) -> str:
    """Why a rebalance plan has no migration."""
    before = plan.get('before') or {}
    threshold = plan.get('threshold')
    spread = before.get('memory_spread')
    stranded = before.get('guests_on_unhealthy_hosts') or []
    unplaced_guests = plan.get('unplaced') or []
    if unplaced_guests:
        names = ', '.join(u['instance'] for u in unplaced_guests[:5])
        return f'no guest could be placed ({names}): see the reasons below'
    if spread is not None and threshold is not None and spread <= threshold and not stranded:
        return (f'nothing to do: the memory-use spread {spread:.0%} is within the threshold '
                f'{threshold:.0%} and no guest is on an unhealthy host')
    uses = {h: u for h, u in (before.get('memory_use') or {}).items()
            if h not in (before.get('unhealthy_hosts') or [])}
    if len(uses) < 2:
        return 'fewer than two usable hosts: there is nowhere to even out to'
    full = max(uses, key=lambda h: uses[h])
    return (f'no single move narrows the spread {spread:.0%}: no guest on the fullest host '
            f'{full} fits on, and is accepted by, a host with room (try a larger --threshold)')
