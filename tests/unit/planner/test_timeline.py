"""--output draws the plan: a real SVG or PNG, one bar per migration."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SAMPLE = os.path.join(ROOT, 'etc', 'kvmplace', 'inventory.sample.json')


def _kvmplace(*args):
    return subprocess.run([sys.executable, '-m', 'kvmplace.cmd.kvmplace', *args],
                          capture_output=True, text=True, timeout=120)


def test_drain_svg_has_a_bar_per_migration(tmp_path):
    out = tmp_path / 'drain.svg'
    res = _kvmplace('drain', 'cn-b', '--dry-run', '--inventory', SAMPLE, '--output', str(out),
                    '-f', 'json')
    assert res.returncode == 0, res.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith('<?xml') and '<svg' in svg
    plan = json.loads(res.stdout)
    assert plan['migrations']
    for m in plan['migrations']:
        assert f"{m['instance']} -&gt; {m['dest']}" in svg or \
            f"{m['instance']} -> {m['dest']}" in svg


def test_rebalance_png(tmp_path):
    out = tmp_path / 'rebalance.png'
    res = _kvmplace('rebalance', '--dry-run', '--inventory', SAMPLE, '--output', str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('name', ['plan.pdf', 'plan'])
def test_other_extensions_are_one_line_errors(tmp_path, name):
    res = _kvmplace('drain', 'cn-b', '--dry-run', '--inventory', SAMPLE,
                    '--output', str(tmp_path / name))
    assert res.returncode == 1
    assert res.stderr.startswith('kvmplace: error: --output: must end in .svg or .png')
    assert res.stderr.count('\n') == 1


def test_without_matplotlib_the_error_names_the_plot_extra(tmp_path):
    """matplotlib is the optional ``plot`` extra: without it, --output must
    say what to install in one line, not end in an ImportError traceback."""
    code = ('import sys; sys.modules["matplotlib"] = None; '
            'from kvmplace.cmd import kvmplace; sys.exit(kvmplace.main(sys.argv[1:]))')
    res = subprocess.run([sys.executable, '-c', code, 'drain', 'cn-b', '--dry-run',
                          '--inventory', SAMPLE, '--output', str(tmp_path / 'd.svg')],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert 'kvmplace[plot]' in lines[0] and 'matplotlib' in lines[0]
    assert not (tmp_path / 'd.svg').exists()


def test_requirements_leave_matplotlib_to_the_plot_extra():
    with open(os.path.join(ROOT, 'requirements.txt'), encoding='utf-8') as fh:
        assert 'matplotlib' not in fh.read()
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    assert 'matplotlib' in cfg['extras']['plot']
    assert 'libvirt-python' in cfg['extras']['lab']
