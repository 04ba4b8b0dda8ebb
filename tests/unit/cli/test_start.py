"""What the command line imports and registers before a command runs.

An offline ``kvmplace select --inventory`` on 100,000 hosts must answer in
seconds (issue 17), and a second of it was start-up: oslo.messaging (with
eventlet under it) imported for its options, every command's module (rich,
the RPC clients) imported by stevedore, networkx for a graph select never
builds, keystoneauth1 for [nova] options only the conductor reads. These
run the real CLI in a child process and look at what it
imported; the online paths must still find oslo.messaging's options.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.conftest import REPO, SAMPLE_INVENTORY

# Runs the CLI as the console script does, then reports sys.modules.
_RUN = r'''
import json, sys
from kvmplace.cmd import kvmplace as cmd
code = cmd.main(sys.argv[1:])
mods = [m for m in ('oslo_messaging', 'eventlet', 'networkx', 'rich', 'kvmplace.cli.online',
                    'kvmplace.cli.plan', 'kvmplace.rpc', 'keystoneauth1', 'requests')
        if m in sys.modules]
from oslo_config import cfg
sys.stderr.write('\nMODULES ' + json.dumps({'code': code, 'modules': mods,
                 'transport_url_registered': 'transport_url' in cfg.CONF}) + '\n')
'''


def run_cli(*args: str) -> tuple[dict, str, str]:
    proc = subprocess.run([sys.executable, '-c', _RUN, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    head, _, tail = proc.stderr.rpartition('\nMODULES ')
    return json.loads(tail), proc.stdout, head


def test_offline_select_imports_no_bus_no_graph_no_other_commands():
    report, out, err = run_cli('select', 'vm1', '-f', 'json', '--inventory', SAMPLE_INVENTORY)
    assert report['code'] == 0, err
    assert json.loads(out)['ranked']
    assert report['modules'] == []
    assert report['transport_url_registered'] is False


@pytest.mark.parametrize('args', [
    ('select', 'vm1'),                              # online: no transport_url given
    ('hosts', 'list'),
])
def test_online_commands_register_the_bus_options(args):
    """The conductor's commands still read transport_url (registered when
    they ask for it) and fail with the same one line when it is unset."""
    report, _, err = run_cli(*args)
    assert report['code'] == 1
    assert err.strip().splitlines() == [
        'kvmplace: error: no transport_url: pass --config-file with [DEFAULT] transport_url '
        '(or use --inventory for offline planning)']
    assert report['transport_url_registered'] is True
    assert 'oslo_messaging' in report['modules']


def test_transport_url_from_config_file_is_read_when_registered_late(tmp_path):
    """oslo.config parses --config-file at start; an option registered after
    that still gets the file's value (the broker named there is tried)."""
    conf = tmp_path / 'kvmplace.conf'
    conf.write_text('[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n')
    report, _, err = run_cli('--config-file', str(conf), 'select', 'vm1')
    assert report['code'] == 1
    assert '127.0.0.1:1' in err and 'is RabbitMQ running?' in err, err
    assert 'u:p' not in err


def test_help_still_lists_every_command_with_its_summary():
    """Commands are found without importing them; --help loads each for
    its summary line, as before."""
    report, out, _ = run_cli('--help')
    assert report['code'] == 0
    for name, summary in (('select', 'Rank the hosts a guest could live-migrate to'),
                          ('hosts list', ''), ('decisions show', ''), ('doctor', '')):
        assert any(line.strip().startswith(name + ' ') and summary in line
                   for line in out.splitlines()), name


def test_command_help_has_no_plugin_sentence():
    """cliff would add "This command is provided by the ... plugin" for a
    command from another package; all of ours are kvmplace's own."""
    report, out, _ = run_cli('select', '--help')
    assert report['code'] == 0
    assert 'Rank the hosts a guest could live-migrate to' in out
    assert 'provided by' not in out


def test_services_still_register_every_nova_client_option():
    """The conductor's configuration (and its logged option values and
    sample file) keep keystoneauth1's [nova] and [placement] options."""
    from kvmplace import conf as kconf
    conf = kconf.new_conf()
    for name in ('auth_type', 'cafile', 'timeout', 'region_name', 'service_type'):
        assert name in conf.nova, name
    assert conf.nova.service_type == 'compute'
    assert conf.placement.service_type == 'placement'
    cli_conf = kconf.cfg.ConfigOpts()
    kconf.register_opts(cli_conf, nova_clients=False)
    cli_conf([], project='kvmplace', default_config_files=[], default_config_dirs=[])
    assert 'auth_type' not in cli_conf.nova
    assert cli_conf.nova.inventory_interval_seconds == 20
