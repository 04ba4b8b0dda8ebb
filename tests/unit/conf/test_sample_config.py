"""The shipped etc/kvmplace/kvmplace.conf.sample is what the generator writes.

An operator reads the sample to learn every option, its default and its
help; a sample that went stale (an option added, a default or help text
changed, without regenerating) would mislead them. This regenerates it
from etc/kvmplace/oslo-config-generator/kvmplace.conf and compares.
"""
import difflib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SAMPLE = os.path.join(ROOT, 'etc', 'kvmplace', 'kvmplace.conf.sample')
GENERATOR_CONF = os.path.join(ROOT, 'etc', 'kvmplace', 'oslo-config-generator', 'kvmplace.conf')


def test_shipped_sample_equals_a_fresh_generation(tmp_path):
    fresh = tmp_path / 'kvmplace.conf.sample'
    res = subprocess.run([sys.executable, '-W', 'ignore', '-m', 'oslo_config.generator',
                          '--config-file', GENERATOR_CONF, '--output-file', str(fresh)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with open(SAMPLE, encoding='utf-8') as fh:
        shipped = fh.read().splitlines()
    generated = fresh.read_text(encoding='utf-8').splitlines()
    diff = list(difflib.unified_diff(shipped, generated, 'shipped', 'generated', lineterm='', n=1))
    assert not diff, ('etc/kvmplace/kvmplace.conf.sample is stale; regenerate it with '
                      '"tox -e genconfig" (or oslo-config-generator --config-file '
                      'etc/kvmplace/oslo-config-generator/kvmplace.conf):\n'
                      + '\n'.join(diff[:60]))


def test_the_sample_documents_kvmplace_options_with_host_independent_defaults():
    with open(SAMPLE, encoding='utf-8') as fh:
        text = fh.read()
    for section in ('[agent]', '[conductor]', '[database]', '[estimator]', '[scheduler]'):
        assert section in text
    # A default taken from the generating machine would differ on every host.
    assert '#host = <hostname>' in text


def test_shipped_nova_sample_equals_a_fresh_generation(tmp_path):
    """nova.conf's [kvmplace] sample (etc/kvmplace/nova-kvmplace.conf.sample)."""
    fresh = tmp_path / 'nova-kvmplace.conf.sample'
    conf = os.path.join(ROOT, 'etc', 'kvmplace', 'oslo-config-generator', 'nova-kvmplace.conf')
    res = subprocess.run([sys.executable, '-W', 'ignore', '-m', 'oslo_config.generator',
                          '--config-file', conf, '--output-file', str(fresh)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with open(os.path.join(ROOT, 'etc', 'kvmplace', 'nova-kvmplace.conf.sample'),
              encoding='utf-8') as fh:
        assert fh.read() == fresh.read_text(encoding='utf-8'), (
            'regenerate: oslo-config-generator --config-file '
            'etc/kvmplace/oslo-config-generator/nova-kvmplace.conf')
    assert '[kvmplace]' in fresh.read_text(encoding='utf-8')


def test_production_message_auth_settings_parse_and_require_signatures():
    """etc/kvmplace/message-auth/: what security.rst tells production to
    run; every option exists, and the receivers require signatures."""
    import kvmplace.conf
    folder = os.path.join(ROOT, 'etc', 'kvmplace', 'message-auth')
    expect = {'conductor.conf': ('private_key_file', 'operator_keys_dir', 'host_keys_dir'),
              'agent.conf': ('private_key_file', 'conductor_public_key_file'),
              'operator.conf': ('private_key_file',)}
    assert sorted(os.listdir(folder)) == sorted(expect)
    for name, options in expect.items():
        conf = kvmplace.conf.new_conf(config_files=[os.path.join(folder, name)])
        for option in options:
            assert getattr(conf.message_auth, option), (name, option)
        assert conf.message_auth.required is (name != 'operator.conf'), name
