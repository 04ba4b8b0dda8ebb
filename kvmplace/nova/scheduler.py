"""KvmplaceFilter and KvmplaceWeigher: Nova scheduler plugins.

nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = kvmplace.nova.scheduler.KvmplaceFilter
    enabled_filters = <Nova's usual list>,KvmplaceFilter
    weight_classes = nova.scheduler.weights.all_weighers,kvmplace.nova.scheduler.KvmplaceWeigher

Both read one answer per request from :mod:`kvmplace.nova.adapter` (one
conductor call). Capacity (RAM, vCPUs, disk) stays Nova's and Placement's;
kvmplace judges NUMA memory-bandwidth health, links and convergence.
"""
from __future__ import annotations

import logging

from nova.scheduler import filters
from nova.scheduler import utils as sched_utils
from nova.scheduler import weights

from kvmplace.nova import adapter as adapter_mod

LOG = logging.getLogger(__name__)


class KvmplaceFilter(filters.BaseHostFilter):
    """Pass the hosts kvmplace's filters pass; log each rejection and why."""

    RUN_ON_REBUILD = False
    # Nova schedules a multi-instance boot per instance; kvmplace judges the
    # request once.
    run_filter_once_per_request = True

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if not hosts or sched_utils.request_is_rebuild(spec_obj):
            return hosts
        adapter = adapter_mod.get_adapter()
        answer = adapter.answer(spec_obj, [h.host for h in hosts])
        if not answer.applies:
            return hosts
        if answer.failed:
            if adapter.fail_closed():
                LOG.info('KvmplaceFilter: no host passes for instance %(uuid)s '
                         '(fail-closed: %(why)s)',
                         {'uuid': answer.instance_uuid, 'why': answer.failed})
                return []
            return hosts
        passed = []
        for host in hosts:
            verdict = answer.hosts.get(host.host)
            if verdict is None or verdict[0]:
                passed.append(host)
                continue
            LOG.info('KvmplaceFilter: host %(host)s rejected for instance %(uuid)s by '
                     'kvmplace filter %(filter)s: %(reason)s (decision %(decision)s)',
                     {'host': host.host, 'uuid': answer.instance_uuid,
                      'filter': verdict[2], 'reason': verdict[3],
                      'decision': answer.decision_id})
        return passed

    def host_passes(self, host_state, spec_obj):
        return bool(self.filter_all([host_state], spec_obj))


class KvmplaceWeigher(weights.BaseHostWeigher):
    """kvmplace's multiplier-weighted score; Nova normalizes it to 0..1 and
    applies ``[kvmplace] weight_multiplier``."""

    def weight_multiplier(self, host_state):
        return adapter_mod.get_adapter().options.weight_multiplier

    def weigh_objects(self, weighed_obj_list, weight_properties):
        hosts = [w.obj for w in weighed_obj_list]
        adapter = adapter_mod.get_adapter()
        if not hosts or adapter.options.weight_multiplier == 0:
            return [0.0] * len(hosts)
        answer = adapter.answer(weight_properties, [h.host for h in hosts])
        if not answer.applies or answer.failed:
            return [0.0] * len(hosts)
        floor = min((v[1] for v in answer.hosts.values() if v[0]), default=0.0)
        out = []
        for host in hosts:
            verdict = answer.hosts.get(host.host)
            out.append(float(verdict[1]) if verdict is not None and verdict[0] else floor)
        return out

    def _weigh_object(self, host_state, weight_properties):
        return 0.0
