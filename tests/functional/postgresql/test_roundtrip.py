"""Records read back the same from SQLite and PostgreSQL (property test).

The JSON columns carry what agents report and what the scheduler and the
planner computed: arbitrary unicode names, byte counts beyond 64 bits,
nulls, and floats that may be infinite (an unreachable path takes forever).
Both back ends must give back exactly what was written - except that a
non-finite float is null on both, the one form PostgreSQL's json type
takes (kvmplace.objects.plain, which every JSON kvmplace prints goes
through too).
"""
from __future__ import annotations

import math
import uuid
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kvmplace import objects
from kvmplace.conductor.db import api as db_api

pytestmark = pytest.mark.timeout(600)

_text = st.text(max_size=40)  # any code point: NUL, surrogates, astral planes
_leaf = st.none() | st.booleans() | _text | st.floats() \
    | st.integers(min_value=-2 ** 80, max_value=2 ** 80)
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_text, inner, max_size=4), max_leaves=20)
_record = st.dictionaries(_text, _json, max_size=6)


@pytest.fixture
def both(pg_url: str, tmp_path) -> Iterator[tuple[db_api.Database, db_api.Database]]:
    """The same schema on SQLite and on PostgreSQL, made by the conductor's code."""
    dbs = (db_api.Database(f'sqlite:///{tmp_path}/k.sqlite'), db_api.Database(pg_url))
    for db in dbs:
        db.upgrade()
    yield dbs
    for db in dbs:
        db.engine.dispose()


def _write_and_read(db: db_api.Database, key: str, value: dict, reported_at: float) -> dict:
    """Every JSON column, through the operations the conductor uses."""
    db.report_host(key, value, reported_at)
    mid = db.create_migration(key, key, None, value)['id']
    db.update_migration(mid, progress=value, result=value, attempts=[value], estimate=value)
    step = db.add_step(mid, 'migrate', key, data=value)
    db.finish_step(step, 'ok', data=value)
    drain = db.create_drain('drain', key, value)['id']
    host = db.get_host(key)
    rec = db.get_migration(mid)
    return {'state': host['state'], 'reported_at': host['reported_at'],
            **{k: rec[k] for k in ('policy', 'progress', 'result', 'attempts', 'estimate')},
            'step': rec['steps'][0]['data'], 'plan': db.get_drain(drain)['plan']}


def _expected(value: Any) -> Any:
    """What JSON gives back: lists for tuples, null for non-finite floats."""
    return objects.plain(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that tells 0.0 from -0.0 and 1 from True (== does not)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture,  # one database pair for all examples: keys differ
    HealthCheck.too_slow])
@given(value=_record, reported_at=st.floats(allow_nan=False, allow_infinity=False))
def test_json_columns_round_trip_identically(both, value: dict, reported_at: float) -> None:
    sqlite, postgres = both
    key = f'k-{uuid.uuid4().hex}'
    want = _expected(value)
    got = [_write_and_read(db, key, value, reported_at) for db in (sqlite, postgres)]
    for name, db_got in zip(('sqlite', 'postgresql'), got):
        # A REAL column: SQLite stores -0.0 as 0.0, and a timestamp's sign
        # of zero means nothing; the JSON columns below keep it exactly.
        assert db_got['reported_at'] == reported_at, name
        for column in ('state', 'policy', 'progress', 'result', 'estimate', 'step', 'plan'):
            assert _same(db_got[column], want), (name, column)
        assert _same(db_got['attempts'], [want]), name
