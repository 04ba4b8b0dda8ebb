"""kvmplace.conf: private ConfigOpts, defaults the model relies on."""
import kvmplace.conf
from kvmplace import estimator


def test_new_conf_is_private():
    # An override on one ConfigOpts must not leak into another (oslo.config
    # keeps overrides in the OptGroup object; each conf needs its own copy).
    first = kvmplace.conf.new_conf()
    first.set_override('reserved_host_memory_mib', 512, group='scheduler')
    first.set_override('max_rounds', 3, group='estimator')
    second = kvmplace.conf.new_conf()
    assert second.scheduler.reserved_host_memory_mib == 0
    assert second.estimator.max_rounds == 30
    assert first.scheduler.reserved_host_memory_mib == 512
    assert first.estimator.max_rounds == 3


def test_estimator_defaults_are_the_model_defaults(conf):
    # The reference rates are computed with these; config and model must agree.
    assert estimator.ModelParams.from_conf(conf) == estimator.ModelParams()


def test_config_file_values_are_read(tmp_path):
    path = tmp_path / 'kvmplace.conf'
    path.write_text('[scheduler]\nmin_link_mbps = 2500\nenabled_weighers = free_ram\n'
                    '[estimator]\nlink_efficiency = 0.9\n')
    conf = kvmplace.conf.new_conf(config_files=[str(path)])
    assert conf.scheduler.min_link_mbps == 2500
    assert conf.scheduler.enabled_weighers == ['free_ram']
    assert estimator.ModelParams.from_conf(conf).link_efficiency == 0.9
