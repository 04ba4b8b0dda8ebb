"""Plain data: hosts, NUMA nodes, instances, links, requests, estimates.

Everything here round-trips through ``to_dict``/``from_dict`` so that it can
cross oslo.messaging RPC as dicts, lists, numbers and strings. Validation of
untrusted input lives in :mod:`kvmplace.inventory`; these constructors trust
their arguments, which keeps the scheduler's hot path cheap.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from kvmplace import resources
# Unit conversions live with the resource arithmetic; kept importable here.
from kvmplace.resources import MIB_PER_MBIT, mbps_to_mibps, mibps_to_mbps  # noqa: F401
from kvmplace import bounds


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Parse a Linux CPU list ("0-3,8,10-11") into sorted CPU ids.

    The CPUs are counted before any range is expanded
    (:func:`kvmplace.bounds.cpu_ranges`): a short string of wide ranges
    must not cost hundreds of MiB before it is refused. Raises ValueError
    with a short reason; callers add the field name.
    """
    cpus: set[int] = set()
    for lo, hi in bounds.cpu_ranges(text):
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


def format_cpu_list(cpus) -> str:
    """Inverse of :func:`parse_cpu_list`: (0,1,2,5) -> "0-2,5"."""
    ids = sorted(set(cpus))
    out = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f'{ids[i]}-{ids[j]}')
        i = j + 1
    return ','.join(out)


