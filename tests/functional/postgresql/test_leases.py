"""Leases and shared admission on a real PostgreSQL (kvmplace.conductor.leases).

Several conductors are several Database objects (connection pools) on one
database here, each with its own Leases; the claims race for real on the
server. The processes themselves run on the lab in
tests/integration/test_conductors_lab.py.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from kvmplace.conductor import admission as adm
from kvmplace.conductor import leases
from kvmplace.conductor.db import api as db_api

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def three(pg_url: str) -> Iterator[list[db_api.Database]]:
    dbs = [db_api.Database(pg_url) for _ in range(3)]
    dbs[0].upgrade()
    yield dbs
    for d in dbs:
        d.engine.dispose()


def _migration(db: db_api.Database, owner: str, expires: float, instance: str = 'vm1') -> str:
    rec = db.create_migration(instance, 'h1', None, {}, conductor=owner, lease_expires=expires)
    db.update_migration(rec['id'], status='migrating')
    return rec['id']


def test_exactly_one_of_many_racing_conductors_claims_an_expired_lease(three):
    mid = _migration(three[0], 'dead', time.time() - 1)
    claimers = [leases.Leases(three[i % 3], f'c{i}', 20) for i in range(12)]
    barrier = threading.Barrier(len(claimers))
    won: list[str] = []

    def race(lease: leases.Leases) -> None:
        barrier.wait()
        if lease.claim('migrations', mid):
            won.append(lease.owner)
    threads = [threading.Thread(target=race, args=(c,)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1, won
    assert three[1].get_migration(mid)['lease_owner'] == won[0]


def test_a_live_lease_is_not_adoptable_and_an_expired_one_is(three):
    live = leases.Leases(three[0], 'a', 2)
    other = leases.Leases(three[1], 'b', 2)
    mid = _migration(three[0], 'a', live.expiry())
    assert other.adoptable('migrations') == []
    assert not other.claim('migrations', mid)
    assert live.renew('migrations', [mid]) == set()        # still a's
    time.sleep(2.2)
    assert [r['id'] for r in other.adoptable('migrations')] == [mid]
    assert other.claim('migrations', mid)
    # a finds out at its next renewal, and its next conditional write fails.
    assert live.renew('migrations', [mid]) == {mid}
    with pytest.raises(db_api.LeaseLost):
        three[0].update_migration(mid, 'a', status='verifying')
    assert three[2].update_migration(mid, 'b', status='verifying')['status'] == 'verifying'


def test_admission_slots_hold_across_conductors_racing(three):
    """Twelve migrations over one 1 GbE link, admitted through three
    conductors at once: never more than the link holds (one 100 MiB/s
    migration alone, then nothing else fits 71 MiB/s of room)."""
    link = ('h1', 'sw')
    admissions = [leases.SharedAdmission(8, 8, 8, lambda _link: 71.0, db=d, owner=f'c{i}')
                  for i, d in enumerate(three)]
    mids = [_migration(three[i % 3], f'c{i % 3}', time.time() + 60, instance=f'vm{i}')
            for i in range(12)]
    barrier = threading.Barrier(12)
    admitted: list[str] = []

    def ask(i: int) -> None:
        barrier.wait()
        slot = adm.Slot(mids[i], 'h1', f'd{i}', (link,), 50.0)
        if admissions[i % 3].try_acquire(slot) is None:
            admitted.append(mids[i])
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1, admitted
    held = admissions[2].held()
    assert [h['migration_id'] for h in held] == admitted
    # Released by its conductor: the next one gets in through another.
    owner = admissions[mids.index(admitted[0]) % 3]
    owner.release(admitted[0])
    nxt = next(m for m in mids if m != admitted[0])
    assert admissions[(mids.index(nxt) + 1) % 3].try_acquire(
        adm.Slot(nxt, 'h1', 'dx', (link,), 50.0)) is None


def test_a_slot_of_a_migration_that_ended_does_not_count(three):
    a = leases.SharedAdmission(1, 1, 1, lambda _link: 100.0, db=three[0], owner='a')
    b = leases.SharedAdmission(1, 1, 1, lambda _link: 100.0, db=three[1], owner='b')
    first = _migration(three[0], 'a', time.time() + 60, 'vm1')
    second = _migration(three[1], 'b', time.time() + 60, 'vm2')
    assert a.try_acquire(adm.Slot(first, 'h1', 'h2', (), 10.0)) is None
    assert 'max_concurrent_total' in (b.try_acquire(adm.Slot(second, 'h3', 'h4', (), 10.0))
                                      or '')
    three[0].update_migration(first, status='failed')    # its conductor died unreleased
    assert b.try_acquire(adm.Slot(second, 'h3', 'h4', (), 10.0)) is None


def test_owners_says_who_owns_what(three):
    now = time.time()
    _migration(three[0], 'a', now + 15, 'vm1')
    _migration(three[0], 'b', now - 5, 'vm2')
    entries = {e['owner']: e for e in leases.owners(three[2], now)}
    assert entries['a']['migrations'] == 1 and entries['a']['expires_in_seconds'] == 15.0
    assert entries['b']['expires_in_seconds'] == -5.0
    problem = leases.describe(list(entries.values()))
    assert problem and 'b wait for adoption' in problem and 'a wait' not in problem
