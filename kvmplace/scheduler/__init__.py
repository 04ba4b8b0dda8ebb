"""Choosing a migration target: filters, then weighers, then a ranking.

The flow (see manager.py): build a RequestSpec for the guest, run the
enabled filters in order (each rejection keeps the filter's name and a
reason), run the enabled weighers on the survivors, normalize each weigher's
raw values to 0..1 centrally, apply the multipliers, rank.
"""
