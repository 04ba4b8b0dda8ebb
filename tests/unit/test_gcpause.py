"""gcpause.paused: no cyclic collection inside, the state before restored."""
import gc

import pytest

from kvmplace import gcpause


@pytest.mark.parametrize('enabled', [True, False])
def test_paused_restores_the_state_before(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with gcpause.paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(KeyError), gcpause.paused():
            raise KeyError('x')
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_select_leaves_the_collector_on(sample_path):
    from kvmplace import conf, inventory, objects
    from kvmplace.scheduler import manager
    inv = inventory.load(sample_path)
    assert gc.isenabled()
    answer = manager.SchedulerManager(conf.new_conf()).select(
        inv, objects.MigrationRequest(instance='vm1'))
    assert answer['ranked'] and gc.isenabled()
