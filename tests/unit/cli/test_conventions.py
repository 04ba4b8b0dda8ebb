"""The command line as cliff users know it, exit statuses, explanations,
and names from users' data shown safely.

Offline commands run in-process on inventories written here; online
commands run against a fake conductor (FakeConductor below, standing in
for the RPC client that client.conductor returns), so their rows, fields
and notes are checked without a broker.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmplace.cli import client
from kvmplace.cmd import kvmplace as cmd
from kvmplace.exception import KvmplaceError
from tests.unit.cli.test_cli import KVMPLACE
from tests.unit.conftest import REPO, SAMPLE_INVENTORY


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cmd.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def host(name: str, memory_mib: int = 65536, used: int = 0, link_mbps: int = 10000) -> dict:
    return {'name': name, 'link_mbps': link_mbps, 'vcpus': 32, 'vcpus_used': 0,
            'memory_mib': memory_mib, 'memory_used_mib': used,
            'cpu_model': 'Cascadelake-Server',
            'numa': [{'id': 0, 'cpus': '0-31', 'memory_mib': memory_mib,
                      'free_memory_mib': memory_mib - used, 'bandwidth_mibps': 20000,
                      'baseline_mibps': 20000}]}


def guest(name: str, on: str, memory_mib: int = 4096, dirty: float = 10.0) -> dict:
    return {'name': name, 'host': on, 'memory_mib': memory_mib, 'vcpus': 2,
            'dirty_rate_mibps': dirty, 'emulator_node': 0}


def write(tmp_path, hosts: list, guests: list, name: str = 'inv.json') -> str:
    path = tmp_path / name
    path.write_text(json.dumps({'hosts': hosts, 'instances': guests}))
    return str(path)


# --- formats and columns -----------------------------------------------------------

def test_select_yaml_with_columns_through_the_console_script():
    proc = subprocess.run([KVMPLACE, 'select', 'vm1', '--inventory',
                           'etc/kvmplace/inventory.sample.json', '-f', 'yaml',
                           '-c', 'host', '-c', 'weight'],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, '')
    rows = yaml.safe_load(proc.stdout)
    assert [r['host'] for r in rows] == ['cn-b', 'cn-c', 'cn-d']
    assert all(set(r) == {'host', 'weight'} for r in rows)
    assert rows[0]['weight'] == pytest.approx(1.5)


def test_select_json_without_columns_is_the_document_with_columns_the_rows(capsys):
    code, out, _ = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-f', 'json')
    assert code == 0 and set(json.loads(out)) == {'instance', 'source', 'ranked', 'rejected'}
    code, out, _ = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-f', 'json',
                       '-c', 'host', '-c', 'weighers')
    rows = json.loads(out)
    assert [set(r) for r in rows] == [{'host', 'weighers'}] * 3
    # The weigher breakdown keeps its named fields.
    assert set(rows[0]['weighers']['free_ram']) == {'raw', 'normalized', 'multiplier'}
    code, out, _ = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-f', 'yaml')
    assert set(yaml.safe_load(out)) == {'instance', 'source', 'ranked', 'rejected'}


@pytest.mark.parametrize('fmt,expected', [
    ('value', 'cn-b 1.5\ncn-c 0.5\ncn-d -0.25\n'),
    ('csv', '"host","weight"\n"cn-b",1.5\n"cn-c",0.5\n"cn-d",-0.25\n'),
])
def test_select_script_formats(capsys, fmt, expected):
    code, out, err = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY,
                         '-f', fmt, '-c', 'host', '-c', 'weight')
    assert (code, err) == (0, '')
    assert out.replace('\r\n', '\n') == expected


def test_table_weighers_are_compact_and_rejections_follow(capsys):
    code, out, _ = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY)
    assert code == 0
    # contribution = normalized x multiplier, then the raw figure.
    assert 'path_bandwidth +0.50 = 1.00 x 0.5 (raw 10000)' in out
    assert 'Rejected:' in out and 'cn-old' in out


def test_sort_and_unknown_column(capsys):
    code, out, _ = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-f', 'value',
                       '-c', 'host', '--sort-column', 'weight', '--sort-ascending')
    assert (code, out.split()) == (0, ['cn-d', 'cn-c', 'cn-b'])
    code, out, err = run(capsys, 'select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-c', 'nope')
    assert code == 1 and out == ''
    assert err.startswith('kvmplace: error: -c: no column named nope; the columns are rank, ')


def test_estimate_is_a_show_one(capsys):
    code, out, _ = run(capsys, 'estimate', 'vm1', '--to', 'cn-b', '--inventory',
                       SAMPLE_INVENTORY, '-f', 'value', '-c', 'bottleneck', '-c', 'rounds')
    assert (code, out.split()) == (0, ['stream', '3'])


# --- exit statuses --------------------------------------------------------------------

def test_no_valid_host_exits_1(capsys, tmp_path):
    # The only other host has too little memory for the guest.
    inv = write(tmp_path, [host('a'), host('small', memory_mib=2048)], [guest('g', 'a')])
    code, out, err = run(capsys, 'select', 'g', '--inventory', inv, '-f', 'json')
    assert code == 1
    data = json.loads(out)
    assert data['ranked'] == [] and {r['host'] for r in data['rejected']} == {'a', 'small'}
    assert err.splitlines() == ['kvmplace: error: no valid host for g: all 2 hosts rejected']
    code, out, err = run(capsys, 'select', 'g', '--inventory', inv)
    assert code == 1 and 'No valid host.' in out and 'small' in out


def test_draining_an_empty_host_succeeds(capsys, tmp_path):
    inv = write(tmp_path, [host('a'), host('empty')], [guest('g', 'a')])
    code, out, err = run(capsys, 'drain', 'empty', '--dry-run', '--inventory', inv, '-f', 'json')
    assert (code, err) == (0, '')
    plan = json.loads(out)
    assert (plan['host'], plan['migrations'], plan['unplaced']) == ('empty', [], [])
    code, out, err = run(capsys, 'drain', 'empty', '--dry-run', '--inventory', inv)
    assert (code, err) == (0, '') and 'empty has no guests: nothing to move' in out


def test_a_drain_leaving_guests_unplaced_exits_1_and_says_why(capsys):
    code, out, err = run(capsys, 'drain', 'cn-b', '--dry-run', '--inventory', SAMPLE_INVENTORY,
                         '-f', 'json')
    assert code == 1
    assert err.splitlines() == ['kvmplace: error: the drain leaves 1 guest(s) unplaced: hot1']
    (hot1,) = json.loads(out)['unplaced']
    assert hot1['reason'].startswith('no host passes the filters')
    # Per host, the filter and why; the option that would place it.
    rejected = {r['host']: r for r in hot1['rejected']}
    assert rejected['cn-a']['filter'] == 'convergence'
    assert rejected['cn-old']['filter'] == 'cpu_model'
    assert 'cn-b' not in rejected                       # the source says nothing
    assert hot1['suggestion']['option'] == '--auto-converge'
    assert 'cn-a' in hot1['suggestion']['hosts']
    # ... and with that option the drain places everyone.
    code, out, err = run(capsys, 'drain', 'cn-b', '--dry-run', '--inventory', SAMPLE_INVENTORY,
                         '--auto-converge', '-f', 'json')
    assert (code, err, json.loads(out)['unplaced']) == (0, '', [])
    code, out, err = run(capsys, 'drain', 'cn-b', '--dry-run', '--inventory', SAMPLE_INVENTORY)
    assert '  --auto-converge would place it (on cn-a' in out
    assert '  cn-old: cpu_model: CPU model Haswell' in out


def test_a_rebalance_that_moves_nothing_says_why(capsys, tmp_path):
    inv = write(tmp_path, [host('a', used=8192), host('b', used=8192)],
                [guest('g', 'a', memory_mib=8192), guest('h', 'b', memory_mib=8192)])
    code, out, err = run(capsys, 'rebalance', '--dry-run', '--inventory', inv, '-f', 'json')
    assert (code, err) == (0, '')
    plan = json.loads(out)
    assert plan['migrations'] == []
    assert plan['explanation'] == ('nothing to do: the memory-use spread 0% is within the '
                                   'threshold 10% and no guest is on an unhealthy host')
    code, out, _ = run(capsys, 'rebalance', '--dry-run', '--inventory', inv)
    assert 'nothing to do: the memory-use spread 0%' in out


def test_estimate_warns_when_a_filter_would_reject_the_host(capsys):
    code, out, err = run(capsys, 'estimate', 'vm1', '--to', 'cn-old', '--inventory',
                         SAMPLE_INVENTORY)
    assert code == 0
    assert err.splitlines() == [
        "kvmplace: warning: the cpu_model filter would reject cn-old: CPU model Haswell is "
        "older than the guest's Cascadelake-Server"]
    code, out, err = run(capsys, 'estimate', 'vm1', '--to', 'cn-old', '--inventory',
                         SAMPLE_INVENTORY, '-f', 'json')
    assert (code, err) == (0, '')
    assert json.loads(out)['rejected_by'] == [
        {'filter': 'cpu_model',
         'reason': "CPU model Haswell is older than the guest's Cascadelake-Server"}]
    code, out, err = run(capsys, 'estimate', 'vm1', '--to', 'cn-b', '--inventory',
                         SAMPLE_INVENTORY, '-f', 'json')
    assert json.loads(out)['rejected_by'] == [] and err == ''


# --- unknown commands ----------------------------------------------------------------

@pytest.mark.parametrize('argv,guess', [
    (['selct', 'vm1'], '(did you mean "select"?)'),
    (['drian', 'cn-a'], '(did you mean "drain"?)'),
    (['hosts', 'lst'], '(did you mean "hosts list"?)'),
    (['migrations'], '"migrations list"'),
    (['migrations'], '"migrations abort"'),
])
def test_unknown_command_gets_did_you_mean(capsys, argv, guess):
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, '')
    assert len(err.splitlines()) == 1 and err.startswith('kvmplace: error: unknown command')
    assert guess in err


# --- names from users' data -----------------------------------------------------------

def test_a_host_named_markup_and_an_esc_name_are_shown_not_obeyed(capsys, tmp_path):
    inv = write(tmp_path, [host('[/]'), host('[bold]b'), host('c')],
                [guest('[blink]x', '[/]'), guest('[red]g', '[/]')])
    code, out, err = run(capsys, 'drain', '[/]', '--dry-run', '--inventory', inv)
    assert (code, err) == (0, '')
    assert '[red]g' in out and '[blink]x' in out     # shown as text, not taken as markup
    code, out, err = run(capsys, 'drain', '[/]', '--dry-run', '--inventory', inv, '-f', 'json')
    names = {m['instance'] for m in json.loads(out)['migrations']}
    assert names == {'[blink]x', '[red]g'}             # JSON keeps the data exactly
    # The inventory loader refuses control characters in names (one line,
    # the character escaped): an ESC sequence never reaches the terminal.
    inv = write(tmp_path, [host('[/]'), host('\x1b[2Jevil')], [guest('g', '[/]')])
    code, out, err = run(capsys, 'drain', '[/]', '--dry-run', '--inventory', inv)
    assert code == 1 and out == ''
    assert len(err.splitlines()) == 1 and '\x1b' not in err and 'U+001B' in err


NAME = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), min_size=1,
               max_size=12).filter(lambda s: s.strip() != '' and not s.startswith('-'))
FORMATS = ['table', 'csv', 'value', 'json', 'yaml']


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=st.lists(NAME, min_size=4, max_size=4, unique=True),
       fmt=st.sampled_from(FORMATS))
def test_any_names_render_without_control_characters(capsys, tmp_path, names, fmt):
    a, b, g1, g2 = names
    inv = write(tmp_path, [host(a), host(b, link_mbps=1000)], [guest(g1, a), guest(g2, a)])
    for argv in (['select', g1], ['drain', a, '--dry-run'], ['estimate', g2, '--to', b],
                 ['rebalance', '--dry-run']):
        shown = 'shell' if fmt == 'csv' and argv[0] == 'estimate' else fmt   # a ShowOne
        code, out, err = run(capsys, *argv, '--inventory', inv, '-f', shown)
        assert code in (0, 1), err
        assert all(c.isprintable() or c in '\n\r' for c in out + err), (argv, out, err)
        assert len(err.splitlines()) <= 2


# --- online commands: Lister / ShowOne over a fake conductor -----------------------

class FakeConductor:
    """The conductor's RPC client, answering from canned records."""

    def __init__(self, name: str = 'h1'):
        self.name = name
        self.migration = {
            'id': '0123456789abcdef', 'instance': f'vm-{name}', 'status': 'completed',
            'source': name, 'dest': 'h2', 'error': None, 'created_at': '2024-01-01T00:00:00Z',
            'estimate': {'total_seconds': 12.0, 'bandwidth_mibps': 300.0,
                         'bottleneck': 'stream'},
            'result': {'elapsed_seconds': 11.0, 'downtime_ms': 40.0},
            'steps': [{'seq': 1, 'name': 'schedule', 'host': name, 'status': 'completed',
                       'started_at': '2024-01-01T00:00:00.000Z',
                       'finished_at': '2024-01-01T00:00:00.250Z', 'message': f'chose {name}'}]}

    def list_hosts(self, ctxt):
        return [{'name': self.name, 'up': True, 'seconds_since_report': 3,
                 'maintenance': False, 'link_mbps': 10000, 'memory_used_mib': 1024,
                 'memory_mib': 4096, 'vcpus_used': 2, 'vcpus': 8, 'numa_health': [1.0, 0.5],
                 'instances': [f'vm-{self.name}']}]

    def get_host(self, ctxt, name):
        return dict(self.list_hosts(ctxt)[0], state={'reported_at': 1.0})

    def list_migrations(self, ctxt, status=None, instance=None, limit=50):
        return [self.migration]

    def get_migration(self, ctxt, migration_id):
        return self.migration

    def list_drains(self, ctxt, status=None):
        return [{'id': 'd1', 'kind': 'drain', 'host': self.name, 'status': 'completed',
                 'created_at': 'x', 'finished_at': 'y', 'error': None}]

    def get_drain(self, ctxt, drain_id):
        return {'id': drain_id, 'kind': 'drain', 'host': self.name, 'status': 'completed',
                'migrations': [self.migration],
                'plan': {'unplaced': [{'instance': f'stuck-{self.name}', 'reason': 'no room'}]}}

    def drain(self, ctxt, host, dry_run=False):
        if host == 'empty':
            raise KvmplaceError('nothing to do: host "empty" has no guests')
        return {'host': host, 'migrations': [], 'predicted_makespan_seconds': 0.0,
                'unplaced': [{'instance': 'stuck', 'reason': 'no host passes the filters'}]}

    def select_destinations(self, ctxt, instance, policy=None, force_hosts=None,
                            ignore_hosts=None):
        ranked = [] if not (policy or {}).get('allow_post_copy') else [
            {'host': 'h2', 'weight': 1.0, 'weighers': {}, 'estimate': {}}]
        return {'instance': instance, 'source': self.name, 'ranked': ranked,
                'rejected': [{'host': 'h2', 'filter': 'convergence', 'reason': 'too hot'}]}


