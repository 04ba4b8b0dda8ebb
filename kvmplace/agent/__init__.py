"""The compute agent: one per host, the hands of kvmplace on that host."""