def plain(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None.

    JSON has no Infinity or NaN; an unreachable host's infinite migration
    time goes out as null, so every consumer can parse what we print.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class _Dict:
    """to_dict/from_dict for flat dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        # Every subclass is a dataclass; this mixin itself is not one.
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class NumaNode(_Dict):
    """One NUMA node of a host.

    ``bandwidth_mibps`` is the measured memory *write* bandwidth (during a
    migration the guest keeps writing and dirtying pages, so a node's write
    bandwidth is what slows a migration down); ``baseline_mibps`` is what
    the node does when healthy. ``health`` is their ratio, 1.0 when either is unknown.
    """
    id: int
    cpus: str
    memory_mib: int = 0
    free_memory_mib: int = 0
    bandwidth_mibps: Optional[float] = None
    baseline_mibps: Optional[float] = None

    @property
    def health(self) -> float:
        return resources.node_health(self.bandwidth_mibps, self.baseline_mibps)

    @property
    def cpu_ids(self) -> tuple[int, ...]:
        return parse_cpu_list(self.cpus)


@dataclass(slots=True)
class Host(_Dict):
    """A compute host as the scheduler sees it."""
    name: str
    enabled: bool = True
    maintenance: bool = False
    link_mbps: float = 10000
    vcpus: int = 0
    vcpus_used: int = 0
    memory_mib: int = 0
    memory_used_mib: int = 0
    cpu_model: Optional[str] = None
    numa: list[NumaNode] = field(default_factory=list)
    up: bool = True
    updated_at: Optional[float] = None

    def free_ram_mib(self, ram_allocation_ratio: float = 1.0,
                     reserved_host_memory_mib: float = 0.0) -> float:
        """:func:`kvmplace.resources.free_ram_mib` of this host."""
        return resources.free_ram_mib(self.memory_mib, self.memory_used_mib,
                                      ram_allocation_ratio, reserved_host_memory_mib)

    def free_vcpus(self, cpu_allocation_ratio: float) -> float:
        """:func:`kvmplace.resources.free_vcpus` of this host (the ratio is
        required: a count without it disagreed with the vCPU filter)."""
        return resources.free_vcpus(self.vcpus, self.vcpus_used, cpu_allocation_ratio)

    def node(self, node_id: int) -> Optional[NumaNode]:
        for node in self.numa:
            if node.id == node_id:
                return node
        return None

    def best_node(self, need_memory_mib: int = 0) -> Optional[NumaNode]:
        """The healthiest node, preferring nodes with room for the memory.

        Ties go to the node with more free memory, then the lower id, so the
        choice is stable.
        """
        return self._best(need_memory_mib)[0]

    def best_node_health(self, need_memory_mib: int = 0) -> float:
        """``best_node(need_memory_mib).health``; 1.0 for a host without
        NUMA figures. One health computation per node instead of two."""
        return self._best(need_memory_mib)[1]

    def _best(self, need_memory_mib: int) -> tuple[Optional[NumaNode], float]:
        numa = self.numa
        if not numa:
            return None, 1.0
        # The scheduler asks this of every host of every request, so first
        # the usual case, in one pass and without round(): among the nodes
        # with room, one more than 2e-6 healthier than every other wins
        # (rounding to 6 places moves a value by at most 5e-7, so it cannot
        # make their rounded healths tie or cross), as does a lone one.
        best = None
        top = second = -math.inf
        for n in numa:
            if n.free_memory_mib >= need_memory_mib:
                health = n.health
                if health > top:
                    best, top, second = n, health, top
                elif health > second:
                    second = health
        if best is not None and top - second > 2e-6:
            return best, top
        # Otherwise max() by (health to 6 places, free memory, -id) over
        # the nodes with room, or over all nodes when none has room.
        pool = [n for n in numa if n.free_memory_mib >= need_memory_mib] or numa
        best = None
        best_key = None
        for n in pool:
            health = n.health
            key = (round(health, 6), n.free_memory_mib, -n.id)
            if best_key is None or key > best_key:
                best, best_key, top = n, key, health
        return best, top

    @property
    def best_health(self) -> float:
        if not self.numa:
            return 1.0
        return max(n.health for n in self.numa)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Host:
        data = dict(data)
        data['numa'] = [n if isinstance(n, NumaNode) else NumaNode.from_dict(n)
                        for n in data.get('numa') or []]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class Instance(_Dict):
    """A guest. ``emulator_node`` is where its QEMU main thread runs now."""
    name: str
    host: str
    memory_mib: int
    vcpus: int = 1
    dirty_rate_mibps: float = 0.0
    emulator_node: Optional[int] = None
    disk_gib: float = 0.0
    shared_storage: bool = True
    uuid: Optional[str] = None
    cpu_model: Optional[str] = None

    @property
    def disk_mib(self) -> float:
        return 0.0 if self.shared_storage else self.disk_gib * 1024.0


@dataclass(slots=True)
class Link(_Dict):
    """An undirected network link between two nodes (hosts or switches)."""
    a: str
    b: str
    mbps: float


@dataclass(slots=True)
class Policy(_Dict):
    """Per-request migration policy; None fields fall back to config."""
    max_downtime_ms: Optional[int] = None
    bandwidth_cap_mibps: Optional[float] = None
    allow_auto_converge: Optional[bool] = None
    allow_post_copy: Optional[bool] = None


@dataclass(slots=True)
class MigrationRequest(_Dict):
    """What the scheduler is asked: where should ``instance`` go?"""
    instance: str
    force_hosts: list[str] = field(default_factory=list)
    ignore_hosts: list[str] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationRequest:
        data = dict(data)
        policy = data.get('policy') or {}
        data['policy'] = policy if isinstance(policy, Policy) else Policy.from_dict(policy)
        return cls(instance=data['instance'],
                   force_hosts=list(data.get('force_hosts') or []),
                   ignore_hosts=list(data.get('ignore_hosts') or []),
                   policy=data['policy'])


@dataclass(slots=True)
class Estimate(_Dict):
    """Predicted outcome of one live migration (ARCHITECTURE "ESTIMATE")."""
    bandwidth_mibps: float
    bottleneck: str
    rounds: int
    data_mib: float
    total_seconds: float
    downtime_ms: float
    converges: bool
    pre_pin: Optional[dict] = None
    without_pre_pin: Optional[dict] = None
    mode: str = 'pre-copy'
    #: The link term came from throughput measured on this path by finished
    #: migrations, not from the nominal rate x link efficiency.
    learned: bool = False

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict: the scheduler builds
        # one per ranked host (ten thousand per request), and asdict's
        # generic deep copy was its single largest cost. The nested dicts
        # hold numbers and strings only, so a shallow copy is a deep copy.
        return {'bandwidth_mibps': self.bandwidth_mibps, 'bottleneck': self.bottleneck,
                'rounds': self.rounds, 'data_mib': self.data_mib,
                'total_seconds': self.total_seconds, 'downtime_ms': self.downtime_ms,
                'converges': self.converges,
                'pre_pin': None if self.pre_pin is None else dict(self.pre_pin),
                'without_pre_pin': (None if self.without_pre_pin is None
                                    else dict(self.without_pre_pin)),
                'mode': self.mode, 'learned': self.learned}


def estimate_dicts(estimates: list[Estimate]) -> list[dict[str, Any]]:
    """``[e.to_dict() for e in estimates]``, each dict a fresh one.

    The scheduler's ranked result holds one estimate per host, and hosts
    with the same bandwidths share one Estimate: each distinct one is
    written out once and the others copy that dict (and its nested
    dicts), a third of the cost of to_dict.
    """
    made: dict[int, dict[str, Any]] = {}
    out = []
    for est in estimates:
        first = made.get(id(est))
        if first is None:
            first = made[id(est)] = est.to_dict()
            out.append(first)
            continue
        data = first.copy()
        if data['pre_pin'] is not None:
            data['pre_pin'] = dict(data['pre_pin'])
        if data['without_pre_pin'] is not None:
            data['without_pre_pin'] = dict(data['without_pre_pin'])
        out.append(data)
    return out


@dataclass(slots=True)
class Inventory:
    """A cluster snapshot: hosts, instances and (optionally) links."""
    hosts: dict[str, Host]
    instances: dict[str, Instance]
    links: list[Link] = field(default_factory=list)
    #: Learned effective MiB/s per (source, destination) path, from finished
    #: migrations (the conductor's path_throughput table); empty offline.
    path_rates: dict[tuple[str, str], float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {'hosts': [h.to_dict() for h in self.hosts.values()],
                'instances': [i.to_dict() for i in self.instances.values()],
                'links': [link.to_dict() for link in self.links]}

    def instances_on(self, host: str) -> list[Instance]:
        return [i for i in self.instances.values() if i.host == host]