@pytest.fixture
def fake_conductor(monkeypatch):
    fake = FakeConductor()
    monkeypatch.setattr(client, 'conductor', lambda app: fake)
    return fake


def test_online_lists_take_formats_and_columns(capsys, fake_conductor):
    code, out, _ = run(capsys, 'hosts', 'list', '-f', 'csv', '-c', 'name', '-c', 'numa_health')
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [['name', 'numa_health'], ['h1', '[1.0, 0.5]']]
    code, out, _ = run(capsys, 'hosts', 'list', '-f', 'json')
    assert json.loads(out) == fake_conductor.list_hosts({})           # the records as they are
    code, out, _ = run(capsys, 'migrations', 'list', '-f', 'value', '-c', 'id', '-c', 'status')
    assert out.split() == ['0123456789abcdef', 'completed']
    code, out, _ = run(capsys, 'migrations', 'list')
    assert '01234567 ' in out and '0123456789' not in out            # short id in the table
    code, out, _ = run(capsys, 'drains', 'list', '-f', 'value', '-c', 'id')
    assert out.split() == ['d1']


def test_online_records_are_show_ones(capsys, fake_conductor):
    code, out, _ = run(capsys, 'migrations', 'show', '0123', '-f', 'value', '-c', 'status')
    assert (code, out) == (0, 'completed\n')
    code, out, _ = run(capsys, 'migrations', 'show', '0123')
    assert '12.0 s at 300 MiB/s (stream)' in out and 'Steps:' in out and '0.25' in out
    code, out, _ = run(capsys, 'hosts', 'show', 'h1', '-f', 'json')
    assert json.loads(out)['state'] == {'reported_at': 1.0}
    code, out, _ = run(capsys, 'drains', 'show', 'd1')
    assert 'not moved stuck-h1: no room' in out


