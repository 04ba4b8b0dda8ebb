"""One conductor call per scheduling request, shared by filter and weigher.

Nova runs its filters, then its weighers, over the same RequestSpec object.
The first of KvmplaceFilter/KvmplaceWeigher to see a request asks the
kvmplace conductor once (topic ``kvmplace-conductor``, namespace
``kvmplace-nova``, method ``decide``) about every candidate host, and the
answer is kept for that RequestSpec object (weakly: it goes when Nova drops
the request), so the other reads it instead of calling again. Nova's
filters after KvmplaceFilter only remove hosts, so the weigher's hosts are
covered by the filter's answer; if not (KvmplaceFilter not enabled), the
weigher asks.

Which operation a request is, and the source host, come from the
instance's record (task_state ``migrating`` is a live migration,
``resize_prep`` a cold migration or resize, ``rebuilding`` without Nova's
rebuild hint an evacuation; an instance not yet in a cell is a boot).
Requests kvmplace does not apply to never reach the conductor.

This module imports Nova lazily (inside functions), so that it can be
imported, and its failure handling tested, without Nova.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional

import oslo_messaging as messaging
from oslo_config import cfg

from kvmplace.nova import conf as kconf

LOG = logging.getLogger(__name__)

TOPIC = 'kvmplace-conductor'
NAMESPACE = 'kvmplace-nova'
API_VERSION = '1.0'

#: Nova's instance task states, by the operation they mean (nova.compute.task_states).
_TASK_OPERATIONS = {'migrating': 'live-migrate', 'resize_prep': 'migrate',
                    'rebuilding': 'evacuate'}


@dataclass
class Answer:
    """kvmplace's answer for one request (or why there is none)."""
    applies: bool = True
    operation: Optional[str] = None
    #: per host name: [passes, weight, filter, reason]
    hosts: dict[str, list] = field(default_factory=dict)
    decision_id: Optional[str] = None
    #: why the conductor gave no answer (the failure policy applies)
    failed: Optional[str] = None
    instance_uuid: Optional[str] = None

    def covers(self, names: list[str]) -> bool:
        return all(name in self.hosts for name in names)


NOT_APPLICABLE = Answer(applies=False)


class Adapter:
    """Asks the conductor; remembers each request's answer."""

    def __init__(self, conf: cfg.ConfigOpts = cfg.CONF, client=None):
        kconf.register_opts(conf)
        self.conf = conf
        self._client = client
        self._lock = threading.Lock()
        self._answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        #: RPC calls made: tests count them (one per scheduling request).
        self.calls = 0

    @property
    def options(self):
        return self.conf.kvmplace

    def answer(self, spec_obj: Any, names: list[str]) -> Answer:
        """kvmplace's verdict on ``names`` for ``spec_obj`` (one call per request)."""
        with self._lock:
            cached = self._answers.get(spec_obj)
        if cached is not None and (not cached.applies or cached.failed
                                   or cached.covers(names)):
            return cached
        result = self._ask(spec_obj, names)
        with self._lock:
            self._answers[spec_obj] = result
        return result

    def _ask(self, spec_obj: Any, names: list[str]) -> Answer:
        opts = self.options
        uuid = getattr(spec_obj, 'instance_uuid', None)
        try:
            operation, source = request_kind(spec_obj)
        except Exception as exc:  # noqa: BLE001 - any lookup failure: the policy decides
            return self._failed(uuid, None, f'cannot read instance {uuid}: {exc}')
        if operation not in opts.operations:
            return NOT_APPLICABLE
        flavor = spec_obj.flavor
        request = {
            'instance_uuid': uuid, 'operation': operation, 'source': source,
            'memory_mib': int(flavor.memory_mb), 'vcpus': int(flavor.vcpus),
            'candidates': list(dict.fromkeys(names)),
            'filters': list(opts.filters), 'weighers': list(opts.weighers),
            'dirty_rate_mibps': float(opts.default_dirty_rate_mibps),
            'max_fact_age_seconds': float(opts.max_fact_age_seconds),
            'request_id': _request_id(spec_obj),
        }
        started = time.monotonic()
        try:
            with self._lock:
                self.calls += 1
            reply = self.client().prepare(timeout=opts.timeout_seconds, retry=0).call(
                {}, 'decide', request=request)
        except messaging.MessagingTimeout:
            return self._failed(uuid, operation, f'the kvmplace conductor did not answer '
                                f'within {opts.timeout_seconds:g} s')
        except Exception as exc:  # noqa: BLE001 - broker down, remote error...: the policy
            return self._failed(uuid, operation, f'kvmplace conductor call failed: '
                                f'{type(exc).__name__}: {str(exc).splitlines()[0][:200]}'
                                if str(exc) else type(exc).__name__)
        LOG.debug('kvmplace decision %s for instance %s: %d hosts in %.1f ms',
                  reply.get('decision_id'), uuid, len(names),
                  (time.monotonic() - started) * 1000.0)
        return Answer(operation=operation, hosts=reply.get('hosts') or {},
                      decision_id=reply.get('decision_id'), instance_uuid=uuid)

    def _failed(self, uuid, operation, why: str) -> Answer:
        """One warning line per request: what failed and what happens now."""
        if self.options.failure_policy == kconf.FAIL_CLOSED:
            LOG.warning('kvmplace: %s; failure_policy fail-closed: no host passes for '
                        'instance %s', why, uuid)
        else:
            LOG.warning('kvmplace: %s; failure_policy fail-open: Nova schedules instance %s '
                        'without kvmplace', why, uuid)
        return Answer(operation=operation, failed=why, instance_uuid=uuid)

    def fail_closed(self) -> bool:
        return self.options.failure_policy == kconf.FAIL_CLOSED

    def client(self):
        """The RPC client on [kvmplace] transport_url, made on first use."""
        with self._lock:
            if self._client is None:
                transport = messaging.get_rpc_transport(
                    self.conf, url=self.options.transport_url or None,
                    allowed_remote_exmods=['kvmplace.exception'])
                target = messaging.Target(exchange=self.options.control_exchange,
                                          topic=TOPIC, namespace=NAMESPACE,
                                          version=API_VERSION)
                self._client = _signed(messaging.get_rpc_client(transport, target),
                                       self.options.message_auth_private_key_file)
            return self._client


