"""libvirt over TLS between lab hosts, for real (marker ``lab``).

What is real: every lab host's own libvirtd listens on
``qemu+tls://ADDR:16514/system`` next to its ``qemu+tcp`` port, with a
server certificate from the lab's CA (made by ``kvmplace-lab up``, see
kvmplace/lab/pki.py) and ``tls_no_verify_certificate = 0``; each host's
mount namespace sees its own client certificate in /etc/pki. The tests
connect from the root namespace with real certificates (``pkipath=``), are
refused by the real daemon with a certificate it did not sign or none,
and live-migrate a running guest peer-to-peer, the source's libvirtd
dialling the destination's TLS port with its /etc/pki client certificate
while QEMU's own migration stream is TLS too (VIR_MIGRATE_TLS), once with
plain libvirt and once through kvmplace's agents (``peer_libvirt_uri`` set
to the TLS URI, ``[agent] migration_tls``). Nothing is mocked; the proof
comes from libvirt (isEncrypted, the refusal and the daemon's log, where
the guest runs, QEMU's migration parameters) and from ``ss`` inside the
source host's network namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable

import oslo_messaging as messaging
import pytest

from kvmplace.lab import measure, pki
from kvmplace.lab import state as labstate
from kvmplace.lab.manager import libvirt_module
from tests.functional.conftest import (AgentProcess, broker_url,  # noqa: F401
                                       make_client_conf,
                                       conductor, wait_for, write_agent_config)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]
libvirt = libvirt_module()


@pytest.fixture(scope='module')
def client_conf(broker_url, lab):  # noqa: F811
    """The test plays the lab's conductor: the lab's agents obey only
    messages signed with its key ([message_auth] required = true)."""
    yield from make_client_conf(broker_url, lab_keys=True)


#: Slow enough (lab-vm3 has 128 MiB of non-zero memory: ~8 s) that the
#: test sees the peer-to-peer control connection while the job runs.
BANDWIDTH_MIBPS = 16


def _tls_uri(host: dict, pkipath: str) -> str:
    return f"{host['libvirt_tls_uri']}?pkipath={pkipath}"


def _server_log(host: dict) -> str:
    """The host's libvirtd log (warnings and errors, see libvirtd.py)."""
    with open(os.path.join(labstate.host_dir(host["name"]), "log", "libvirtd.log")) as f:
        return f.read()


def test_lab_ca_client_connects_over_tls(lab):
    """A client certificate signed by the lab CA opens every host, encrypted;
    the host's name matched the server certificate's subjectAltName (the
    client checks it against the address it dialled)."""
    for host in lab["hosts"]:
        assert host["libvirt_tls_uri"] == f"qemu+tls://{host['address']}:16514/system"
        conn = libvirt.open(_tls_uri(host, pki.CLIENT_DIR))
        try:
            assert conn.getHostname() == host["name"]
            assert conn.isEncrypted() == 1 and conn.isSecure() == 1
            assert conn.getType() == "QEMU"
        finally:
            conn.close()
        plain = libvirt.open(host["libvirt_uri"])   # qemu+tcp still serves
        try:
            assert plain.isEncrypted() == 0 and plain.getHostname() == host["name"]
        finally:
            plain.close()


@pytest.mark.parametrize("client", ["foreign-ca", "no-certificate"])
def test_client_not_signed_by_the_lab_is_refused(lab, tmp_path, client):
    """The client trusts the lab CA (so it gets as far as the handshake) but
    presents a certificate from another CA, or none: the daemon refuses it
    and says why in its log."""
    host = lab["hosts"][0]
    lab_ca = pki.lab_ca()
    if client == "foreign-ca":
        other = pki.make_ca(str(tmp_path / "other-ca"), "not the lab CA")
        pkipath = pki.make_client_dir(other, str(tmp_path / "client"), "intruder",
                                      also_trust=(lab_ca.cert,))
    else:
        pkipath = str(tmp_path / "client")
        os.makedirs(pkipath)
        with open(lab_ca.cert) as src, open(os.path.join(pkipath, "cacert.pem"), "w") as dst:
            dst.write(src.read())
    refusals_before = _server_log(host).count("Failed to verify peer's certificate")
    with pytest.raises(libvirt.libvirtError) as refused:
        libvirt.open(_tls_uri(host, pkipath)).close()
    err = refused.value
    assert (err.get_error_domain(), err.get_error_code()) == \
        (libvirt.VIR_FROM_RPC, libvirt.VIR_ERR_SYSTEM_ERROR), str(err)
    assert "Unable to read TLS confirmation" in str(err)
    # The refusal is the server's: it logged it (the log may be flushed a
    # moment after the client saw the connection close).
    wait_for(lambda: _server_log(host).count("Failed to verify peer's certificate")
             > refusals_before, 10, f"{host['name']}'s libvirtd to log the refusal")


