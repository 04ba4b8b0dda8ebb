"""Speed of the migration link.

The scheduler's link_speed filter and the estimator's path bandwidth start
from this number (megabits per second, as /sys/class/net/IF/speed reports).
veth pairs, bridges and tc-shaped links report no speed (-1 or an error), so
the configured ``link_mbps`` wins when set.
"""
from __future__ import annotations

import re
from typing import Optional

_IFNAME_RE = re.compile(r'^[A-Za-z0-9_.:@-]{1,15}$')


def sysfs_speed_mbps(interface: str, sys_root: str = '/sys') -> Optional[int]:
    """The kernel's idea of the interface speed, or None if it has none."""
    if not interface or not _IFNAME_RE.match(interface) or interface in ('.', '..'):
        return None
    try:
        with open(f'{sys_root}/class/net/{interface}/speed', encoding='ascii') as fh:
            value = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def link_speed(configured_mbps: int, interface: str, fallback_mbps: int,
               sys_root: str = '/sys') -> tuple[int, str]:
    """(speed in Mbit/s, where it came from: config, sysfs or fallback)."""
    if configured_mbps > 0:
        return configured_mbps, 'config'
    speed = sysfs_speed_mbps(interface, sys_root)
    if speed is not None:
        return speed, 'sysfs'
    return fallback_mbps, 'fallback'


def interface_ipv4(interface: str) -> Optional[str]:
    """First IPv4 address of ``interface`` (from the kernel, no shell)."""
    import fcntl
    import socket
    import struct
    if not interface or not _IFNAME_RE.match(interface):
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = struct.pack('256s', interface.encode()[:15])
        data = fcntl.ioctl(sock.fileno(), 0x8915, packed)  # SIOCGIFADDR
        return socket.inet_ntoa(data[20:24])
    except OSError:
        return None
    finally:
        sock.close()
