"""Fuzzing the ``kvmplace`` command line: whatever the argv, a clean exit.

The contract (ARCHITECTURE "CLI"): errors are a non-zero exit and exactly
one ``kvmplace: error: ...`` line on stderr, never a traceback (unless
``--debug``). Scripts rely on it, so it must hold for any argv, not only
the mistakes someone thought of.

For every subcommand, hypothesis builds argv from that command's own
options and arguments, mixed with hostile values (negative, huge, NaN,
empty, missing/unreadable/garbage files, random text), plus the global
options. Offline commands get ``--inventory`` with the sample inventory
(or a bad one); online commands run with no transport configured and must
fail cleanly too. Everything runs in-process through
``kvmplace.cmd.kvmplace.main`` (about 40 ms a run), in a scratch
directory so ``--output`` files land nowhere else.

Checked per run: the exit code is 0, 1 or 2; no ``Traceback``; on a
non-zero code stderr is exactly one line starting ``kvmplace: error: ``;
on success stderr carries no error line.
"""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from kvmplace.cmd import kvmplace as cmd
from tests.unit.conftest import SAMPLE_INVENTORY

#: FUZZ_EXAMPLES=2000 for a longer hunt than the default quick run.
SETTINGS = settings(max_examples=int(os.environ.get('FUZZ_EXAMPLES', 120)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

HOSTS = ['cn-a', 'cn-b', 'cn-c', 'cn-old', 'cn-maint', 'ghost', '']
GUESTS = ['vm1', 'vm2', 'db1', 'hot1', 'nope', '../etc/passwd', '']
NUMBERS = ['0', '-1', '1', '0.5', '1e309', 'inf', '-inf', 'nan', 'NaN', '99999999999999999999',
           '1_000', 'abc', '', ' ', '0x10', '1.0', '-0']

#: Placeholders replaced per test with paths in the scratch directory.
FILES = ['@sample', '@missing', '@broken', '@malformed', '@empty', '@binary', '@dir',
         '@yaml', '@huge']

text = st.text(alphabet=st.characters(blacklist_categories=('Cs',),
                                      blacklist_characters='\x00'), max_size=20)
values = st.sampled_from(HOSTS + GUESTS + NUMBERS + FILES) | text

POLICY = ['--max-downtime-ms', '--bandwidth-cap-mibps', '--auto-converge', '--post-copy']
COMMON = ['-f', '--format', '-h', '--help', '-c', '--sort-column']
FORMAT_VALUES = ['json', 'table', 'xml', '', 'yaml', 'csv', 'value', 'shell', 'host',
                 'weight']

#: subcommand words -> the options it knows (flags and options alike: the
#: fuzzer decides whether a value follows).
COMMANDS = {
    ('select',): ['--inventory', '--host', '--ignore-host', *POLICY],
    ('estimate',): ['--inventory', '--to', *POLICY],
    ('drain',): ['--inventory', '--dry-run', '--wait', '--output', *POLICY],
    ('rebalance',): ['--inventory', '--dry-run', '--wait', '--threshold', '--output', *POLICY],
    ('migrate',): ['--to', '--wait', *POLICY],
    ('migrations', 'list'): ['--status', '--instance', '--limit'],
    ('migrations', 'show'): [],
    ('migrations', 'abort'): ['--wait'],
    ('hosts', 'list'): [],
    ('hosts', 'show'): [],
    ('hosts', 'maintenance'): ['--reason'],
    ('drains', 'list'): ['--status'],
    ('drains', 'show'): [],
    ('doctor',): ['--timeout', '--libvirt-uri'],
    ('help',): [],
    ('complete',): ['--name', '--shell'],
}
#: Global options (before the subcommand). ``--debug`` and ``-v`` are left
#: out on purpose: they exist to print tracebacks and debug logs.
GLOBAL = [[], [], ['--rpc-timeout', '1'], ['--rpc-timeout', 'abc'], ['--rpc-timeout', '-5'],
          ['--config-file', '@missing'], ['--config-file', '@broken'],
          ['--config-file', '@empty'], ['-q'], ['--version']]


def _tokens(options: list[str]):
    """One argv fragment: an option with or without a value, or a value."""
    opts = options + COMMON
    option_with_value = st.tuples(st.sampled_from(opts), values | st.sampled_from(
        FORMAT_VALUES + ['on', 'off', 'active', 'completed', 'x.svg', 'x.png', 'x.txt',
                         'test:///default', 'bogus://'])).map(list)
    return st.lists(st.one_of(option_with_value,
                              st.sampled_from(opts).map(lambda o: [o]),
                              values.map(lambda v: [v])), max_size=6)


#: Near-valid tails, so that runs get past parsing into the scheduler and
#: the planners (the sample inventory's real guests and hosts).
OFFLINE_TAILS = [[], ['--inventory', '@sample'], ['--inventory', '@sample', '--dry-run'],
                 ['--inventory', '@sample', '-f', 'json'],
                 ['--inventory', '@sample', '--dry-run', '-f', 'json']]


def argv_for(words: tuple[str, ...]):
    options = COMMANDS[words]
    tails = OFFLINE_TAILS if '--inventory' in options else [[]]
    return st.tuples(st.sampled_from(GLOBAL), st.just(list(words)),
                     st.sampled_from(GUESTS + HOSTS + ['on', 'off', '1234abcd']).map(
                         lambda v: [v]) | st.just([]),
                     _tokens(options), st.sampled_from(tails)).map(
        lambda parts: (parts[0] + parts[1] + parts[2] +
                       [t for frag in parts[3] for t in frag] + parts[4]))


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch working directory with good and bad input files."""
    files = {
        '@sample': SAMPLE_INVENTORY,
        '@missing': str(tmp_path / 'missing.json'),
        '@dir': str(tmp_path),
    }
    for name, content in [('broken', '{"hosts": ['), ('empty', ''),
                          ('malformed', json.dumps({'hosts': [{'name': 'a', 'vcpus': 'x'}]})),
                          ('yaml', 'hosts:\n  - name: a\n    vcpus: [1, 2\n'),
                          ('huge', json.dumps({'hosts': [{'name': 'a', 'vcpus': 10 ** 400,
                                                          'memory_mib': 1}]}))]:
        path = tmp_path / f'{name}.json'
        path.write_text(content)
        files[f'@{name}'] = str(path)
    binary = tmp_path / 'binary.json'
    binary.write_bytes(b'\xff\xfe\x00garbage\x80')
    files['@binary'] = str(binary)
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    # No broker for the online commands, whatever the environment says.
    monkeypatch.delenv('OS_TRANSPORT_URL', raising=False)
    return files


def run_cli(capsys, files: dict, argv: list[str]) -> tuple[int, str, str]:
    argv = [files.get(a, a) for a in argv]
    code = cmd.main(argv)
    out, err = capsys.readouterr()
    if currently_in_test_context():
        event(f'exit {code}')       # shown by --hypothesis-show-statistics
    assert code in (0, 1, 2), (argv, code, err)
    assert 'Traceback' not in err and 'Traceback' not in out, (argv, err)
    if code == 1 and not err and 'doctor' in argv and ('kvmplace doctor' in out or
                                                        '"checks"' in out or
                                                        '\nchecks:\n' in out):
        # doctor's report (table, JSON or YAML): a failed check exits 1, on stdout
        return code, out, err
    if code != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith('kvmplace: error: '), (argv, code, err)
        assert lines[0].strip() != 'kvmplace: error:', (argv, err)
    else:
        assert 'kvmplace: error' not in err, (argv, err)
    return code, out, err


def _fuzz(words):
    @SETTINGS
    @given(argv=argv_for(words))
    def test(capsys, scratch, argv):
        run_cli(capsys, scratch, argv)
    test.__name__ = 'test_fuzz_' + '_'.join(words)
    return test


for _words in COMMANDS:
    globals()['test_fuzz_' + '_'.join(_words)] = _fuzz(_words)


@SETTINGS
@given(argv=st.lists(values | st.sampled_from(
    [w for words in COMMANDS for w in words] + ['--inventory', '-f', 'json']), max_size=6))
@example(argv=['migrations'])
@example(argv=['hosts', 'bogus'])
@example(argv=['select', 'vm1', '--inventory', '@sample', '--bandwidth-cap-mibps', '1e-300'])
@example(argv=['estimate', 'vm1', '--to', 'cn-b', '--inventory', '@sample',
               '--max-downtime-ms', '99999999999999999999'])
@example(argv=['rebalance', '--dry-run', '--inventory', '@sample', '--output', 'x.txt'])
@example(argv=['drain', 'cn-a', '--dry-run', '--inventory', '@huge'])
def test_fuzz_any_argv(capsys, scratch, argv):
    """Any token soup, including none at all."""
    if not argv:
        # No arguments at all prints the help and exits 2 (no error line).
        code = cmd.main([])
        out, err = capsys.readouterr()
        assert code == 2 and 'Commands:' in out and 'Traceback' not in err
        return
    run_cli(capsys, scratch, argv)


def test_online_commands_without_a_transport_fail_in_one_line(capsys, scratch):
    for argv in (['migrate', 'vm1'], ['migrations', 'list'], ['migrations', 'show', 'abcd'],
                 ['migrations', 'abort', 'abcd'], ['hosts', 'list'], ['hosts', 'show', 'x'],
                 ['hosts', 'maintenance', 'x', 'on'], ['drain', 'cn-a'],
                 ['drain', 'cn-a', '--dry-run'], ['rebalance', '--dry-run'],
                 ['select', 'vm1'], ['estimate', 'vm1', '--to', 'cn-b']):
        code, out, err = run_cli(capsys, scratch, argv)
        assert code == 1, (argv, err)
        assert 'transport_url' in err, (argv, err)


def test_outputs_stay_in_the_scratch_directory(capsys, scratch):
    run_cli(capsys, scratch, ['drain', 'cn-a', '--dry-run', '--inventory', '@sample',
                              '--output', 'plan.svg', '-f', 'json'])
    assert os.path.exists('plan.svg')


def test_doctor_report_in_yaml_with_failed_checks_is_not_an_error(capsys, scratch):
    """Found by test_fuzz_doctor: a failed check exits 1 with the report on
    stdout in every format (here no config, database or broker)."""
    code, out, err = run_cli(capsys, scratch, ['doctor', '-f', 'yaml'])
    assert code == 1 and not err and out.startswith('ok: false\nchecks:\n')
