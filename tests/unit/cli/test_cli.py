"""The ``kvmplace`` command line: contract JSON, tables, one-line errors.

Most tests run the real console script (as scripts and operators do); a
few call kvmplace.cmd.kvmplace.main in-process. Expected figures come from
the sample inventory's content and the model's definition.
"""
import json
import os
import subprocess
import sys

import pytest

from kvmplace.cmd import kvmplace as cmd
from tests.unit.conftest import REPO, SAMPLE_INVENTORY

KVMPLACE = os.path.join(os.path.dirname(sys.executable), 'kvmplace')

SELECT_KEYS = {'instance', 'source', 'ranked', 'rejected'}
RANKED_KEYS = {'host', 'weight', 'weighers', 'estimate'}
WEIGHER_KEYS = {'raw', 'normalized', 'multiplier'}
REJECTED_KEYS = {'host', 'filter', 'reason'}
ESTIMATE_KEYS = {'bandwidth_mibps', 'bottleneck', 'rounds', 'data_mib', 'total_seconds',
                 'downtime_ms', 'converges', 'pre_pin', 'without_pre_pin'}
BOTTLENECKS = {'link', 'stream', 'source-numa', 'dest-numa', 'cap'}


def kvmplace(*args):
    return subprocess.run([KVMPLACE, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def assert_estimate_shape(est):
    assert ESTIMATE_KEYS <= set(est)
    assert est['bottleneck'] in BOTTLENECKS
    assert isinstance(est['converges'], bool)
    assert est['pre_pin'] is None or set(est['pre_pin']) == {'node', 'cpus'}
    wp = est['without_pre_pin']
    assert wp is None or {'bandwidth_mibps', 'total_seconds'} <= set(wp)
    assert (est['pre_pin'] is None) == (wp is None)


# --- select ------------------------------------------------------------------

@pytest.fixture(scope='module')
def select_vm1():
    proc = kvmplace('select', 'vm1', '--inventory', SAMPLE_INVENTORY, '-f', 'json')
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''
    return json.loads(proc.stdout)


def test_select_json_has_the_contract_shape(select_vm1):
    data = select_vm1
    assert set(data) == SELECT_KEYS
    assert (data['instance'], data['source']) == ('vm1', 'cn-a')
    assert data['ranked']
    for row in data['ranked']:
        assert set(row) == RANKED_KEYS
        assert row['weighers']
        for part in row['weighers'].values():
            assert set(part) == WEIGHER_KEYS
        assert_estimate_shape(row['estimate'])
    for row in data['rejected']:
        assert set(row) == REJECTED_KEYS
        assert row['reason']
    weights = [row['weight'] for row in data['ranked']]
    assert weights == sorted(weights, reverse=True)


def test_select_json_decisions_follow_the_sample(select_vm1):
    with open(SAMPLE_INVENTORY, encoding='utf-8') as fh:
        hosts = [h['name'] for h in json.load(fh)['hosts']]
    rejected = {row['host']: row for row in select_vm1['rejected']}
    ranked = [row['host'] for row in select_vm1['ranked']]
    assert sorted(ranked + list(rejected)) == sorted(hosts)
    # Why each host is out, from the sample's content:
    assert rejected['cn-a']['filter'] == 'not_source'
    assert rejected['cn-maint']['filter'] == 'maintenance'
    assert rejected['cn-old']['filter'] == 'cpu_model'           # Haswell < Cascadelake
    assert 'Haswell' in rejected['cn-old']['reason']
    assert rejected['cn-e']['filter'] == 'numa_health'           # 9000/27000 on both nodes
    assert '33%' in rejected['cn-e']['reason']
    # Weights (multipliers -1, 0.5, 1, 1): time cn-b = cn-c < cn-d (1 GbE), path 10000,
    # 10000, 1000; health all 1.0; free RAM after 8 GiB 122880, 57344, 106496 MiB.
    weights = {row['host']: row['weight'] for row in select_vm1['ranked']}
    assert ranked == ['cn-b', 'cn-c', 'cn-d']
    assert weights['cn-b'] == pytest.approx(0 + 0.5 + 0 + 1)
    assert weights['cn-c'] == pytest.approx(0 + 0.5 + 0 + 0)
    assert weights['cn-d'] == pytest.approx(-1 + 0 + 0 + (106496 - 57344) / (122880 - 57344))
    # vm1's emulator thread is on cn-a's slow node 0: pre-pin to node 1.
    est = select_vm1['ranked'][0]['estimate']
    assert est['pre_pin'] == {'node': 1, 'cpus': '12-23,36-47'}


def test_select_table_lists_hosts_and_rejections():
    proc = kvmplace('select', 'vm1', '--inventory', SAMPLE_INVENTORY)
    assert proc.returncode == 0, proc.stderr
    for name in ('cn-b', 'cn-c', 'cn-d', 'cn-maint', 'cn-old', 'Rejected', 'stream', 'link'):
        assert name in proc.stdout
    with pytest.raises(ValueError):
        json.loads(proc.stdout)


# --- estimate ----------------------------------------------------------------

def test_estimate_json(capsys):
    proc = kvmplace('estimate', 'vm1', '--to', 'cn-b', '--inventory', SAMPLE_INVENTORY,
                    '-f', 'json')
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)
    assert_estimate_shape(est)
    assert (est['bottleneck'], est['bandwidth_mibps']) == ('stream', 300)
    assert est['pre_pin'] == {'node': 1, 'cpus': '12-23,36-47'}
    assert est['without_pre_pin']['bandwidth_mibps'] == pytest.approx(100, abs=0.01)
    # 8192 MiB dirtied at 20 MiB/s over 300 MiB/s: q = 1/15, rounds leave
    # 546 MiB, 36 MiB, then 2.4 MiB: at the cap (500 ms, a 150 MiB window)
    # two rounds would do, but one more costs 8 ms, so QEMU gets the
    # ladder's first rung (50 ms, a 15 MiB window): three rounds, then the rest.
    q = 20 / 300
    assert est['rounds'] == 3
    assert est['converges'] is True
    assert est['total_seconds'] == pytest.approx(8192 * (1 + q + q ** 2 + q ** 3) / 300,
                                                 abs=1e-3)


def run_main(capsys, *args):
    """kvmplace.cmd.kvmplace.main in-process: (exit code, stdout, stderr)."""
    code = cmd.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def json_main(capsys, *args):
    code, out, err = run_main(capsys, *args, '-f', 'json')
    assert (code, err) == (0, '')
    return json.loads(out)


def test_estimate_over_1gbe_is_link_bound(capsys):
    est = json_main(capsys, 'estimate', 'vm2', '--to', 'cn-d', '--inventory', SAMPLE_INVENTORY)
    assert est['bottleneck'] == 'link'
    assert est['bandwidth_mibps'] == pytest.approx(1000 * 1e6 / 8 / 2 ** 20 * 0.6, abs=0.01)


def test_estimate_policy_options(capsys):
    args = ('estimate', 'hot1', '--to', 'cn-a', '--inventory', SAMPLE_INVENTORY)
    est = json_main(capsys, *args, '--bandwidth-cap-mibps', '250')
    assert (est['bottleneck'], est['bandwidth_mibps']) == ('cap', 250)
    assert est['converges'] is False             # dirties 400 MiB/s
    est = json_main(capsys, *args, '--post-copy')
    assert est['converges'] is True and est['mode'] == 'post-copy'
    est = json_main(capsys, *args, '--auto-converge', '--max-downtime-ms', '100')
    assert est['converges'] is True and est['mode'] == 'auto-converge'
    assert est['downtime_ms'] <= 100


def test_select_policy_and_host_options(capsys):
    code, out, err = run_main(capsys, 'select', 'hot1', '--inventory', SAMPLE_INVENTORY,
                              '-f', 'json')
    data = json.loads(out)
    # hot1 dirties 400 MiB/s: every host left is rejected as not converging.
    assert data['ranked'] == []
    assert {r['filter'] for r in data['rejected']} >= {'convergence'}
    # "No valid host" is a failure: exit 1, one error line saying which
    # policy option would place the guest.
    assert code == 1
    assert err.splitlines() == [
        'kvmplace: error: no valid host for hot1: all 7 hosts rejected; '
        '--auto-converge would place it on cn-a, cn-c, cn-d']
    data = json_main(capsys, 'select', 'hot1', '--post-copy', '--ignore-host', 'cn-c',
                     '--inventory', SAMPLE_INVENTORY)
    # Left: cn-a (10 GbE, faster, more free RAM) ahead of cn-d (1 GbE).
    assert [r['host'] for r in data['ranked']] == ['cn-a', 'cn-d']
    assert all(r['estimate']['mode'] == 'post-copy' for r in data['ranked'])
    assert {'host': 'cn-c', 'filter': 'ignore_hosts', 'reason': 'excluded by the request'} \
        in data['rejected']


def test_estimate_table(capsys):
    code, out, err = run_main(capsys, 'estimate', 'vm1', '--to', 'cn-b',
                              '--inventory', SAMPLE_INVENTORY)
    assert (code, err) == (0, '')
    for text in ('300.0 MiB/s (stream-bound)', 'pre_pin', 'node 1', 'converges'):
        assert text in out


# --- errors ------------------------------------------------------------------

@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('inv')
    malformed = d / 'malformed.json'
    malformed.write_text(json.dumps({'hosts': [{'name': 'a', 'vcpus': 4,
                                                'memory_mib': -1}]}))
    broken = d / 'broken.json'
    broken.write_text('{"hosts": [')
    latin = d / 'latin.json'
    latin.write_bytes(b'{"hosts": "\xe9"}')
    conf = d / 'bad.conf'
    return {'malformed': str(malformed), 'broken': str(broken), 'latin': str(latin),
            'missing': str(d / 'missing.json'), 'conf': str(conf)}


ERRORS = [
    (['select', 'vm1', '--inventory', '{missing}'], '--inventory: cannot read'),
    (['select', 'vm1', '--inventory', '{malformed}'], 'hosts[0].memory_mib: must be > 0'),
    (['select', 'vm1', '--inventory', '{broken}'], 'broken.json: is not valid JSON'),
    (['select', 'vm1', '--inventory', '{latin}'], 'is not UTF-8 text'),
    (['select', 'nope', '--inventory', SAMPLE_INVENTORY], 'unknown instance "nope"'),
    (['select', 'vm1', '--host', 'ghost', '--inventory', SAMPLE_INVENTORY],
     'unknown host "ghost"'),
    (['estimate', 'vm1', '--to', 'nope', '--inventory', SAMPLE_INVENTORY],
     'unknown host "nope"'),
    (['estimate', 'vm1', '--to', 'cn-a', '--inventory', SAMPLE_INVENTORY],
     'already the instance\'s host'),
    (['estimate', 'vm1', '--inventory', SAMPLE_INVENTORY], '--to'),
    (['estimate', 'vm1', '--to', 'cn-b', '--max-downtime-ms', '-5',
      '--inventory', SAMPLE_INVENTORY], '--max-downtime-ms: -5 must be > 0'),
    (['estimate', 'vm1', '--to', 'cn-b', '--max-downtime-ms', 'soon',
      '--inventory', SAMPLE_INVENTORY], 'is not a whole number'),
    (['estimate', 'vm1', '--to', 'cn-b', '--bandwidth-cap-mibps', 'inf',
      '--inventory', SAMPLE_INVENTORY], 'must be a finite number > 0'),
    (['select', 'vm1', '-f', 'xml', '--inventory', SAMPLE_INVENTORY], 'invalid choice'),
    (['bogus'], 'unknown command "bogus"'),
    (['--config-file', '{conf}', 'select', 'vm1', '--inventory', SAMPLE_INVENTORY],
     'configuration: '),
    (['--rpc-timeout', 'abc', 'select', 'vm1'], 'invalid int value'),
]

# Through the real console script (a process each, so only a few); the
# whole list runs in-process below.
SCRIPT_ERRORS = [ERRORS[i] for i in (1, 6, 9, 13)]


def _assert_one_error_line(code, out, err, message):
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('kvmplace: error: ')
    assert message in lines[0]
    assert 'Traceback' not in err
    assert out == ''


@pytest.mark.parametrize('args,message', SCRIPT_ERRORS)
def test_script_errors_are_one_line_without_traceback(bad_files, args, message):
    proc = kvmplace(*[a.format(**bad_files) for a in args])
    _assert_one_error_line(proc.returncode, proc.stdout, proc.stderr, message)


@pytest.mark.parametrize('args,message', ERRORS)
def test_errors_are_one_line_without_traceback(capsys, bad_files, args, message):
    code = cmd.main([a.format(**bad_files) for a in args])
    out, err = capsys.readouterr()
    _assert_one_error_line(code, out, err, message)


def test_debug_adds_the_traceback(bad_files):
    proc = kvmplace('--debug', 'select', 'vm1', '--inventory', bad_files['malformed'])
    assert proc.returncode != 0
    assert 'Traceback (most recent call last)' in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith('kvmplace: error: hosts[0].memory_mib')


# --- in-process ----------------------------------------------------------------

def test_main_in_process_select_json(capsys):
    assert cmd.main(['select', 'vm2', '--inventory', SAMPLE_INVENTORY, '-f', 'json']) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert (data['instance'], data['source']) == ('vm2', 'cn-b')
    assert 'cn-b' in {r['host'] for r in data['rejected']}
    assert err == ''


def test_main_in_process_error(capsys):
    assert cmd.main(['estimate', 'vm1', '--to', 'ghost', '--inventory',
                     SAMPLE_INVENTORY]) != 0
    out, err = capsys.readouterr()
    assert err == 'kvmplace: error: unknown host "ghost"\n'
    assert out == ''


def test_keys_create_makes_a_private_pair_and_says_where_it_goes(capsys, tmp_path):
    keys = json_main(capsys, 'keys', 'create', '--role', 'host', '--name', 'lab-h1',
                     '--dir', str(tmp_path))
    assert keys['signer'] == 'host:lab-h1'
    assert 'host_keys_dir' in keys['public_key_goes_to']
    assert oct(os.stat(keys['private_key_file']).st_mode & 0o777) == '0o600'
    from kvmplace import msgauth
    msgauth.load_private_key(keys['private_key_file'])
    msgauth.load_public_key(keys['public_key_file'], 'host_keys_dir')
    code, _, err = run_main(capsys, 'keys', 'create', '--role', 'host', '--name', 'lab-h1',
                            '--dir', str(tmp_path))
    assert code == 1 and err.strip().endswith('lab-h1.key: exists; not overwritten')
    code, _, err = run_main(capsys, 'keys', 'create', '--role', 'operator',
                            '--dir', str(tmp_path))
    assert code == 1 and err.strip() == 'kvmplace: error: --name: required for --role operator'
