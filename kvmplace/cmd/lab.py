"""``kvmplace-lab``: several real libvirt hosts on this machine, for tests.

    kvmplace-lab up [--hosts N] [--links MBPS,...] [--guests M] [--services]
    kvmplace-lab status [-f table|json]
    kvmplace-lab slow-node HOST NODE --bandwidth-mibps X   (or --healthy)
    kvmplace-lab set-link HOST MBPS
    kvmplace-lab down [--keep-broker]

Errors print one line, ``kvmplace-lab: error: ...``, and exit non-zero;
``--debug`` shows the traceback too.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback

PROG = "kvmplace-lab"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}") from None
    if not values:
        raise argparse.ArgumentTypeError("empty list")
    return values


def _mix(text: str) -> list[dict]:
    try:
        if not text.lstrip().startswith("["):
            with open(text) as f:
                text = f.read()
        value = json.loads(text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"not a JSON list of guests or a file holding "
                                         f"one: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise argparse.ArgumentTypeError("must be a JSON list of objects")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help="show debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="create hosts, start libvirtd, RabbitMQ and guests")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    up.add_argument("--links", type=_int_list, default=None, metavar="MBPS,...",
                    help="link speed of each host in Mbit/s, cycled "
                         "(default 10000,1000,200)")
    up.add_argument("--guests", type=int, default=4,
                    help="number of guests, spread round-robin (default 4)")
    up.add_argument("--dirty", type=_int_list, default=None, metavar="MIBPS,...",
                    help="dirty rate of guest 1, 2, ... in MiB/s (Linux guests only)")
    up.add_argument("--mix", type=_mix, default=None, metavar="JSON|FILE",
                    help="the guests, one JSON object each (kind, memory_mib, "
                         "dirty_rate_mibps, buffer_mib, disk_mib, host): a JSON list "
                         "or a file holding one; replaces --guests and --dirty")
    up.add_argument("--linux-accel", choices=("auto", "kvm", "tcg"), default="auto",
                    help="how Linux guests run: auto probes KVM once and falls back "
                         "to TCG (default auto)")
    up.add_argument("--services", action="store_true",
                    help="also start kvmplace-conductor and one kvmplace-agent per host")
    up.add_argument("--recreate", action="store_true",
                    help="take an existing lab down first")
    up.add_argument("--no-install", action="store_true",
                    help="do not apt-get install missing packages")
    up.add_argument("-f", "--format", choices=("table", "json"), default="table")

    status = sub.add_parser("status", help="show hosts, guests, broker and services")
    status.add_argument("-f", "--format", choices=("table", "json"), default="table")

    down = sub.add_parser("down", help="remove everything the lab made")
    down.add_argument("--keep-broker", action="store_true",
                      help="leave RabbitMQ running even if the lab started it")

    slow = sub.add_parser("slow-node", help="inject a NUMA node's memory bandwidth")
    slow.add_argument("host")
    slow.add_argument("node", type=int)
    group = slow.add_mutually_exclusive_group(required=True)
    group.add_argument("--bandwidth-mibps", type=int)
    group.add_argument("--healthy", action="store_true", help="back to the baseline")
    slow.add_argument("-f", "--format", choices=("table", "json"), default="table")

    link = sub.add_parser("set-link", help="change a host's link speed (tc)")
    link.add_argument("host")
    link.add_argument("mbps", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: error: interrupted (run `{PROG} down` to clean up)\n")
        return 130
    except Exception as exc:  # one line for the operator, traceback on --debug
        from kvmplace.exception import KvmplaceError

        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, KvmplaceError):
            message = f"{type(exc).__name__}: {message}"
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return getattr(exc, "exit_code", 1)


def _progress(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _dispatch(args: argparse.Namespace) -> int:
    from kvmplace.lab import manager
    from kvmplace.lab import state as labstate

    if args.command == "up":
        started = time.monotonic()
        state = manager.up(hosts=args.hosts, links_mbps=args.links,
                           guests_count=args.guests, with_services=args.services,
                           dirty_rates=args.dirty, linux_accel=args.linux_accel,
                           mix=args.mix,
                           recreate=args.recreate, install=not args.no_install,
                           progress=_progress)
        _progress(f"up in {time.monotonic() - started:.1f} s")
        _show(labstate.public_view(state), args.format)
    elif args.command == "status":
        _show(labstate.public_view(manager.status()), args.format)
    elif args.command == "down":
        manager.down(keep_broker=args.keep_broker, progress=_progress)
        _progress("down")
    elif args.command == "slow-node":
        nodes = manager.slow_node(args.host, args.node,
                                  None if args.healthy else args.bandwidth_mibps)
        if args.format == "json":
            print(json.dumps(nodes, indent=2))
        else:
            _numa_table(args.host, nodes)
    elif args.command == "set-link":
        host = manager.set_link(args.host, args.mbps)
        _progress(f"{host['name']}: link shaped to {host['link_mbps']} Mbit/s")
    return 0


def _show(view: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(view, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    if not view["hosts"]:
        console.print("No lab is up.")
        return
    hosts = Table(title="Hosts")
    hosts.add_column("name", no_wrap=True)
    hosts.add_column("address", no_wrap=True)
    hosts.add_column("link Mbit/s", justify="right")
    hosts.add_column("libvirt URI", no_wrap=True)
    hosts.add_column("guests")
    for host in view["hosts"]:
        on_host = [g["name"] for g in view["guests"] if g["host"] == host["name"]]
        hosts.add_row(host["name"], host["address"], str(host["link_mbps"]),
                      host["libvirt_uri"], " ".join(on_host))
    console.print(hosts)
    guests = Table(title="Guests")
    for column in ("name", "host", "kind", "domain type", "memory MiB", "dirty MiB/s"):
        guests.add_column(column)
    for guest in view["guests"]:
        guests.add_row(guest["name"], guest["host"] or "-", guest.get("kind") or "",
                       guest.get("domain_type") or "", str(guest.get("memory_mib", "")),
                       str(guest["dirty_rate_mibps"]))
    console.print(guests)
    console.print(f"broker: {view['broker_url']}")
    console.print(f"config: {view['config_file']}")
    table = Table(title="Services")
    for column in ("name", "state", "pid", "log / reason"):
        table.add_column(column)
    for name, service in sorted(view["services"].items()):
        table.add_row(name, service.get("state", ""), str(service.get("pid") or "-"),
                      service.get("reason") or service.get("log") or "")
    console.print(table)


def _numa_table(host: str, nodes: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from kvmplace import resources

    table = Table(title=f"{host} NUMA nodes")
    for column in ("id", "cpus", "memory MiB", "bandwidth MiB/s", "baseline MiB/s",
                   "health"):
        table.add_column(column)
    for node in nodes:
        health = resources.node_health(node["bandwidth_mibps"], node["baseline_mibps"])
        table.add_row(str(node["id"]), node["cpus"], str(node["memory_mib"]),
                      str(node["bandwidth_mibps"]), str(node["baseline_mibps"]),
                      f"{health:.2f}")
    Console(width=max(120, Console().width)).print(table)


if __name__ == "__main__":
    sys.exit(main())
