"""cpu_model: same or newer in cpu_model_order; unknown models match only themselves."""
import pytest

from tests.unit.builders import InventoryBuilder


def _check(flt, make_spec, source_model, host_model, guest_model=None):
    b = InventoryBuilder()
    b.host('src', **({'cpu_model': source_model} if source_model else {}))
    b.host('dst', **({'cpu_model': host_model} if host_model else {}))
    b.instance('vm', 'src', **({'cpu_model': guest_model} if guest_model else {}))
    inv = b.build()
    spec = make_spec(inv, 'vm')
    host = inv.hosts['dst']
    passes = flt.host_passes(host, spec)
    return passes, (None if passes else flt.reason(host, spec))


@pytest.fixture
def flt(load_filter):
    return load_filter('cpu_model')


@pytest.mark.parametrize('host_model', ['Skylake-Server', 'Cascadelake-Server',
                                        'SapphireRapids'])
def test_same_or_newer_model_passes(flt, make_spec, host_model):
    assert _check(flt, make_spec, 'Skylake-Server', host_model)[0]


@pytest.mark.parametrize('host_model', ['Westmere', 'Haswell', 'Broadwell'])
def test_older_model_fails_naming_both(flt, make_spec, host_model):
    passes, reason = _check(flt, make_spec, 'Skylake-Server', host_model)
    assert not passes
    assert reason == f"CPU model {host_model} is older than the guest's Skylake-Server"


def test_unknown_model_matches_only_itself(flt, make_spec):
    assert _check(flt, make_spec, 'EPYC-Rome', 'EPYC-Rome')[0]
    passes, reason = _check(flt, make_spec, 'EPYC-Rome', 'SapphireRapids')
    assert not passes
    assert reason == "CPU model SapphireRapids cannot run the guest's EPYC-Rome"
    passes, reason = _check(flt, make_spec, 'Westmere', 'EPYC-Rome')
    assert not passes
    assert reason == "CPU model EPYC-Rome cannot run the guest's Westmere"


def test_guest_model_overrides_the_source_model(flt, make_spec):
    # The guest runs a Haswell model on an Icelake host: a Broadwell host can take it.
    assert _check(flt, make_spec, 'Icelake-Server', 'Broadwell', guest_model='Haswell')[0]
    passes, reason = _check(flt, make_spec, 'Haswell', 'Haswell',
                            guest_model='Icelake-Server')
    assert not passes
    assert 'Icelake-Server' in reason


def test_missing_models_pass(flt, make_spec):
    assert _check(flt, make_spec, 'Icelake-Server', None)[0]
    assert _check(flt, make_spec, None, 'Westmere')[0]


def test_order_comes_from_config(conf, load_filter, make_spec):
    # The order is read when the filter is built: override first.
    conf.set_override('cpu_model_order', ['Newish', 'Oldish'][::-1], group='scheduler')
    flt = load_filter('cpu_model')
    assert _check(flt, make_spec, 'Oldish', 'Newish')[0]
    passes, reason = _check(flt, make_spec, 'Newish', 'Oldish')
    assert not passes
    assert 'older than' in reason
    # Haswell is not in this order any more: it only matches itself now.
    assert not _check(flt, make_spec, 'Haswell', 'Broadwell')[0]
