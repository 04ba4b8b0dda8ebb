"""The kvmplace lab: several real libvirt hosts on one Linux machine.

Each lab host is a set of namespaces (network, mount, UTS) with its own
address on a shared bridge, a ``tc``-shaped link, its own libvirtd and
virtlogd, and an emulated two-node NUMA topology file. Guests are small:
busybox initramfs Linux guests whose memory dirty rate is set per guest, and
firmware-only guests. Everything the lab makes is recorded under
``/var/lib/kvmplace-lab`` so ``down`` can remove it, even after a crash.

Public API (for tests, the agent and the conductor)::

    from kvmplace.lab import manager, state, numa
    manager.up(hosts=3, links_mbps=[10000, 1000, 200], guests=4)
    state.load()            # the status dict, as recorded
    manager.status()        # the status dict, guest locations refreshed live
    numa.set_bandwidth("lab-h1", 0, 3000)
    manager.down()
"""
