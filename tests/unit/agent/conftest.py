"""Fixtures for the agent's unit tests: libvirt's test driver, no daemons.

``test:///default`` is a real libvirt driver with a running guest "test",
two NUMA cells (CPUs 0-7 and 8-15) and emulator pinning; it has no
migration and no job statistics. Its CPU map has only 8 CPUs, so pinning
tests use an override topology that splits CPUs 0-7 into two nodes (the
same mechanism the lab uses for its emulated nodes). All connections in one
process share the driver's state, so every test that pins restores the
pinning it found.
"""
from __future__ import annotations

import json

import libvirt
import pytest

import kvmplace.conf
from kvmplace.agent import service

TEST_URI = 'test:///default'
TEST_GUEST = 'test'


class RecordingNotifier:
    """Stands in for the conductor: keeps every cast."""

    def __init__(self):
        self.casts: list[tuple[str, dict]] = []

    def report_state(self, host_state: dict) -> bool:
        self.casts.append(('report_state', {'host_state': host_state}))
        return True

    def migration_progress(self, migration_id: str, progress: dict) -> bool:
        self.casts.append(('migration_progress', {'migration_id': migration_id,
                                                  'progress': progress}))
        return True

    def migration_finished(self, migration_id: str, result: dict) -> bool:
        self.casts.append(('migration_finished', {'migration_id': migration_id,
                                                  'result': result}))
        return True

    def named(self, method: str) -> list[dict]:
        return [kw for name, kw in self.casts if name == method]


@pytest.fixture
def numa_file(tmp_path):
    """Two emulated nodes on the test driver's pinnable CPUs; node 0 slow."""
    path = tmp_path / 'numa.json'
    path.write_text(json.dumps([
        {'id': 0, 'cpus': '0-3', 'memory_mib': 16384, 'free_memory_mib': 12000,
         'bandwidth_mibps': 9000, 'baseline_mibps': 27000},
        {'id': 1, 'cpus': '4-7', 'memory_mib': 16384, 'free_memory_mib': 14000,
         'bandwidth_mibps': 27000, 'baseline_mibps': 27000}]))
    return path


@pytest.fixture
def agent_conf(numa_file):
    conf = kvmplace.conf.new_conf()
    conf.set_override('libvirt_uri', TEST_URI, 'agent')
    conf.set_override('host', 'unit-host', 'agent')
    conf.set_override('numa_topology_file', str(numa_file), 'agent')
    conf.set_override('probe_seconds_per_node', 0.05, 'agent')
    conf.set_override('probe_buffer_mib', 8, 'agent')
    return conf


@pytest.fixture
def notifier():
    return RecordingNotifier()


@pytest.fixture
def agent(agent_conf, notifier):
    a = service.Agent(agent_conf, notifier=notifier)
    yield a
    a.stop()


@pytest.fixture
def test_dom():
    """The test driver's running guest; its emulator pinning is put back."""
    conn = libvirt.open(TEST_URI)
    dom = conn.lookupByName(TEST_GUEST)
    before = dom.emulatorPinInfo()
    yield dom
    dom.pinEmulator(before, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    conn.close()
