"""Arguments shared by several commands: the policy, --inventory, numbers.

Parsing a value is the parser's job: a bad one is a usage error naming
the option (``--max-downtime-ms: -5 must be > 0``), never a traceback.
"""
from __future__ import annotations

import argparse

from kvmplace import objects


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--max-downtime-ms', type=positive_int, default=None,
                        help='largest acceptable pause at switch-over (default from config)')
    parser.add_argument('--bandwidth-cap-mibps', type=positive_float, default=None,
                        help='cap the migration bandwidth')
    parser.add_argument('--auto-converge', action='store_true',
                        help='allow throttling the guest so it converges')
    parser.add_argument('--post-copy', action='store_true',
                        help='allow switching to post-copy')


def policy(parsed_args: argparse.Namespace) -> objects.Policy:
    return objects.Policy(max_downtime_ms=parsed_args.max_downtime_ms,
                          bandwidth_cap_mibps=parsed_args.bandwidth_cap_mibps,
                          allow_auto_converge=True if parsed_args.auto_converge else None,
                          allow_post_copy=True if parsed_args.post_copy else None)


def policy_dict(pol: objects.Policy) -> dict | None:
    """The policy as the conductor's RPC API takes it: set fields only."""
    given = {k: v for k, v in pol.to_dict().items() if v is not None}
    return given or None


def add_inventory_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--inventory', metavar='FILE',
                        help='offline inventory (JSON or YAML); without it the command asks '
                             'the conductor (needs --config-file)')


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a whole number') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'{value} must be > 0')
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a number') from None
    if not value > 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'{text} must be a finite number > 0')
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a number') from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f'{text} must be between 0 and 1')
    return value
