"""How the conductor reaches the guests: its own agents (libvirt, the
default) or a cloud's Nova (:mod:`kvmplace.conductor.drivers.nova`)."""
