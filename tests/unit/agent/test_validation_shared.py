"""The conductor and the agent check names and policies the same way
(kvmplace.validation): what one accepts, the other accepts, and a policy
the conductor stores is one the agent takes."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmplace import validation as shared
from kvmplace.agent import validation as agent_v
from kvmplace.conductor import validate as conductor_v
from kvmplace.exception import InvalidInput

anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
policy_values = anything | st.sampled_from(['abort', 'post-copy', 'full', 'incremental'])
policies = st.dictionaries(st.sampled_from(sorted(shared.POLICY_SCHEMA)) | st.text(max_size=8),
                           policy_values, max_size=4)


def _outcome(fn, *args):
    try:
        return ('ok', fn(*args))
    except InvalidInput as exc:
        assert exc.field
        return ('refused', exc.field)


@settings(max_examples=300, deadline=None)
@given(value=anything | st.text(alphabet='ab.:@+-_/ 9', min_size=1, max_size=300))
def test_both_ends_accept_the_same_names(value):
    assert _outcome(agent_v.name, 'instance', value) == \
        _outcome(conductor_v.name, 'instance', value)


def test_a_name_may_be_as_long_as_the_database_column():
    assert agent_v.name('n', 'a' * shared.NAME_MAX) == 'a' * shared.NAME_MAX
    for fn in (agent_v.name, conductor_v.name):
        with pytest.raises(InvalidInput):
            fn('n', 'a' * (shared.NAME_MAX + 1))
        with pytest.raises(InvalidInput):
            fn('n', 'vm1\n')


@settings(max_examples=300, deadline=None)
@given(policy=policies)
def test_both_ends_accept_the_same_policies(policy):
    agent_side = _outcome(agent_v.policy, 'policy', policy)
    conductor_side = _outcome(conductor_v.policy_dict, policy)
    assert agent_side == conductor_side
    if agent_side[0] == 'ok':
        # What the conductor stores and sends, the agent takes as it is.
        assert agent_v.policy('policy', conductor_side[1]) == conductor_side[1]


def test_one_policy_schema_with_inclusive_bounds():
    assert agent_v.POLICY_KEYS is shared.POLICY_SCHEMA
    assert len(shared.POLICY_SCHEMA) == 8
    # 0 is "no cap" at both ends (it was refused by the conductor only).
    assert conductor_v.policy({'bandwidth_cap_mibps': 0}).bandwidth_cap_mibps == 0.0
    assert agent_v.policy('policy', {'bandwidth_cap_mibps': 0}) == {'bandwidth_cap_mibps': 0.0}
    for key, bad in (('bandwidth_cap_mibps', -0.5), ('max_downtime_ms', 0),
                     ('max_downtime_ms', True), ('timeout_action', 'retry'),
                     ('progress_timeout_seconds', 86401)):
        with pytest.raises(InvalidInput) as err:
            conductor_v.policy({key: bad})
        assert err.value.field == f'policy.{key}'
    # The agent's keys pass the conductor now (they were refused there).
    assert conductor_v.policy_dict({'timeout_action': 'post-copy',
                                    'non_shared_disk_mode': 'incremental'}) == \
        {'timeout_action': 'post-copy', 'non_shared_disk_mode': 'incremental'}


@pytest.mark.parametrize('key', ['\n', 'a\rb', ' lead', '\x1b[2J', 'k' * 500, ''])
def test_an_unknown_policy_key_is_named_on_one_line(key):
    """An unknown key is shown as its bounded repr when it is not plain
    text: a newline in a key once made the error two lines (found by
    tests/unit/conductor/test_rpc_fuzz.py)."""
    with pytest.raises(InvalidInput) as err:
        shared.policy('policy', {key: 1})
    text = str(err.value)
    assert '\n' not in text and '\r' not in text and text.isprintable()
    assert text.startswith('policy.') and 'unknown policy key' in text
    assert len(err.value.field) < 80
