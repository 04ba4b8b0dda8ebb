"""not_source: the guest's own host is never a target."""


def test_source_fails_other_hosts_pass(load_filter, builder, make_spec):
    flt = load_filter('not_source')
    inv = builder.host('src').host('dst').instance('vm', 'src').build()
    spec = make_spec(inv, 'vm')
    assert flt.host_passes(inv.hosts['dst'], spec)
    assert not flt.host_passes(inv.hosts['src'], spec)
    assert flt.reason(inv.hosts['src'], spec) == 'host is the source'
