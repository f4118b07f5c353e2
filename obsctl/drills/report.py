"""Turn a drill journal into a readable summary and a timeline picture."""

from __future__ import annotations

import time
from pathlib import Path

from obsctl.drills.journal import Journal, Outcome

# Order and wording of the key moments on the timeline.
MOMENTS = [
    ("last_heartbeat", "last Watchdog"),
    ("fault", "fault injected"),
    ("pending", "alert pending"),
    ("firing", "alert firing"),
    ("alertmanager", "in Alertmanager"),
    ("dingtalk", "DingTalk message"),
    ("email", "email"),
    ("restore", "restored"),
    ("resolved", "alert resolved"),
    ("dingtalk_resolved", "DingTalk resolved"),
    ("email_resolved", "email resolved"),
]


def summary(journal: Journal) -> str:
    """A plain-text report: verdict, key timings, every step."""
    start = journal.started_at
    variant = f" ({journal.variant})" if journal.variant else ""
    lines = [
        f"drill {journal.scenario}{variant}: {journal.status.upper()}"
        + (" (deviated)" if journal.deviated and journal.status != "failed" else ""),
        f"id {journal.drill_id}, {journal.target or 'local stack ' + journal.stack_dir}",
        f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start))}, "
        f"took {(journal.ended_at or start) - start:.1f}s",
        "",
        "key timings:",
    ]
    timings = journal.timings()
    if not timings:
        lines.append("  (none: the fault was never injected)")
    lines += [
        f"  {name.replace('_', ' '):<32} {seconds:7.1f}s" for name, seconds in timings.items()
    ]
    lines += ["", "steps:"]
    for step in journal.steps:
        mark = "ok " if step.outcome is Outcome.OK else "FAIL"
        offset = step.started_at - start
        lines.append(f"  {mark} +{offset:6.1f}s {step.duration_seconds or 0:6.1f}s  {step.name}")
        if step.outcome is not Outcome.OK and step.error:
            lines.append(f"       {step.error}")
    if journal.steady_state_after and journal.steady_state_after != {"all": "ok"}:
        lines += ["", f"steady state after: {journal.steady_state_after}"]
    return "\n".join(lines) + "\n"


def timeline_png(journal: Journal, path: Path) -> Path:
    """Draw the steps as bars and the key moments as lines, seconds from the start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = journal.started_at
    steps = journal.steps
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(steps) + 2.2))
    for row, step in enumerate(steps):
        colour = "#2e7d32" if step.outcome is Outcome.OK else "#c62828"
        width = max(step.duration_seconds or 0.0, 0.2)
        ax.barh(row, width, left=step.started_at - start, color=colour, height=0.6)
    ax.set_yticks(range(len(steps)), [s.name[:60] for s in steps], fontsize=8)
    ax.invert_yaxis()
    for key, label in MOMENTS:
        if key in journal.moments:
            x = journal.moments[key] - start
            ax.axvline(x, color="#555", linestyle=":", linewidth=0.8)
            ax.text(x, -0.8, label, rotation=45, fontsize=7, ha="left", va="bottom")
    ax.set_xlabel("seconds since the drill started")
    title = f"obsctl drill {journal.scenario}: {journal.status}"
    timings = journal.timings()
    if "fault_to_dingtalk" in timings:
        title += f" - fault to DingTalk {timings['fault_to_dingtalk']:.0f}s"
    ax.set_title(title, fontsize=10, pad=48)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
