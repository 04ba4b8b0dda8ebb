"""A recording stand-in for the kvmplace agents beside nova-compute.

Run as its own process (kvmplace's interpreter)::

    python -m tests.nova.recording_agent --transport-url URL --hosts FILE --record FILE

``--hosts`` names a JSON file ``{host: [{"name": domain, "uuid": ...,
"memory_mib": ..., "vcpus": ...}]}``. For every host it serves a real
oslo.messaging RPC server on the agents' topic (``kvmplace-agent``,
``server=host``), exactly where the conductor's AgentAPI calls, and it
casts ``report_state`` for the host to the conductor every second, so the
Nova driver sees "a kvmplace agent reports from HOST" and routes the
agent's steps to it.

What is faked, and why: the agent's answers. A real agent would pin QEMU
threads through libvirt and /proc, but Nova's fake virt driver runs no
QEMU, so there is nothing to pin; the point of this stand-in is the
*record* - every method name the conductor calls on each host, appended as
one JSON line ``{"host", "method", "kwargs"}`` to ``--record`` - so a test
can assert which agent calls a Nova-managed guest's migration makes. Any
method is accepted and recorded (the endpoint answers every name), so a
call the conductor should never make (migrate, abort, get_job...) is
recorded too instead of vanishing into an RPC timeout.
"""
from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg

#: The agent's answers to the pinning and verify calls (plain data, the
#: shapes kvmplace.agent.rpcapi documents).
ANSWERS: dict[str, Any] = {
    'pre_pin': {'ok': True, 'node': 0, 'cpus': '0-3', 'previous_cpus': '0-7',
                'affinity': '0-3'},
    'restore_pin': {'ok': True, 'cpus': '0-7', 'affinity': '0-7'},
    'post_verify': {'ok': True, 'reason': None, 'affinity': '0-7'},
    'migrate': {'started': True},
    'abort': {'aborted': False},
    'get_job': {'active': False, 'migration_id': None, 'progress': None, 'result': None},
    'check_destination': {'ok': False, 'reason': 'recording agent: not asked in Nova mode'},
}


class Recorder:
    """Every call on every host, one JSON line each."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()

    def record(self, host: str, method: str, kwargs: dict) -> None:
        with self.lock, open(self.path, 'a', encoding='utf-8') as fh:
            fh.write(json.dumps({'host': host, 'method': method, 'kwargs': kwargs},
                                default=str) + '\n')
            fh.flush()


class RecordingEndpoint:
    """Answers any method name (see the module docstring)."""

    target = messaging.Target(version='1.1')

    def __init__(self, host: str, recorder: Recorder, state: dict):
        self._host = host
        self._recorder = recorder
        self._state = state

    def __getattr__(self, method: str):
        if method.startswith(('_', 'oslo_')):      # oslo.messaging's own names
            raise AttributeError(method)

        def call(ctxt, **kwargs):
            self._recorder.record(self._host, method, kwargs)
            if method == 'get_host_state':
                return self._state
            return dict(ANSWERS.get(method) or {'ok': False, 'reason': 'unknown method'})
        return call


def host_state(host: str, guests: list[dict]) -> dict:
    """The report an agent casts: two healthy NUMA nodes, 10 GbE, and the
    guests it found (matched by the conductor to Nova's servers by UUID)."""
    return {'name': host, 'vcpus': 32, 'vcpus_used': 0, 'memory_mib': 65536,
            'memory_used_mib': 0, 'link_mbps': 10000,
            'numa': [{'id': i, 'cpus': f'{16 * i}-{16 * i + 15}', 'memory_mib': 32768,
                      'free_memory_mib': 32768, 'bandwidth_mibps': 27000.0,
                      'baseline_mibps': 27000.0} for i in range(2)],
            'instances': [{'name': g['name'], 'uuid': g['uuid'], 'host': host,
                           'memory_mib': g.get('memory_mib', 512), 'vcpus': g.get('vcpus', 1),
                           'state': 'running', 'dirty_rate_mibps': 5.0,
                           'emulator_cpus': '0-7'} for g in guests]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--transport-url', required=True)
    parser.add_argument('--hosts', required=True)
    parser.add_argument('--record', required=True)
    args = parser.parse_args(argv)
    with open(args.hosts, encoding='utf-8') as fh:
        hosts: dict[str, list[dict]] = json.load(fh)
    # The global CONF: oslo.messaging registers some options only there.
    conf = cfg.CONF
    conf([], project='kvmplace-recording-agent')
    transport = messaging.get_rpc_transport(conf, url=args.transport_url)
    recorder = Recorder(args.record)
    states = {h: host_state(h, guests) for h, guests in hosts.items()}
    servers = [messaging.get_rpc_server(
        transport, messaging.Target(topic='kvmplace-agent', server=h),
        [RecordingEndpoint(h, recorder, states[h])]) for h in hosts]
    for server in servers:
        server.start()
    conductor = messaging.get_rpc_client(transport, messaging.Target(
        topic='kvmplace-conductor', version='1.0'))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(args.record + '.ready', 'w', encoding='utf-8') as fh:
        fh.write('ready\n')
    while not stop.is_set():
        for state in states.values():
            conductor.cast({}, 'report_state', host_state=state)
        stop.wait(1.0)
    for server in servers:
        server.stop()
        server.wait()
    transport.cleanup()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
