"""The Nova driver's watcher logs an outage of Nova's API rate-limited.

Before, every failed poll (every 0.2 s by default) wrote a warning, so a
minute of Nova being away wrote hundreds of lines per migration. Uses the
fake clock only; no Nova is needed to count log lines.
"""
import logging

from kvmplace.conductor.drivers import nova
from tests.unit.conductor.fakes import FakeClock


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == nova.LOG.name]


def test_a_minute_of_failed_polls_logs_a_few_lines(caplog):
    caplog.set_level(logging.WARNING, logger=nova.LOG.name)
    clock = FakeClock()
    outage = nova._Outage('abcd1234', clock)
    for _ in range(300):  # 60 s of polls every 0.2 s
        outage.failed('Nova API unreachable')
        clock.sleep(0.2)
    outage.ended()
    lines = _lines(caplog)
    assert lines[0] == 'migration abcd1234: Nova API unreachable'
    still = [line for line in lines if 'still Nova API unreachable' in line]
    assert 1 <= len(still) <= 2, lines
    assert lines[-1].startswith('migration abcd1234: Nova answers again after 6')
    assert len(lines) <= 4


def test_a_new_reason_is_logged_at_once(caplog):
    caplog.set_level(logging.WARNING, logger=nova.LOG.name)
    clock = FakeClock()
    outage = nova._Outage('abcd1234', clock)
    outage.failed('Nova API unreachable')
    clock.sleep(0.2)
    outage.failed('HTTP 503 from Nova')
    assert _lines(caplog) == ['migration abcd1234: Nova API unreachable',
                              'migration abcd1234: HTTP 503 from Nova']


def test_no_outage_no_line(caplog):
    caplog.set_level(logging.WARNING, logger=nova.LOG.name)
    outage = nova._Outage('abcd1234', FakeClock())
    outage.ended()
    assert _lines(caplog) == []
