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
    # --auto-converge: hot1 is placed too (without it the drain exits 1).
    res = _kvmplace('drain', 'cn-b', '--dry-run', '--inventory', SAMPLE, '--output', str(out),
                    '--auto-converge', '-f', 'json')
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
