"""The conductor: ties the scheduler and the agents together and owns the records."""