def _signed(client, private_key_file: Optional[str]):
    """``client`` signing as operator ``<key file name>`` (kvmplace.msgauth),
    or as it is without a key."""
    if not private_key_file:
        return client
    from kvmplace import msgauth
    key = msgauth.load_private_key(private_key_file,
                                   '[kvmplace] message_auth_private_key_file')
    return msgauth.SignedClient(client, msgauth.Signer(msgauth.operator_name(
        private_key_file), key))


def request_kind(spec_obj: Any) -> tuple[str, Optional[str]]:
    """(operation, source host) of a Nova RequestSpec, from the instance record."""
    from nova import context as nova_context
    from nova import exception as nova_exc
    from nova import objects
    from nova.scheduler import utils as sched_utils
    ctxt = getattr(spec_obj, '_context', None) or nova_context.get_admin_context()
    try:
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctxt, spec_obj.instance_uuid)
    except nova_exc.InstanceMappingNotFound:
        return 'boot', None
    if mapping.cell_mapping is None:
        return 'boot', None       # still a build request in the API database
    with nova_context.target_cell(ctxt, mapping.cell_mapping) as cctxt:
        instance = objects.Instance.get_by_uuid(cctxt, spec_obj.instance_uuid,
                                                expected_attrs=[])
    if not instance.host:
        return 'boot', None
    operation = _TASK_OPERATIONS.get(instance.task_state or '')
    if operation == 'evacuate' and sched_utils.request_is_rebuild(spec_obj):
        operation = 'rebuild'
    return operation or str(instance.task_state or 'other'), instance.host


def _request_id(spec_obj: Any) -> Optional[str]:
    ctxt = getattr(spec_obj, '_context', None)
    rid = getattr(ctxt, 'request_id', None)
    return str(rid)[:64] if rid else None


_ADAPTER: Optional[Adapter] = None
_ADAPTER_LOCK = threading.Lock()


def get_adapter() -> Adapter:
    """The process's adapter (Nova instantiates filters and weighers itself,
    with no arguments, so they share this one)."""
    global _ADAPTER
    with _ADAPTER_LOCK:
        if _ADAPTER is None:
            _ADAPTER = Adapter()
        return _ADAPTER


def reset_adapter(adapter: Optional[Adapter] = None) -> None:
    """Replace the process's adapter (tests; a config reload)."""
    global _ADAPTER
    with _ADAPTER_LOCK:
        _ADAPTER = adapter
