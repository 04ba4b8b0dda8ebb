"""Live progress bars for a migration or a drain (on stderr).

rich draws them; every name in them is made safe (render.safe) and its
markup escaped, as a guest named ``[/]`` would otherwise break the bar.
"""
from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from kvmplace.cli import client, render
from kvmplace.status import FINAL_MIGRATION_STATUSES as FINAL
from kvmplace.status import DrainStatus, MigrationStatus


def shown(value) -> str:
    """Text from user data, fit for a rich template."""
    return escape(render.safe('' if value is None else value))


def follow(app, api, migration_id: str, show_progress: bool) -> dict:
    """Poll the record until it ends, drawing phase, remaining, MiB/s, ETA."""
    interval = 0.5
    if not show_progress:
        while True:
            rec = client.call(api.get_migration, migration_id)
            if rec['status'] in FINAL:
                return rec
            time.sleep(interval)
    with Progress(TextColumn('[bold]{task.fields[instance]}'), BarColumn(),
                  TextColumn('{task.percentage:>3.0f}%'),
                  TextColumn('{task.fields[phase]}'),
                  TextColumn('{task.fields[remaining]}'),
                  TextColumn('{task.fields[rate]}'),
                  TextColumn('ETA {task.fields[eta]}'), TimeElapsedColumn(),
                  console=Console(file=app.stderr), transient=False) as bar:
        task = bar.add_task('migrate', total=100, instance=shown(migration_id[:8]),
                            phase=MigrationStatus.QUEUED.value, remaining='', rate='', eta='-')
        while True:
            rec = client.call(api.get_migration, migration_id)
            prog = rec.get('progress') or {}
            total = prog.get('total_mib') or 0
            remaining = prog.get('remaining_mib')
            pct = 100.0 * (1 - remaining / total) if total and remaining is not None else 0.0
            migrating = rec['status'] == MigrationStatus.MIGRATING
            phase = prog.get('phase') if migrating else rec['status']
            eta = prog.get('eta_seconds')
            bar.update(task, completed=100 if rec['status'] == MigrationStatus.COMPLETED else pct,
                       instance=f"{shown(rec['instance'])} -> {shown(rec.get('dest') or '?')}",
                       phase=shown(phase or rec['status']),
                       remaining=f'{remaining:.0f} MiB left' if remaining is not None else '',
                       rate=f"{prog.get('mibps') or 0:.0f} MiB/s" if prog else '',
                       eta=render.fmt_seconds(eta) if eta is not None else '-')
            if rec['status'] in FINAL:
                return rec
            time.sleep(interval)


def follow_drain(app, api, drain_id: str, show: bool) -> dict:
    """Per-guest progress bars and the drain's overall ETA, until it ends."""
    if not show:
        while True:
            rec = client.call(api.get_drain, drain_id)
            if rec['status'] != DrainStatus.RUNNING:
                return rec
            time.sleep(1.0)
    with Progress(TextColumn('[bold]{task.description}'), BarColumn(),
                  TextColumn('{task.percentage:>3.0f}%'), TextColumn('{task.fields[info]}'),
                  console=Console(file=app.stderr)) as bar:
        overall = bar.add_task('drain', total=None, info='planning')
        tasks: dict[str, TaskID] = {}
        start = time.monotonic()
        while True:
            rec = client.call(api.get_drain, drain_id)
            migs = rec.get('migrations') or []
            for m in migs:
                key = m['id']
                label = f"{shown(m['instance'])} -> {shown(m.get('dest') or '?')}"
                if key not in tasks:
                    tasks[key] = bar.add_task(label, total=100, info=shown(m['status']))
                prog = m.get('progress') or {}
                total, left = prog.get('total_mib'), prog.get('remaining_mib')
                pct = 100.0 if m['status'] == MigrationStatus.COMPLETED else (
                    100.0 * (1 - left / total) if total and left is not None else 0.0)
                info = m['status'] if m['status'] != MigrationStatus.MIGRATING else (
                    f"{prog.get('phase', '')} {prog.get('mibps') or 0:.0f} MiB/s "
                    f"ETA {render.fmt_seconds(prog['eta_seconds'])}"
                    if prog.get('eta_seconds') is not None
                    else prog.get('phase', MigrationStatus.MIGRATING.value))
                bar.update(tasks[key], completed=pct, info=shown(info), description=label)
            plan = rec.get('plan') or {}
            done = sum(1 for m in migs if m['status'] == MigrationStatus.COMPLETED)
            end = plan.get('predicted_end_seconds')
            if plan.get('predicted_end_at') is not None:
                # Counted down between re-plans (made only on events); the
                # conductor and this client read the same clock in a lab,
                # NTP's in a cloud.
                end = max(0.0, float(plan['predicted_end_at']) - time.time())
            if rec['status'] != DrainStatus.RUNNING:
                end = None              # ended: no ETA left to show
            # Counted from the records (the plan's own list is only as fresh
            # as its last re-plan, so it still said "2 running" at the end).
            running = sum(1 for m in migs
                          if m['status'] not in FINAL and m['status'] != MigrationStatus.QUEUED)
            planned = len((plan.get('initial') or {}).get('migrations') or []) or len(migs)
            bar.update(overall, total=max(planned, len(migs), 1), completed=done,
                       info=f"{done} moved, {running} running"
                       + (f", overall ETA {render.fmt_seconds(end)}" if end is not None else '')
                       + f", {time.monotonic() - start:.0f} s elapsed")
            if rec['status'] != DrainStatus.RUNNING:
                return rec
            time.sleep(1.0)
