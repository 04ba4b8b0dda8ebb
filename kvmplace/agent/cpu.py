"""Can this host run an incoming guest's CPU?

A guest keeps its CPU model and features across a live migration; a
destination whose CPU lacks one of them fails the migration at the very end,
after every byte was copied. So the destination agent asks its own
hypervisor before saying yes.
"""
from __future__ import annotations

import logging
from typing import Optional

import libvirt

LOG = logging.getLogger(__name__)


def refusal(conn, host_model: Optional[str], guest: dict, source_model: Optional[str]
            ) -> Optional[str]:
    """None if compatible, else the reason.

    - host-passthrough / host-model guests carry the source host's CPU: the
      destination must have the same model.
    - a guest with its own named model must be runnable by this hypervisor
      (virConnectCompareHypervisorCPU; the model list where that is
      unsupported, as on the test driver).
    - a guest with QEMU's portable default model runs anywhere.
    """
    mode, model = guest.get('cpu_mode'), guest.get('cpu_model')
    if mode in ('host-passthrough', 'host-model', 'maximum'):
        if source_model and host_model and source_model != host_model:
            return (f'guest uses the {mode} CPU of a {source_model} host; this host is '
                    f'{host_model}')
        return None
    if not model:
        return None
    xml = f"<cpu mode='custom' match='exact'><model fallback='forbid'>{model}</model></cpu>"
    try:
        result = conn.compareHypervisorCPU(None, None, None, None, xml, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            return f'CPU model {model} cannot be checked here: {exc.get_error_message()}'
        return _by_model_list(conn, model)
    if result == libvirt.VIR_CPU_COMPARE_INCOMPATIBLE:
        return f'this host\'s CPU ({host_model}) cannot run the guest\'s CPU model {model}'
    return None


def _by_model_list(conn, model: str) -> Optional[str]:
    import xml.etree.ElementTree as ET
    try:
        arch = ET.fromstring(conn.getCapabilities()).findtext('./host/cpu/arch') or 'x86_64'
        names = conn.getCPUModelNames(arch, 0)
    except libvirt.libvirtError as exc:
        LOG.debug('CPU model names unavailable: %s', exc)
        return None
    if model not in names:
        return f'CPU model {model} is unknown to this host'
    return None