def _libvirtd_peers(netns: str, address: str) -> list[tuple[int, str]]:
    """(remote port, process) of the established TCP connections from
    ``netns`` to ``address``, as ``ss -tnp`` shows them inside the host."""
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Htnp", "state", "established",
                          "dst", address], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    peers = []
    for line in out.splitlines():
        fields = line.split()
        remote, process = fields[3], " ".join(fields[4:])
        peers.append((int(remote.rsplit(":", 1)[1]), process))
    return peers


def _migration_parameters(dom) -> dict:
    """QEMU's own migration parameters (tls-creds is set with VIR_MIGRATE_TLS)."""
    import libvirt_qemu
    reply = libvirt_qemu.qemuMonitorCommand(
        dom, json.dumps({"execute": "query-migrate-parameters"}), 0)
    return json.loads(reply)["return"]


def _assert_tls_while_running(lab: dict, guest: str, source: str, dest: str,
                              running: Callable[[], bool]) -> list[tuple[int, str]]:
    """While a migration of ``guest`` runs (``running``), the source's
    libvirtd is connected to the destination's TLS port and not to its TCP
    one, and the source QEMU's migration has TLS credentials. Returns the
    connections seen."""
    hosts = {h["name"]: h for h in lab["hosts"]}
    dest_address = hosts[dest]["address"]

    def control_connection() -> list[tuple[int, str]] | None:
        if not running():
            pytest.fail(f"the migration of {guest} ended before its connection was seen")
        peers = [p for p in _libvirtd_peers(hosts[source]["netns"], dest_address)
                 if '"libvirtd"' in p[1]]
        return peers or None
    peers = wait_for(control_connection, 60,
                     f"{source}'s libvirtd to connect to {dest_address}", 0.05)
    assert {port for port, _ in peers} == {labstate.LIBVIRT_TLS_PORT}, peers
    # The peer connection opens in the Begin/Prepare phases; libvirt gives
    # QEMU its TLS credentials just before the stream starts, and clears
    # them when the job ends: look while the job runs.
    src_conn = libvirt.open(hosts[source]["libvirt_uri"])
    try:
        dom = src_conn.lookupByName(guest)

        def tls_parameters() -> dict | None:
            if not running():
                pytest.fail(f"the migration of {guest} ended before QEMU had TLS credentials")
            params = _migration_parameters(dom)
            return params if params.get("tls-creds") else None
        params = wait_for(tls_parameters, 60, f"{guest}'s QEMU to migrate with TLS", 0.1)
    finally:
        src_conn.close()
    assert params.get("tls-hostname") in (dest_address, dest), params
    return peers


def _assert_runs_on(lab: dict, guest: str, dest: str) -> None:
    assert measure.where(guest) == dest
    uri = next(h["libvirt_uri"] for h in lab["hosts"] if h["name"] == dest)
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(guest)
        assert dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    finally:
        conn.close()


