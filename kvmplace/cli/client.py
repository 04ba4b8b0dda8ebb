"""The conductor as the command line reaches it: one readable line per failure.

Only this module (and backend.py's conductor back end) knows about the
RPC transport; commands get plain data back.
"""
from __future__ import annotations

from typing import Any

from kvmplace.exception import KvmplaceError


def conductor(app):
    """A ConductorAPI on the app's configuration, with a clear error if
    there is no broker configured."""
    import oslo_messaging as messaging

    from kvmplace import rpc
    from kvmplace.conductor import rpcapi
    conf = app.conf
    rpc.register_opts(conf)         # the command line registers them on first use
    if not conf.transport_url or not messaging.TransportURL.parse(conf, conf.transport_url).hosts:
        raise KvmplaceError('no transport_url: pass --config-file with [DEFAULT] '
                            'transport_url (or use --inventory for offline planning)')
    # The rabbit driver retries an unreachable broker for ever, whatever the
    # call timeout: look first, and say so in one line at once.
    problem = rpc.broker_problem(conf, timeout=min(5.0, float(app.options.rpc_timeout)))
    if problem:
        raise KvmplaceError(f'{problem}: is RabbitMQ running?')
    return rpcapi.ConductorAPI(conf=conf, timeout=app.options.rpc_timeout)


def call(fn, *args, **kwargs) -> Any:
    """Make an RPC call; turn transport errors into one readable line."""
    import oslo_messaging as messaging
    try:
        return fn({}, *args, **kwargs)
    except messaging.MessagingTimeout:
        from kvmplace import rpc
        problem = rpc.broker_problem()
        if problem:
            raise KvmplaceError(f'{problem}: is RabbitMQ running?') from None
        raise KvmplaceError('the conductor did not answer in time (is kvmplace-conductor '
                            'running? see kvmplace doctor)') from None
    except messaging.MessageDeliveryFailure as exc:
        raise KvmplaceError(f'cannot reach the message broker: {exc}') from None
    except messaging.RemoteError as exc:
        raise KvmplaceError(f'conductor: {exc.exc_type}: {exc.value}') from None
    except Exception as exc:
        if type(exc).__name__ == 'AccessRefused':
            raise KvmplaceError('the broker refused the login in transport_url (user or '
                                'password wrong)') from None
        # Remote KvmplaceError subclasses arrive re-raised with a _Remote suffix.
        if type(exc).__name__.endswith('_Remote'):
            raise KvmplaceError(str(exc).splitlines()[0]) from None
        raise
