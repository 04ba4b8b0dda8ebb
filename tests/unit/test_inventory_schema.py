"""The published JSON Schema (etc/kvmplace/inventory.schema.json) and the loader agree.

Tools outside kvmplace (editors, CI checks of an inventory repository)
validate with the schema; kvmplace validates with its loader, which checks
more (cross-field rules) and names the field in one line. They must not
drift apart: the same known and required fields, the sample valid for
both, and nothing the loader accepts that the schema refuses.
"""
import copy
import json
import os

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmplace import inventory
from kvmplace.exception import InvalidInput
from tests.unit.test_inventory_fuzz import VALID, mutations

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(ROOT, 'etc', 'kvmplace', 'inventory.schema.json')
SAMPLE_PATH = os.path.join(ROOT, 'etc', 'kvmplace', 'inventory.sample.json')

with open(SCHEMA_PATH, encoding='utf-8') as _fh:
    SCHEMA = json.load(_fh)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# Where each kind of object sits in the schema, and a path to one in VALID.
KINDS = {
    'inventory': (SCHEMA, ()),
    'host': (SCHEMA['$defs']['host'], ('hosts', 0)),
    'numa': (SCHEMA['$defs']['numaNode'], ('hosts', 0, 'numa', 1)),
    'instance': (SCHEMA['$defs']['instance'], ('instances', 0)),
    'link': (SCHEMA['$defs']['link'], ('links', 0)),
}


def _at(data, path):
    for key in path:
        data = data[key]
    return data


def _schema_accepts(data) -> bool:
    return VALIDATOR.is_valid(data)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_sample_inventory_is_valid_for_schema_and_loader():
    with open(SAMPLE_PATH, encoding='utf-8') as fh:
        sample = json.load(fh)
    VALIDATOR.validate(sample)
    inventory.from_dict(sample)


def test_the_test_inventory_is_valid_for_the_schema():
    VALIDATOR.validate(VALID)


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_schema_and_loader_know_the_same_fields(kind):
    schema, _ = KINDS[kind]
    assert set(schema['properties']) == inventory.KNOWN_FIELDS[kind]
    assert set(schema['required']) == inventory.REQUIRED_FIELDS[kind]
    assert schema['additionalProperties'] is False


REQUIRED_CASES = [(kind, f) for kind in sorted(KINDS)
                  for f in sorted(inventory.REQUIRED_FIELDS[kind])]
OPTIONAL_CASES = [(kind, f) for kind in sorted(KINDS)
                  for f in sorted(inventory.KNOWN_FIELDS[kind] - inventory.REQUIRED_FIELDS[kind])]


@pytest.mark.parametrize('kind,field', REQUIRED_CASES)
def test_a_required_field_left_out_is_refused_by_both(kind, field):
    data = copy.deepcopy(VALID)
    _, path = KINDS[kind]
    del _at(data, path)[field]
    assert not _schema_accepts(data)
    with pytest.raises(InvalidInput) as info:
        inventory.from_dict(data)
    expected = ''.join(f'[{k}]' if isinstance(k, int) else (f'.{k}' if i else k)
                       for i, k in enumerate(path + (field,)))
    assert str(info.value) == f'{expected}: is required'


@pytest.mark.parametrize('kind,field', OPTIONAL_CASES)
def test_an_optional_field_left_out_or_null_is_accepted_by_both(kind, field):
    _, path = KINDS[kind]
    for value in ('absent', None):
        data = copy.deepcopy(VALID)
        target = _at(data, path)
        if field not in target:
            target[field] = None
        if value == 'absent':
            del target[field]
        else:
            target[field] = None
        assert _schema_accepts(data), (field, value)
        inventory.from_dict(data)


@pytest.mark.parametrize('mutate', [
    lambda d: d['hosts'][0].update(name='switch'),
    lambda d: d['hosts'][0].update(memroy_mib=1),
    lambda d: d['instances'][0].update(name='vm\n1'),
    lambda d: d['links'][0].update(mbps=0),
    lambda d: d['hosts'][1]['numa'][0].update(id=-1),
    lambda d: d['instances'][1].update(vcpus=0),
    lambda d: d.update(hosts=[]),
])
def test_what_the_schema_can_say_is_refused_by_both(mutate):
    data = copy.deepcopy(VALID)
    mutate(data)
    assert not _schema_accepts(data)
    with pytest.raises(InvalidInput):
        inventory.from_dict(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_what_the_loader_accepts_the_schema_accepts(data):
    """The schema is a necessary condition: never stricter than the loader."""
    try:
        inventory.from_dict(copy.deepcopy(data))
    except InvalidInput:
        return
    errors = [e.message for e in VALIDATOR.iter_errors(data)]
    assert not errors, errors


# Fields whose rules involve no other field: for these, schema and loader
# must agree both ways, value by value.
SINGLE_FIELD_RULES = [
    ('hosts', 0, 'link_mbps'), ('hosts', 0, 'vcpus_used'), ('hosts', 1, 'updated_at'),
    ('hosts', 1, 'enabled'), ('hosts', 0, 'maintenance'), ('hosts', 0, 'cpu_model'),
    ('hosts', 0, 'numa', 0, 'bandwidth_mibps'), ('hosts', 1, 'numa', 1, 'baseline_mibps'),
    ('instances', 0, 'vcpus'), ('instances', 0, 'memory_mib'),
    ('instances', 1, 'dirty_rate_mibps'), ('instances', 1, 'disk_gib'),
    ('instances', 1, 'shared_storage'), ('instances', 0, 'uuid'), ('links', 1, 'mbps'),
]
# Control and format characters are covered by the name tests; the schema's
# pattern can only say Cc (and U+2028/9), the loader also refuses Cf.
plain_text = st.text(st.characters(exclude_categories=['Cc', 'Cf', 'Cs', 'Zl', 'Zp']),
                     max_size=260)
field_values = (st.none() | st.booleans() | plain_text
                | st.integers(min_value=-10, max_value=10)
                | st.integers(min_value=-2 ** 40, max_value=2 ** 40)
                | st.sampled_from([0, 1, 0.5, 1.0, 10 ** 7, 10 ** 7 + 1, 2 ** 16, 2 ** 16 + 1,
                                   2 ** 20, 2 ** 24 + 1, 2 ** 32, 2 ** 32 + 1, 10 ** 12,
                                   10 ** 12 + 1, -0.0, 1e-300])
                | st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SINGLE_FIELD_RULES), field_values)
def test_schema_and_loader_agree_on_single_field_rules(path, value):
    data = copy.deepcopy(VALID)
    _at(data, path[:-1])[path[-1]] = value
    try:
        inventory.from_dict(data)
        loader_accepts = True
    except InvalidInput:
        loader_accepts = False
    assert _schema_accepts(data) == loader_accepts, (path, value)
