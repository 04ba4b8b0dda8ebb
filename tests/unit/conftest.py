"""Fixtures for the unit tests: a private config, inventory builders, specs.

No test touches the global ``cfg.CONF``: each gets its own registered
``ConfigOpts`` from :func:`kvmplace.conf.new_conf` and changes it with
``set_override``.
"""
from __future__ import annotations

import os

import pytest

import kvmplace.conf
from kvmplace import inventory
from kvmplace import objects
from kvmplace.scheduler import manager
from tests.unit.builders import InventoryBuilder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_INVENTORY = os.path.join(REPO, 'etc', 'kvmplace', 'inventory.sample.json')

NOW = 1_700_000_000.0
"""A fixed "now" for specs, so staleness never depends on the clock."""


@pytest.fixture
def conf():
    """A private, fully registered ConfigOpts with the default values."""
    return kvmplace.conf.new_conf()


@pytest.fixture
def builder() -> InventoryBuilder:
    return InventoryBuilder()


@pytest.fixture
def sample_path() -> str:
    return SAMPLE_INVENTORY


@pytest.fixture
def sample_inventory() -> objects.Inventory:
    return inventory.load(SAMPLE_INVENTORY)


@pytest.fixture
def make_spec(conf):
    """make_spec(inventory, instance, policy=None, now=NOW, topology=None)."""

    def _make(inv, instance, policy=None, now=NOW, topology=None):
        sched = manager.SchedulerManager(conf, filters=[], weighers=[])
        request = objects.MigrationRequest(instance=instance,
                                           policy=policy or objects.Policy())
        return sched.build_spec(inv, request, topology=topology, now=now)

    return _make


@pytest.fixture
def load_filter(conf):
    """The named filter plugin, loaded through its entry point."""

    def _load(name):
        (plugin,) = manager.load_plugins(manager.FILTER_NAMESPACE, [name], conf)
        return plugin

    return _load


@pytest.fixture
def load_weigher(conf):
    """The named weigher plugin, loaded through its entry point."""

    def _load(name):
        (plugin,) = manager.load_plugins(manager.WEIGHER_NAMESPACE, [name], conf)
        return plugin

    return _load
