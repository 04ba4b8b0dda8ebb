"""oslo-config-generator produces the sample config from kvmplace's options."""
import os
import subprocess
import sys

from kvmplace.conf import estimator as estimator_opts
from kvmplace.conf import opts
from kvmplace.conf import scheduler as scheduler_opts
from tests.unit.conftest import REPO

GENERATOR = os.path.join(os.path.dirname(sys.executable), 'oslo-config-generator')
GENERATOR_CONF = os.path.join(REPO, 'etc', 'kvmplace', 'oslo-config-generator',
                              'kvmplace.conf')


def test_list_opts_includes_scheduler_and_estimator():
    groups = {group.name: names for group, names in opts.list_opts()}
    assert groups['scheduler'] == scheduler_opts.OPTS
    assert groups['estimator'] == estimator_opts.OPTS


def test_generator_writes_every_scheduler_and_estimator_option(tmp_path):
    out = tmp_path / 'kvmplace.conf.sample'
    proc = subprocess.run([GENERATOR, '--config-file', GENERATOR_CONF,
                           '--output-file', str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert '[scheduler]' in text and '[estimator]' in text
    for opt in scheduler_opts.OPTS + estimator_opts.OPTS:
        assert f'#{opt.name} = ' in text, opt.name
    assert '#enabled_filters = ' + ','.join(scheduler_opts.DEFAULT_FILTERS) in text
    assert '#link_efficiency = 0.6' in text