def test_peer_to_peer_migration_over_tls(lab):
    """lab-vm3 moves with a qemu+tls destination URI and VIR_MIGRATE_TLS.

    While it runs, the source host's libvirtd holds a connection to the
    destination's port 16514 and none to 16509, and the source QEMU's
    migration uses TLS credentials; afterwards libvirt on the destination
    runs the guest. The guest stays there (other tests ask where it is).
    """
    guest = "lab-vm3"
    source = measure.where(guest)
    dest = next(h["name"] for h in lab["hosts"] if h["name"] != source)
    dest_uri = next(h["libvirt_tls_uri"] for h in lab["hosts"] if h["name"] == dest)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = measure.migrate(
                guest, dest, bandwidth_mibps=BANDWIDTH_MIBPS,
                extra_flags=libvirt.VIR_MIGRATE_TLS, dest_uri=dest_uri)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        peers = _assert_tls_while_running(lab, guest, source, dest, thread.is_alive)
    finally:
        thread.join(240)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].dest == dest
    _assert_runs_on(lab, guest, dest)
    print(f"{guest} {source} -> {dest} over qemu+tls with VIR_MIGRATE_TLS: "
          f"{outcome['result'].wall_seconds:.1f} s, libvirtd connections {peers}")


@pytest.fixture(scope="module")
def tls_agents(lab, broker_url, client_conf, conductor, tmp_path_factory):  # noqa: F811
    """A kvmplace-agent per lab host (the lab's own agent config) that
    advertises its qemu+tls URI as peer_libvirt_uri and sets migration_tls."""
    from kvmplace.agent import rpcapi
    from kvmplace.lab import services

    tmp = tmp_path_factory.mktemp("tls-agents")
    procs = {}
    for host in lab["hosts"]:
        name = host["name"]
        overrides = write_agent_config(
            tmp / f"{name}.conf", broker_url, peer_libvirt_uri=host["libvirt_tls_uri"],
            migration_tls="true", report_interval_seconds=2, probe_enabled="false",
            dirty_rate_enabled="false", progress_interval_seconds=0.5)
        procs[name] = AgentProcess([services.agent_config_file(name), overrides],
                                   str(tmp / f"{name}.log"))
    quick = rpcapi.AgentAPI(conf=client_conf, timeout=3)
    try:
        for name, proc in procs.items():
            def answers(name=name, proc=proc):
                if proc.proc.poll() is not None:
                    pytest.fail(f"agent of {name} exited:\n{proc.log()}")
                try:
                    return quick.get_host_state({}, name)
                except messaging.MessagingTimeout:
                    return None
            wait_for(answers, 90, f"the agent of {name}", 0.5)
        yield rpcapi.AgentAPI(conf=client_conf, timeout=30)
    finally:
        for proc in procs.values():
            proc.stop()


def test_agents_migrate_over_tls_when_configured(lab, tls_agents, conductor):  # noqa: F811
    """The same through kvmplace: check_destination hands out the
    destination's qemu+tls URI (peer_libvirt_uri), and the source agent,
    with [agent] migration_tls, asks libvirt for VIR_MIGRATE_TLS."""
    api, guest = tls_agents, "lab-vm3"
    source = measure.where(guest)
    dest = next(h["name"] for h in lab["hosts"] if h["name"] != source)
    state = api.get_host_state({}, source)
    instance = next(g for g in state["instances"] if g["name"] == guest)
    answer = api.check_destination({}, dest, instance=instance,
                                   source_cpu_model=state["cpu_model"])
    assert answer["ok"], answer["reason"]
    assert answer["libvirt_uri"].startswith("qemu+tls://") and ":16514/" in answer["libvirt_uri"]
    mid = f"tls-{uuid.uuid4().hex[:10]}"
    started = api.migrate({}, source, migration_id=mid, instance=guest, dest_host=dest,
                          dest_uri=answer["libvirt_uri"], migrate_uri=answer["migration_uri"],
                          dest_cpus=answer["cpus"],
                          policy={"bandwidth_cap_mibps": BANDWIDTH_MIBPS})
    assert started["started"]
    peers = _assert_tls_while_running(
        lab, guest, source, dest,
        lambda: not conductor.named("migration_finished", migration_id=mid))
    finished = wait_for(lambda: conductor.named("migration_finished", migration_id=mid),
                        240, f"migration_finished for {mid}", 0.2)
    result = finished[0]["result"]
    assert result["status"] == "completed", result["error"]
    _assert_runs_on(lab, guest, dest)
    print(f"{guest} {source} -> {dest} by the agents over TLS: "
          f"{result['elapsed_seconds']:.1f} s, libvirtd connections {peers}")
