"""The alert report drawn to PNG: episodes per alert, noise apart, with MTTA and MTTR beside.

For the weekly review, where people look at a picture rather than a table: one bar per alert,
its episodes split into noise candidates, resolved and still firing, and the figures of the
text report next to it. Needs the `render` extra (matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obsctl.alert_history import History, span

# (key of the row, legend, colour): the parts of an alert's episodes, stacked in this order.
PARTS = (
    ("real", "resolved", "#3274d9"),
    ("noise_candidates", "noise candidates (resolved by themselves, unclaimed)", "#ff9830"),
    ("still_firing", "still firing", "#e02f44"),
)
COLUMNS = ("FIRING", "MEDIAN", "CLAIMED", "MTTA", "MTTR")


def history_png(history: History, path: Path) -> Path:
    """Draw `history` to `path` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = history.as_dict()
    rows = sorted(data["alerts"], key=lambda r: (-r["fired"], r["alertname"]))
    height = 0.42 * max(len(rows), 1) + 2.4
    fig, (bars, table) = plt.subplots(
        1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [3, 2]}, sharey=True
    )
    left = [0] * len(rows)
    for key, label, colour in PARTS:
        widths = [_part(row, key) for row in rows]
        bars.barh(range(len(rows)), widths, left=left, color=colour, label=label, height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    bars.set_yticks(range(len(rows)), [r["alertname"] for r in rows], fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel("firing episodes")
    bars.xaxis.get_major_locator().set_params(integer=True)
    if rows:
        bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
                    frameon=False)  # fmt: skip
    else:
        bars.text(0.5, 0.5, "no alert fired in this window", ha="center", va="center",
                  transform=bars.transAxes)  # fmt: skip
    table.set_axis_off()
    for column, name in enumerate(COLUMNS):
        x = (column + 0.5) / len(COLUMNS)
        table.text(x, -0.55, name, ha="center", fontsize=8, fontweight="bold",
                   transform=table.get_yaxis_transform())  # fmt: skip
        for number, row in enumerate(rows):
            table.text(x, number, _cell(row, name), ha="center", va="center", fontsize=8,
                       transform=table.get_yaxis_transform())  # fmt: skip
    ratio = data["noise_ratio"]
    noise = f" ({ratio:.1%})" if ratio is not None else ""
    fig.suptitle(
        f"obsctl alerts {data['since']} to {data['until']} UTC: {data['fired']} real episodes,"
        f" {data['noise_candidates']} noise candidates{noise},"
        f" {len(data['drills'])} drill episodes kept apart",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _part(row: dict[str, Any], key: str) -> int:
    fired, noise, ongoing = (int(row[k]) for k in ("fired", "noise_candidates", "still_firing"))
    parts = {"real": fired - noise - ongoing, "noise_candidates": noise, "still_firing": ongoing}
    return parts[key]


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "CLAIMED":
        return f"{row['claimed']}/{row['fired']}"
    key = {"FIRING": "firing_seconds", "MEDIAN": "median_firing_seconds",
           "MTTA": "mtta_seconds", "MTTR": "mttr_seconds"}[column]  # fmt: skip
    value = row[key]
    return span(float(value) if isinstance(value, int | float) else None)
