"""Checks a filter or weigher's tests call: do its two forms agree?

A plugin writes one predicate and the base class derives the other form
(:mod:`kvmplace.scheduler.plugin`). What can still go wrong is a column
form that is not a per-host answer at all: one that reads the request's
whole table instead of the hosts it was given (and so answers for the
wrong hosts once an earlier filter has removed some), ranks or scales by
the column, or depends on the order of the hosts; or a per-host form that
is not pure. :func:`check_plugin` runs the plugin on generated clusters,
as the manager calls it (the column form over every candidate and over
the survivors of earlier filters) and host by host (the per-host form,
and the column form over a table of that host alone), and fails with the
first host where the answers differ::

    from kvmplace.scheduler.testing import check_plugin

    def test_my_filter_forms_agree():
        check_plugin(MyFilter)

Clusters come from a seeded generator (standard library ``random``; no
test framework needed), from 1 to 240 hosts, so the scheduler's numpy
paths (64 hosts and more) are exercised too. Pass ``conf`` to check the
plugin under particular options, ``clusters`` to add your own inventories.
"""
from __future__ import annotations

import math
import random
from typing import Any, Iterable, Optional, Union

import numpy as np

from kvmplace import conf as kconf
from kvmplace import objects
from kvmplace.scheduler.filters import BaseFilter, as_flags
from kvmplace.scheduler.hosts import HostTable
from kvmplace.scheduler.weighers import BaseWeigher, as_floats

#: Cluster sizes checked by default: tiny, below and above the numpy
#: batch threshold (kvmplace.estimator.batch.MIN_BATCH, 64).
SIZES = (1, 2, 5, 17, 70, 240)
NOW = 1_700_000_000.0
MODELS = ('Haswell', 'Skylake-Server', 'Cascadelake-Server', 'SapphireRapids', 'Unknown',
          None)

Plugin = Union[BaseFilter, BaseWeigher]


def random_cluster(rng: random.Random, hosts: int) -> objects.Inventory:
    """A cluster of ``hosts`` hosts (plus the guest's source) meant to hit
    every branch a plugin may have: full and empty hosts, ratios of
    vCPUs, slow and unknown NUMA nodes, disabled, down, silent and
    maintenance hosts, racks, islands and learned path rates."""
    nodes = []
    count = hosts + 1
    for i in range(count):
        memory = rng.choice((65536, 131072, 262144))
        numa = []
        for n in range(rng.choice((0, 1, 2, 4))):
            health = rng.choice((None, 1.0, 0.999999, 0.95, 0.5, 0.33, 0.2, 1.2,
                                 rng.uniform(0.05, 1.0)))
            node = objects.NumaNode(
                id=n, cpus=f'{n * 4}-{n * 4 + 3}', memory_mib=memory // 4,
                free_memory_mib=rng.choice((0, 4096, 8192, 16384, 65536)))
            if health is not None:
                node.bandwidth_mibps, node.baseline_mibps = health * 20000.0, 20000.0
            numa.append(node)
        nodes.append(objects.Host(
            name=f'h{rng.randrange(6)}-{i:03d}',
            enabled=rng.random() > 0.05, maintenance=rng.random() < 0.05,
            up=rng.random() > 0.03,
            link_mbps=rng.choice((1000, 10000, 25000, 100)),
            vcpus=rng.choice((8, 16, 64)), vcpus_used=rng.randrange(0, 200),
            memory_mib=memory,
            memory_used_mib=rng.choice((0, 32768, 60000, memory, memory - 1)),
            cpu_model=rng.choice(MODELS), numa=numa,
            updated_at=rng.choice((None, NOW, NOW - 10.0, NOW - 60.0, NOW - 300.0))))
    names = [h.name for h in nodes]
    links = []
    if rng.random() < 0.5:
        racks = rng.randint(1, 4)
        for r in range(racks):
            links.append(objects.Link(f'tor-{r}', 'spine', rng.choice((10000, 40000, 100000))))
        for i, host in enumerate(nodes):
            if rng.random() > 0.02:                      # a few islands
                links.append(objects.Link(host.name, f'tor-{i % racks}', host.link_mbps))
    source = nodes[0]
    instance = objects.Instance(
        name='vm', host=source.name, memory_mib=rng.choice((2048, 8192, 16384, 65536)),
        vcpus=rng.choice((1, 4, 16)), dirty_rate_mibps=rng.choice((0.0, 50.0, 150.0, 400.0)),
        emulator_node=(rng.randrange(len(source.numa)) if source.numa and rng.random() < 0.7
                       else None),
        shared_storage=rng.random() < 0.7, disk_gib=20,
        cpu_model=rng.choice(MODELS))
    inv = objects.Inventory(hosts={h.name: h for h in nodes},
                            instances={instance.name: instance}, links=links)
    for dest in rng.sample(names[1:], min(5, len(names) - 1)):
        inv.path_rates[(source.name, dest)] = rng.uniform(20.0, 900.0)
    return inv


