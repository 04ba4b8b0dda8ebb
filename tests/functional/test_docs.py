"""The documentation builds without a single warning (Sphinx -W).

The configuration reference and the plugin list are generated from the
code, so this also fails when an option's help or a plugin's docstring
breaks the reStructuredText.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip('sphinx')
    out = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html',
         os.path.join(ROOT, 'doc', 'source'), str(tmp_path / 'html')],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    config = (tmp_path / 'html' / 'configuration.html').read_text()
    # Generated, not hand-written: every group and a few options appear.
    for needle in ('estimator', 'link_efficiency', 'enabled_filters', 'numa_health_threshold'):
        assert needle in config
    # The inventory format page is in the build, with the schema it documents.
    inv = (tmp_path / 'html' / 'user' / 'inventory.html').read_text()
    for needle in ('inventory.schema.json', 'memory_used_mib', 'is given twice'):
        assert needle in inv
    plugins = (tmp_path / 'html' / 'user' / 'plugins.html').read_text()
    for name in ('convergence', 'cpu_model', 'migration_time', 'free_ram'):
        assert name in plugins