def test_online_drain_exit_statuses(capsys, fake_conductor):
    code, out, err = run(capsys, 'drain', 'empty', '--dry-run', '-f', 'json')
    assert (code, err, json.loads(out)['migrations']) == (0, '', [])
    code, out, err = run(capsys, 'drain', 'h1', '--dry-run', '-f', 'json')
    assert code == 1 and err == 'kvmplace: error: the drain leaves 1 guest(s) unplaced: stuck\n'
    (stuck,) = json.loads(out)['unplaced']
    assert stuck['rejected'] == [{'host': 'h2', 'filter': 'convergence', 'reason': 'too hot'}]
    assert stuck['suggestion'] == {'option': '--post-copy', 'hosts': ['h2']}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAME, argv=st.sampled_from([['hosts', 'list'], ['hosts', 'show', 'x'],
                                         ['migrations', 'list'], ['migrations', 'show', 'x'],
                                         ['drains', 'list'], ['drains', 'show', 'x'],
                                         ['drain', 'x', '--dry-run']]),
       fmt=st.sampled_from(['table', 'shell', 'value']))
def test_online_renderers_escape_any_name(capsys, monkeypatch, name, argv, fmt):
    monkeypatch.setattr(client, 'conductor', lambda app: FakeConductor(name))
    one = argv[1] == 'show' and argv[0] != 'drains'     # ShowOnes take shell, not csv
    code, out, err = run(capsys, *argv, '-f', fmt if one or fmt != 'shell' else 'csv')
    assert code in (0, 1), err
    assert all(c.isprintable() or c in '\n\r' for c in out + err), (argv, out, err)


def test_a_warning_never_joins_an_error_line(capsys):
    code, out, err = run(capsys, 'estimate', 'vm1', '--to', 'cn-old', '--inventory',
                         SAMPLE_INVENTORY, '-c', 'nope')
    assert code == 1 and out == ''
    assert err.splitlines() == [
        "kvmplace: error: -c: no column named nope; the columns are bandwidth_mibps, "
        "bottleneck, rounds, data_mib, total_seconds, downtime_ms, converges, pre_pin, "
        "without_pre_pin, mode, learned, rejected_by"]


def test_a_host_name_never_turns_one_command_into_another(capsys, tmp_path):
    """cliff accepts abbreviations of multi-word commands: ``drain l`` once
    ran ``drains list`` (found by hypothesis with a host named ``l``)."""
    inv = write(tmp_path, [host('l'), host('m')], [guest('g1', 'l')])
    code, out, err = run(capsys, 'drain', 'l', '--dry-run', '--inventory', inv, '-f', 'json')
    assert code == 0, err
    assert 'g1' in out and '"id"' not in out
