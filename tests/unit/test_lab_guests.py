"""The lab's guest plan: the default mix, and an explicit one (benchmarks)."""
import pytest

from kvmplace.lab import guests
from kvmplace.lab.errors import LabError

HOSTS = ['lab-h1', 'lab-h2', 'lab-h3']


def test_default_mix_is_cycled_round_robin():
    specs = guests.plan(5, HOSTS)
    assert [s.host for s in specs] == ['lab-h1', 'lab-h2', 'lab-h3', 'lab-h1', 'lab-h2']
    assert specs[4].memory_mib == specs[0].memory_mib


def test_explicit_mix_places_and_sizes_each_guest():
    specs = guests.plan(99, HOSTS, mix=[
        {'memory_mib': 512, 'buffer_mib': 440, 'dirty_rate_mibps': 10, 'host': 3},
        {'kind': 'firmware', 'memory_mib': 128, 'host': 'lab-h2'},
        {'memory_mib': 256}])
    assert [(s.name, s.host, s.memory_mib) for s in specs] == [
        ('lab-vm1', 'lab-h3', 512), ('lab-vm2', 'lab-h2', 128), ('lab-vm3', 'lab-h3', 256)]
    assert specs[0].buffer_mib == 440 and specs[0].dirty_rate_mibps == 10
    assert specs[1].domain_type == 'kvm' and specs[0].domain_type == 'qemu'


@pytest.mark.parametrize('entry', [{'kind': 'windows'}, {'colour': 'red'}, {'host': 'lab-h9'},
                                   {'host': 4}])
def test_bad_mix_entries_are_refused(entry):
    with pytest.raises(LabError):
        guests.plan(0, HOSTS, mix=[entry])


def test_fill_reaches_the_kernel_command_line_only_when_asked():
    from kvmplace.lab.image import BootImage
    boot = BootImage(kernel='/k', initrd='/i', kernel_version='6')
    plain, filled = guests.plan(0, HOSTS, mix=[{'memory_mib': 256}, {'memory_mib': 256,
                                                                      'fill': True}])
    assert 'kvmplace.fill' not in guests.domain_xml(plain, boot)
    assert 'kvmplace.fill=1' in guests.domain_xml(filled, boot)
