"""NUMA topology (libvirt cells, override file) and the bandwidth probe."""
from __future__ import annotations

import json
import os
import threading

import libvirt
import pytest

from kvmplace.agent import numa
from tests.unit.agent.conftest import TEST_URI


@pytest.fixture(scope='module')
def caps():
    conn = libvirt.open(TEST_URI)
    yield conn.getCapabilities()
    conn.close()


def test_cells_from_test_driver_capabilities(caps):
    cells = numa.cells_from_capabilities(caps)
    assert cells == [{'id': 0, 'cpus': '0-7', 'memory_mib': 2048},
                     {'id': 1, 'cpus': '8-15', 'memory_mib': 4096}]


def test_nodes_without_override_take_libvirt_free_memory(caps):
    nodes = numa.Topology().nodes(caps, lambda start, count: [512 * 2 ** 20, 1024 * 2 ** 20])
    assert [(n['id'], n['free_memory_mib'], n['health']) for n in nodes] == \
        [(0, 512, 1.0), (1, 1024, 1.0)]


def test_override_file_wins_and_health_follows_injected_bandwidth(caps, numa_file):
    nodes = numa.Topology(str(numa_file)).nodes(caps, lambda s, c: [0, 0])
    assert [n['cpus'] for n in nodes] == ['0-3', '4-7']
    assert nodes[0]['health'] == pytest.approx(1 / 3, abs=1e-3)
    assert nodes[1]['health'] == 1.0
    assert nodes[0]['bandwidth_source'] == 'injected'


def test_override_is_reread_so_a_slowdown_shows_up(caps, tmp_path):
    path = tmp_path / 'n.json'
    path.write_text(json.dumps([{'id': 0, 'cpus': '0', 'bandwidth_mibps': 100,
                                 'baseline_mibps': 100}]))
    topo = numa.Topology(str(path))
    assert topo.nodes(caps, lambda s, c: [0, 0])[0]['health'] == 1.0
    path.write_text(json.dumps([{'id': 0, 'cpus': '0', 'bandwidth_mibps': 25,
                                 'baseline_mibps': 100}]))
    assert topo.nodes(caps, lambda s, c: [0, 0])[0]['health'] == 0.25


@pytest.mark.parametrize('content, problem', [
    ('{}', 'non-empty JSON list'),
    ('[{"id": 0}]', 'needs "id" and "cpus"'),
    ('[{"id": "0", "cpus": "0"}]', 'must be an integer'),
    ('[{"id": 0, "cpus": "3-1"}]', 'descending'),
])
def test_broken_override_file_is_an_error(tmp_path, content, problem):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        numa.load_override(str(path))


def test_probe_results_fill_nodes_without_injected_figures(caps):
    topo = numa.Topology()
    topo.record({0: 20000.0, 1: 5000.0})
    nodes = topo.nodes(caps, lambda s, c: [0, 0])
    assert [n['bandwidth_mibps'] for n in nodes] == [20000.0, 5000.0]
    # Baseline = the best node: the slow one is at a quarter.
    assert [n['health'] for n in nodes] == [1.0, 0.25]
    configured = numa.Topology(baseline_mibps=40000.0)
    configured.record({0: 20000.0})
    assert configured.nodes(caps, lambda s, c: [0, 0])[0]['health'] == 0.5


def test_probe_measures_a_real_node_and_restores_nothing_on_the_caller():
    before = os.sched_getaffinity(0)
    probe = numa.BandwidthProbe(seconds_per_node=0.05, buffer_mib=8, threads_per_node=1)
    cpu = min(before)
    value = probe.measure_node((cpu,))
    assert value is not None and value > 100.0  # any machine writes > 100 MiB/s
    assert os.sched_getaffinity(0) == before  # only the writer thread was pinned


def test_probe_writer_threads_run_on_the_node_cpus(monkeypatch):
    seen = []
    real = os.sched_setaffinity

    def spy(pid, cpus):
        seen.append((pid, threading.current_thread().name, tuple(cpus)))
        return real(pid, cpus)
    monkeypatch.setattr(numa.os, 'sched_setaffinity', spy)
    cpu = min(os.sched_getaffinity(0))
    numa.BandwidthProbe(0.02, 4, threads_per_node=2).measure_node((cpu,))
    assert len(seen) == 2
    assert all(pid == 0 and name.startswith('numa-probe') and cpus == (cpu,)
               for pid, name, cpus in seen)


def test_probe_skips_nodes_whose_cpus_this_machine_lacks():
    probe = numa.BandwidthProbe(0.02, 4)
    assert probe.measure_node((4000, 4001)) is None
    assert probe.run([{'id': 0, 'cpus': '4000-4001'}]) == {}


def test_probe_interval_keeps_the_duty_cycle():
    probe = numa.BandwidthProbe(seconds_per_node=0.5)
    interval = probe.interval_seconds(60, node_count=2, max_duty=0.01)
    busy = 0.5 * 2 * 1.5
    assert busy / interval <= 0.01 + 1e-9
    assert probe.interval_seconds(100000, 2, 0.01) == 100000
