"""The Nova driver stands where the agents' RPC client stands (the
workflow calls either the same way), so it must accept every argument the
agent API's methods take: the pin guard's ``migration_id`` (agent API 1.1)
once reached the workflow's pre_pin call and NovaDriver refused it."""
from __future__ import annotations

import inspect

from kvmplace.agent import rpcapi
from kvmplace.conductor.drivers import nova


def _params(fn) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {'self'}


def test_the_nova_driver_takes_every_argument_of_the_agent_api():
    shared = [name for name, fn in inspect.getmembers(rpcapi.AgentAPI, inspect.isfunction)
              if not name.startswith('_') and hasattr(nova.NovaDriver, name)]
    assert {'pre_pin', 'restore_pin', 'migrate', 'abort', 'get_job'} <= set(shared)
    for name in shared:
        agent = _params(getattr(rpcapi.AgentAPI, name))
        driver = getattr(nova.NovaDriver, name)
        takes_any = any(p.kind is p.VAR_KEYWORD
                        for p in inspect.signature(driver).parameters.values())
        assert takes_any or agent <= _params(driver), (name, agent - _params(driver))
