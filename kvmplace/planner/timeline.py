"""Draw a plan as a timeline: one bar per migration, link usage below.

Operators would rather look at a timeline than read JSON: the bars show
what runs in parallel and why (each labelled with its bandwidth), the lower
panel shows each busy link's load against its capacity, so "never
oversubscribed" and "uplink kept full" can be seen at a glance.
"""
from __future__ import annotations

import os

from kvmplace.exception import InvalidInput, KvmplaceError

PLOT_EXTRA_HINT = ('drawing a plan (--output) needs matplotlib, which is optional: '
                   'pip install "kvmplace[plot]"')


def draw(plan: dict, path: str, title: str, capacities: dict | None = None) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in ('.svg', '.png'):
        raise InvalidInput('--output', f'must end in .svg or .png, not "{ext or path}"')
    # Imported here, not at the top: matplotlib is the ``plot`` extra, which
    # an agent or conductor host does not install.
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvmplaceError(PLOT_EXTRA_HINT) from None

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
                y, f"{m['instance']} -> {m['dest']}  {m['bandwidth_mibps']:.0f} MiB/s, "
                   f"{m['predicted_downtime_ms']:.0f} ms down",
                va='center', fontsize=8)
    ax.set_yticks(range(len(migrations)))
    ax.set_yticklabels([m['instance'] for m in migrations], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title)
    makespan = plan.get('predicted_makespan_seconds') or 0
    ax.axvline(makespan, color='red', linestyle='--', linewidth=1)
    ax.text(makespan, -0.6, f' makespan {makespan:.0f} s', color='red', fontsize=8)

    usage: dict[tuple, list] = {}
    for m in migrations:
        for link in m.get('links') or []:
            key = tuple(link)
            usage.setdefault(key, []).append((m['start_seconds'], m['bandwidth_mibps']))
            usage.setdefault(key, []).append((m['start_seconds'] + m['predicted_seconds'],
                                              -m['bandwidth_mibps']))
    busiest = sorted(usage, key=lambda k: -sum(d for _, d in usage[k] if d > 0))[:6]
    for link in busiest:
        events = sorted(usage[link])
        xs, ys, level = [0.0], [0.0], 0.0
        for t, delta in events:
            xs.append(t)
            ys.append(level)
            level += delta
            xs.append(t)
            ys.append(max(0.0, level))
        line, = ax2.plot(xs, ys, label=f'{link[0]}-{link[1]}')
        if capacities and link in capacities:
            ax2.axhline(capacities[link], color=line.get_color(), linestyle=':', linewidth=1)
    ax2.set_xlabel('seconds from start')
    ax2.set_ylabel('MiB/s on link')
    if busiest:
        ax2.legend(fontsize=7, loc='upper right')
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise InvalidInput('--output', f'cannot write {path}: {exc.strerror}') from None
    finally:
        plt.close(fig)
    return path
