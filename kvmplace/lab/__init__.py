"""The kvmplace lab: several real libvirt hosts on one Linux machine.

Each lab host is a set of namespaces (network, mount, UTS) with its own
address on a shared bridge, a ``tc``-shaped link, its own libvirtd and
virtlogd, and an emulated two-node NUMA topology file. Guests are small:
busybox initramfs Linux guests whose memory dirty rate is set per guest, and
firmware-only guests. Everything the lab makes is recorded under
``/var/lib/kvmplace-lab`` so ``down`` can remove it, even after a crash.

Public API (for tests, the agent and the conductor)::

    from kvmplace.lab import manager, measure, numa, state
    manager.up(hosts=3, links_mbps=[10000, 1000, 200], guests_count=4)
    state.load()                  # the status dict as recorded (plus pids)
    manager.status()              # the same, guest locations looked up live
    manager.connect("lab-h1")     # libvirt connection to a lab host
    manager.slow_node("lab-h1", 0, 3000)   # inject node 0's bandwidth
    measure.migrate("lab-vm3", "lab-h2")   # plain libvirt migration + stats
    measure.dirty_rate_mibps("lab-vm1")    # libvirt page-sampling, averaged
    manager.down()
"""
