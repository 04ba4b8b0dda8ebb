"""RabbitMQ for the kvmplace services.

The lab starts ``rabbitmq-server`` itself (no systemd here) unless something
already listens on 5672, and records whether it did: ``down`` stops the
broker only if the lab started it, so a broker someone else runs is never
touched.
"""
from __future__ import annotations

import os
import subprocess

from kvmplace.lab.errors import LabError
from kvmplace.lab.system import (descendants, kill_pids, pid_alive, port_open, run,
                                 wait_until)

HOST, PORT = "127.0.0.1", 5672


def running() -> bool:
    return port_open(HOST, PORT)


def start(log_path: str) -> dict:
    """Start the broker in the background; returns the record for state.json.

    Does not wait: RabbitMQ takes a few seconds, which ``up`` overlaps with
    building hosts; call :func:`wait` before anything needs it.
    """
    if running():
        return {"started_by_lab": False}
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["rabbitmq-server"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd="/")
    return {"started_by_lab": True, "pid": proc.pid, "log": log_path}


def wait(record: dict, timeout: float = 60) -> None:
    pid = record.get("pid")

    def up() -> bool:
        if pid and not pid_alive(pid) and not running():
            raise LabError(f"rabbitmq-server exited; see {record.get('log')}")
        return running()
    wait_until(up, timeout, f"RabbitMQ on {HOST}:{PORT}", interval=0.2)


def stop(record: dict) -> None:
    """Stop the broker if (and only if) the lab started it."""
    if not record.get("started_by_lab"):
        return
    pid = record.get("pid")
    tree = descendants(pid) if pid else []
    if running():
        run(["rabbitmqctl", "shutdown"], check=False, timeout=60)
    # The wrapper chain (sh -> su -> sh -> beam.smp) normally exits with the
    # node; whatever is left of it goes now.
    kill_pids(tree)
    # epmd is started by the node and outlives it.
    run(["epmd", "-kill"], check=False)
