#!/usr/bin/env python3
"""Experiment: kvmplace's migration call against bare libvirt with and
without kvmplace's emulator pins.

overhead_bench.py finds kvmplace's ``migrateToURI3`` slower than the bare
call for the same data. Two things differ besides the control plane's
work: kvmplace pins the source's emulator threads first (``pre_pin``) and
hands the destination an XML with its own pin, while a bare call keeps the
guest's pin on both sides. This script moves one guest round-robin three
ways, each move from where the previous one left it:

- ``kvmplace``: ``kvmplace migrate --wait`` (records the pins it chose);
- ``replica``: bare libvirt with the pins kvmplace chose on its last move
  to the same host (source pinned with ``pinEmulator``, destination XML
  with ``<emulatorpin>``);
- ``asis``: bare libvirt, the guest's pin as it is (as overhead_bench.py's
  bare side).

Per move it prints one JSON line (wall time of the call, QEMU's job time,
data, iterations, the pins read back from libvirt); at the end one JSON
line with the medians per variant and direction, date, commit and machine.
An experiment, not a benchmark of record; about 8 minutes for 12 rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labbench  # noqa: E402
import overhead_bench as ob  # noqa: E402

VARIANTS = ('kvmplace', 'replica', 'asis')


def pin_of(host: str) -> str:
    """The guest's emulator pin on ``host`` as libvirt reports it."""
    from kvmplace.lab import manager
    conn = manager.connect(host)
    try:
        cpumap = conn.lookupByName(ob.GUEST).emulatorPinInfo()
        return ','.join(str(i) for i, on in enumerate(cpumap) if on)
    finally:
        conn.close()


def bare_pinned(dest: str, downtime_ms: int, src_cpus: str | None,
                dst_cpus: str | None) -> dict:
    """One bare ``migrateToURI3`` with the agent's flags, optionally with
    the source's emulator pinned first and the destination's in its XML."""
    import libvirt

    from kvmplace import objects
    from kvmplace.agent.migration import dest_xml
    from kvmplace.lab import manager, measure
    source = measure.where(ob.GUEST)
    conn = manager.connect(source)
    try:
        dom = conn.lookupByName(ob.GUEST)
        ncpus = conn.getInfo()[2]
        if src_cpus is not None:
            cpus = objects.parse_cpu_list(src_cpus)
            dom.pinEmulator(tuple(i in cpus for i in range(ncpus)),
                            libvirt.VIR_DOMAIN_AFFECT_LIVE)
        src_pin = pin_of(source)
        params: dict = {}
        if dst_cpus is not None:
            xml = dest_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), dst_cpus)
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = xml
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = xml
        done = threading.Event()

        def set_limit() -> None:
            poller = manager.connect(source)
            try:
                pdom = poller.lookupByName(ob.GUEST)
                while not done.wait(0.25):
                    try:
                        if pdom.jobStats().get('type', 0):
                            pdom.migrateSetMaxDowntime(downtime_ms, 0)
                            return
                    except libvirt.libvirtError:
                        pass
            finally:
                poller.close()

        thread = threading.Thread(target=set_limit, daemon=True)
        t0 = time.monotonic()
        thread.start()
        try:
            dom.migrateToURI3(manager.host_record(dest)['libvirt_uri'], params,
                              measure.MIGRATE_FLAGS | libvirt.VIR_MIGRATE_ABORT_ON_ERROR)
        finally:
            done.set()
            thread.join()
        wall = time.monotonic() - t0
    finally:
        conn.close()
    dconn = manager.connect(dest)
    try:
        stats = dconn.lookupByName(ob.GUEST).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    finally:
        dconn.close()
    return {'seconds': round(wall, 3), 'job_seconds': (stats.get('time_elapsed') or 0) / 1e3,
            'data_mib': round((stats.get('data_processed') or 0) / 2 ** 20, 1),
            'iterations': stats.get('memory_iteration'), 'downtime_ms': stats.get('downtime'),
            'src_pin': src_pin, 'dst_pin': pin_of(dest)}


def through_kvmplace(stack: labbench.Stack, dest: str) -> dict:
    rec = stack.cli('migrate', ob.GUEST, '--to', dest, '--wait')
    if rec.get('status') != 'completed':
        raise RuntimeError(f"kvmplace migrate failed: {rec.get('status')} {rec.get('error')}")
    res = rec.get('result') or {}
    src_cpus = next(((s.get('data') or {}).get('cpus') for s in rec.get('steps') or []
                     if s['name'] == 'pre_pin'), None)
    return {'seconds': res.get('elapsed_seconds'), 'job_seconds': res.get('job_seconds'),
            'data_mib': res.get('data_mib'), 'iterations': res.get('iterations'),
            'downtime_ms': res.get('downtime_ms'), 'src_pin': src_cpus,
            'dst_pin': rec.get('dest_cpus')}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=12, help='rounds of the three variants')
    args = parser.parse_args(argv)
    why = labbench.require_lab_tools()
    if why:
        sys.stderr.write(f'overhead_pins: {why}\n')
        return 2
    from kvmplace.lab import measure
    mix = [{'kind': 'linux', 'memory_mib': 256, 'buffer_mib': 128, 'dirty_rate_mibps': 0,
            'fill': True, 'host': ob.HOSTS[0]}]
    rows: list[dict] = []
    pins: dict[str, tuple] = {}
    with labbench.lab('overhead_pins', len(ob.LINKS), ob.LINKS, mix) as state, \
            tempfile.TemporaryDirectory(prefix='kvmplace-pins-') as tmp:
        downtime_ms = ob.agent_downtime_ms()
        stack = labbench.Stack(state, tmp, estimator={},
                               extra={'agent': {'dirty_rate_interval_seconds': 600}})
        try:
            stack.wait_ready()
            for dest in (ob.HOSTS[1], ob.HOSTS[0]):      # learn kvmplace's pins each way
                r = through_kvmplace(stack, dest)
                pins[dest] = (r['src_pin'], r['dst_pin'])
                ob.wait_seen(stack, dest)
            for rnd in range(args.rounds):
                for variant in VARIANTS:
                    src = measure.where(ob.GUEST)
                    dest = ob.HOSTS[1] if src == ob.HOSTS[0] else ob.HOSTS[0]
                    if variant == 'kvmplace':
                        ob.wait_seen(stack, src)
                        r = through_kvmplace(stack, dest)
                        pins[dest] = (r['src_pin'], r['dst_pin'])
                    elif variant == 'replica':
                        r = bare_pinned(dest, downtime_ms, *pins[dest])
                    else:
                        r = bare_pinned(dest, downtime_ms, None, None)
                    r.update(variant=variant, round=rnd + 1, dest=dest)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            stack.stop()
    summary = {}
    for variant in VARIANTS:
        for dest in ob.HOSTS:
            sel = [r for r in rows if r['variant'] == variant and r['dest'] == dest]
            if sel:
                summary[f'{variant}->{dest}'] = {
                    'moves': len(sel),
                    'seconds_median': statistics.median(r['seconds'] for r in sel),
                    'job_seconds_median': statistics.median(r['job_seconds'] for r in sel)}
    print(json.dumps({'experiment': 'overhead_pins', 'rounds': args.rounds,
                      'max_downtime_handed_to_qemu_ms': downtime_ms, 'summary': summary,
                      **state['provenance']}, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
