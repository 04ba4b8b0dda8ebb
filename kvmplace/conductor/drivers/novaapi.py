"""The few Nova and Placement REST calls kvmplace makes, over keystoneauth1.

Plain keystoneauth1 Adapter calls rather than openstacksdk or
python-novaclient: kvmplace needs about a dozen requests, all documented in
the compute and placement API references; keystoneauth1 is the one
dependency every OpenStack service already has (sessions, service catalog,
microversion headers, every auth plugin), while openstacksdk would bring a
large tree of its own and python-novaclient is in maintenance mode.

Every request pins its microversion (:data:`COMPUTE_MICROVERSION`), so a
newer Nova answers in the shape this module reads. A request the API
refuses (4xx) raises :class:`NovaRefused` with Nova's own message; one that
does not reach the API or gets a 5xx is asked again with a growing pause
for ``[nova] unreachable_timeout_seconds``, and then raises
:class:`NovaUnreachable` - one line naming the URL and the cause.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading

from kvmplace.conductor import clock as clock_mod
from kvmplace.conductor import retry
from kvmplace.exception import KvmplaceError

LOG = logging.getLogger(__name__)

#: 2.88: since 2.68 a live migration to a named host cannot be forced, so
#: Nova's scheduler always validates the host (filters, claims in
#: Placement); 2.47 embeds the flavor in a server; 2.53 service and
#: hypervisor ids are UUIDs and PUT /os-services/{id} disables with a
#: reason; 2.59 migrations carry their UUID; 2.65 an abort works for a
#: queued or preparing migration too; 2.88 hypervisors without the old
#: usage figures (they come from Placement).
COMPUTE_MICROVERSION = '2.88'
#: 1.14 is enough for inventories and usages per provider.
PLACEMENT_MICROVERSION = '1.14'


class NovaError(KvmplaceError):
    """A Nova or Placement request failed."""


class NovaRefused(NovaError):
    """The API answered and refused (4xx): its message says why."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NovaUnreachable(NovaError):
    """The API could not be reached (or answered 5xx) for the whole retry time."""


def _message(resp_or_exc: Any) -> str:
    """Nova's message from an error body ({"badRequest": {"message": ...}})."""
    response = getattr(resp_or_exc, 'response', None) or resp_or_exc
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - not JSON: the exception's text
        return str(resp_or_exc).splitlines()[0] if str(resp_or_exc) else 'no message'
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get('message'):
                return str(value['message']).splitlines()[0]
        errors = body.get('errors')
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get('detail') or errors[0].get('title')).splitlines()[0]
    return str(body)[:200]


class Api:
    """One service's adapter with kvmplace's retry and error rules."""

    def __init__(self, adapter, name: str, microversion: str, timeout_s: float,
                 clock: clock_mod.Clock = clock_mod.REAL,
                 stop: Optional[Any] = None):
        self.adapter = adapter
        self.name = name
        self.microversion = microversion
        self.timeout_s = timeout_s
        self.clock = clock
        self.stop = stop

    def request(self, method: str, path: str, body: Optional[dict] = None,
                missing_ok: bool = False) -> Any:
        """The decoded JSON answer (None for an empty one, or for a 404
        when ``missing_ok``)."""
        def once() -> Any:
            try:
                resp = self.adapter.request(path, method, json=body,
                                            microversion=self.microversion, raise_exc=False)
            except (ks_exc.ConnectFailure, ks_exc.ConnectionError, ks_exc.RequestTimeout,
                    ks_exc.EndpointNotFound) as exc:
                raise NovaUnreachable(f'{self.name} API unreachable ({method} {path}): '
                                      f'{str(exc).splitlines()[0] if str(exc) else exc}') from None
            if resp.status_code >= 500:
                raise NovaUnreachable(f'{self.name} API answered {resp.status_code} to '
                                      f'{method} {path}: {_message(resp)}')
            if resp.status_code == 404 and missing_ok:
                return None
            if resp.status_code >= 400:
                raise NovaRefused(f'{self.name} refused {method} {path} '
                                  f'({resp.status_code}): {_message(resp)}', resp.status_code)
            if not resp.content:
                return None
            return resp.json()

        def again(exc: Any, pause_s: float) -> None:
            LOG.warning('%s; asking again in %.0f s', exc, pause_s)

        return retry.call(once, clock=self.clock, retry_on=(NovaUnreachable,),
                          timeout_s=self.timeout_s, max_pause_s=10.0, stop=self.stop,
                          on_retry=again)

    def get(self, path: str, missing_ok: bool = False) -> Any:
        return self.request('GET', path, missing_ok=missing_ok)


def load(conf, clock: clock_mod.Clock = clock_mod.REAL, stop=None) -> tuple[Api, Api]:
    """(compute, placement) clients from the [nova] and [placement] groups."""
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, 'nova')
        session = ks_loading.load_session_from_conf_options(conf, 'nova', auth=auth)
        compute = ks_loading.load_adapter_from_conf_options(conf, 'nova', session=session,
                                                            auth=auth)
        placement = ks_loading.load_adapter_from_conf_options(conf, 'placement',
                                                              session=session, auth=auth)
    except ks_exc.ClientException as exc:
        raise KvmplaceError(f'[nova]: {str(exc).splitlines()[0]}') from None
    timeout = conf.nova.unreachable_timeout_seconds
    return (Api(compute, 'Nova', COMPUTE_MICROVERSION, timeout, clock, stop),
            Api(placement, 'Placement', PLACEMENT_MICROVERSION, timeout, clock, stop))
