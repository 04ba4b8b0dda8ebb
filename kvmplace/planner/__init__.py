"""Planners: many migrations at once (drain a host, rebalance a cluster).

drain.py and rebalance.py decide *what* moves where; schedule.py decides
*when* and at what bandwidth, on the network topology; timeline.py draws it.
"""
