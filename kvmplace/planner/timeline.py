"""Draw a plan as a timeline: one bar per migration, link usage below.

Operators would rather look at a timeline than read JSON: the bars show
what runs in parallel and why (each labelled with its bandwidth), the lower
panel shows each busy link's load against its capacity, so "never
oversubscribed" and "uplink kept full" can be seen at a glance.

The link panel draws the rates the schedule really uses: each migration's
``bandwidth_steps`` (it starts on what room is left and is topped up when
another ends), not its average rate - an average drawn over the whole run
shows a link loaded above its capacity at the start (725 MiB/s on a
715 MiB/s uplink in the sample's drain of cn-b) when the plan never was.

Names come from inventories: they are drawn as text, never as
matplotlib mathtext (``$...$``) or control characters.
"""
from __future__ import annotations

import os
from typing import Any

from kvmplace.exception import InvalidInput, KvmplaceError

PLOT_EXTRA_HINT = ('drawing a plan (--output) needs matplotlib, which is optional: '
                   'pip install "kvmplace[plot]"')


def rate_steps(migration: dict) -> list[tuple[float, float]]:
    """(time, MiB/s) from the migration's start; the rate holds until the
    next step or the migration's end."""
    steps = migration.get('bandwidth_steps') or []
    if not steps:
        return [(float(migration['start_seconds']), float(migration['bandwidth_mibps']))]
    return [(float(t), float(r)) for t, r in steps]


def link_series(plan: dict) -> dict[tuple, tuple[list[float], list[float]]]:
    """Per link, the step function of MiB/s in use as (times, levels):
    the level ``levels[i]`` holds from ``times[i]`` to ``times[i + 1]``.

    Changes at the same instant (one migration ends, another is topped up
    with its room) are applied together: drawn one after the other they
    would show a spike the plan does not have.
    """
    deltas: dict[tuple, dict[float, float]] = {}
    for m in plan.get('migrations') or []:
        end = round(float(m['start_seconds']) + float(m['predicted_seconds']), 3)
        changes: list[tuple[float, float]] = []
        level = 0.0
        for t, rate in rate_steps(m):
            changes.append((round(t, 3), rate - level))
            level = rate
        changes.append((end, -level))
        for link in m.get('links') or []:
            per_time = deltas.setdefault(tuple(link), {})
            for t, d in changes:
                per_time[t] = per_time.get(t, 0.0) + d
    series = {}
    for link, per_time in deltas.items():
        times, levels, level = [0.0], [0.0], 0.0
        for t in sorted(per_time):
            level = max(0.0, round(level + per_time[t], 6))
            if times[-1] == t:
                levels[-1] = level
            else:
                times.append(t)
                levels.append(level)
        series[link] = (times, levels)
    return series


def text(value: Any) -> str:
    """A name fit for a matplotlib label: control characters escaped,
    ``$`` not taken as the start of mathtext."""
    shown = str(value)
    shown = ''.join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    return shown.replace('$', r'\$')


def _pyplot():
    """matplotlib's pyplot, imported here, not at the top: matplotlib is the
    ``plot`` extra, which an agent or conductor host does not install."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvmplaceError(PLOT_EXTRA_HINT) from None
    return plt


def draw(plan: dict, path: str, title: str, capacities: dict | None = None) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in ('.svg', '.png'):
        raise InvalidInput('--output', f'must end in .svg or .png, not "{ext or path}"')
    plt = _pyplot()
    fig = figure(plan, title, capacities)
    try:
        fig.savefig(path)
    except OSError as exc:
        raise InvalidInput('--output', f'cannot write {path}: {exc.strerror}') from None
    finally:
        plt.close(fig)
    return path


def figure(plan: dict, title: str, capacities: dict | None = None):
    """The plan's figure (bars above, link panel below); the caller saves
    and closes it."""
    plt = _pyplot()

    migrations = plan.get('migrations') or []
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 2.0 + 0.38 * max(4, len(migrations))),
                                  gridspec_kw={'height_ratios': [max(2, len(migrations)), 3]},
                                  sharex=True)
    dests = sorted({m['dest'] for m in migrations})
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(dests)}
    for y, m in enumerate(migrations):
        ax.barh(y, m['predicted_seconds'], left=m['start_seconds'], color=colours[m['dest']],
                edgecolor='black', linewidth=0.5)
        ax.text(m['start_seconds'] + 0.01 * max(1.0, plan.get('predicted_makespan_seconds', 1)),
                y, f"{text(m['instance'])} -> {text(m['dest'])}  "
                   f"{'avg ' if len(rate_steps(m)) > 1 else ''}"
                   f"{m['bandwidth_mibps']:.0f} MiB/s, "
                   f"{m['predicted_downtime_ms']:.0f} ms down",
                va='center', fontsize=8)
    ax.set_yticks(range(len(migrations)))
    ax.set_yticklabels([text(m['instance']) for m in migrations], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(text(title))
    makespan = plan.get('predicted_makespan_seconds') or 0
    ax.axvline(makespan, color='red', linestyle='--', linewidth=1)
    ax.text(makespan, -0.6, f' makespan {makespan:.0f} s', color='red', fontsize=8)

    series = link_series(plan)
    busiest = sorted(series, key=lambda k: (-_area(series[k]), k))[:6]
    for link in busiest:
        times, levels = series[link]
        line, = ax2.step(times, levels, where='post', label=f'{text(link[0])}-{text(link[1])}')
        if capacities and link in capacities:
            ax2.axhline(capacities[link], color=line.get_color(), linestyle=':', linewidth=1)
    ax2.set_xlabel('seconds from start')
    ax2.set_ylabel('MiB/s on link')
    if busiest:
        ax2.legend(fontsize=7, loc='upper right')
    fig.tight_layout()
    return fig


def _area(series: tuple[list[float], list[float]]) -> float:
    """MiB moved over the link: how busy it is, to pick the links shown."""
    times, levels = series
    return sum(level * (t1 - t0) for t0, t1, level in zip(times, times[1:], levels))
