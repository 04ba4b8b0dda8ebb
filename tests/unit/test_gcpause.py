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


def test_what_the_pause_made_is_old_and_still_collected():
    """Objects made inside join the oldest generation (no young collection
    walks them all at the first allocation after), and a cycle among them
    is still freed by a full collection."""
    import weakref

    class Node:
        pass

    gc.collect()
    with gcpause.paused():
        bulk = [[i] for i in range(5000)]
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
    assert gc.get_count()[0] < 100
    assert gc.get_freeze_count() == 0
    assert id(bulk[0]) in {id(o) for o in gc.get_objects(generation=2)}
    del a, b
    assert gone() is not None           # a cycle: reference counting cannot free it
    gc.collect()
    assert gone() is None
    assert len(bulk) == 5000
