"""maintenance: hosts being drained are not filled."""


def test_maintenance_host_fails_others_pass(load_filter, builder, make_spec):
    flt = load_filter('maintenance')
    inv = (builder.host('src').host('busy', maintenance=True).host('free')
           .instance('vm', 'src').build())
    spec = make_spec(inv, 'vm')
    assert flt.host_passes(inv.hosts['free'], spec)
    assert not flt.host_passes(inv.hosts['busy'], spec)
    assert flt.reason(inv.hosts['busy'], spec) == 'host is in maintenance'