def check_plugin(plugin: Union[Plugin, type], conf: Any = None, seed: int = 0,
                 sizes: Iterable[int] = SIZES, rounds: int = 3,
                 clusters: Iterable[objects.Inventory] = (),
                 policy: Optional[objects.Policy] = None) -> int:
    """Fail (AssertionError) where ``plugin``'s forms disagree.

    ``plugin`` is a filter or weigher class (built with ``conf``, by
    default kvmplace's defaults) or instance. Each generated cluster
    (``rounds`` per size in ``sizes``, from ``seed``) and each of
    ``clusters`` is checked; the guest is the instance named "vm" (your
    own clusters: their first instance). Returns the number of host
    answers compared, so a test can assert that something was checked.
    """
    from kvmplace.scheduler.manager import SchedulerManager

    conf = conf if conf is not None else kconf.new_conf()
    obj = plugin(conf) if isinstance(plugin, type) else plugin
    if not isinstance(obj, (BaseFilter, BaseWeigher)):
        raise TypeError(f'{obj!r} is neither a BaseFilter nor a BaseWeigher')
    manager = SchedulerManager(conf, filters=[], weighers=[])
    rng = random.Random(seed)
    generated = [(f'seed {seed}, size {size}, round {r}', random_cluster(rng, size))
                 for size in sizes for r in range(rounds)]
    given = [(f'clusters[{i}]', inv) for i, inv in enumerate(clusters)]
    compared = 0
    for label, inv in generated + given:
        instance = 'vm' if 'vm' in inv.instances else next(iter(inv.instances))
        request = objects.MigrationRequest(instance=instance,
                                           policy=policy or objects.Policy())
        spec = manager.build_spec(inv, request, now=NOW)
        compared += _check_one(obj, spec, list(inv.hosts.values()), rng,
                               f'{type(obj).__name__} on {label}')
    return compared


def _answers(obj: Plugin, cols: Any, where: str) -> list:
    try:
        if isinstance(obj, BaseFilter):
            return obj.filter_column(cols, cols.table.spec)
        return as_floats(obj.weigh_column(cols, cols.table.spec), len(cols))
    except ValueError as exc:     # an answer per host is the contract
        raise AssertionError(f'{where}: over {len(cols)} hosts: {exc}') from exc


def _per_host(obj: Plugin, host: objects.Host, spec: Any, where: str) -> Any:
    try:
        if isinstance(obj, BaseFilter):
            return as_flags([obj.host_passes(host, spec)], 1)[0]
        return as_floats([obj.weigh(host, spec)], 1)[0]
    except ValueError as exc:
        raise AssertionError(f'{where}: host {host.name} alone: {exc}') from exc


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _check_one(obj: Plugin, spec: Any, hosts: list[objects.Host], rng: random.Random,
               where: str) -> int:
    table = spec.table(hosts)
    full = _answers(obj, table.view(), where)
    # The survivors of earlier filters: a view of the request's table.
    keep = sorted(rng.sample(range(len(hosts)), rng.randint(0, len(hosts))))
    index = np.array(keep, dtype=np.intp)
    part = _answers(obj, table.view(index, [hosts[i] for i in keep]), where)
    for j, i in enumerate(keep):
        if not _same(part[j], full[i]):
            raise AssertionError(
                f'{where}: the column form answers {part[j]!r} for host {hosts[i].name} '
                f'among {len(keep)} survivors but {full[i]!r} among all {len(hosts)} hosts '
                f'(does it read the whole table, or depend on the other hosts?)')
    for i, host in enumerate(hosts):
        alone = _answers(obj, HostTable(spec, [host]).view(), where)[0]
        one = _per_host(obj, host, spec, where)
        if not (_same(alone, full[i]) and _same(one, full[i])):
            raise AssertionError(
                f'{where}: host {host.name}: the column form over all hosts answers '
                f'{full[i]!r}, over this host alone {alone!r}, the per-host form {one!r}')
        if isinstance(obj, BaseFilter) and not full[i]:
            reason = obj.reason(host, spec)
            if not isinstance(reason, str) or not reason.strip():
                raise AssertionError(f'{where}: host {host.name} failed without a reason '
                                     f'({reason!r})')
    return len(hosts) + len(keep)
