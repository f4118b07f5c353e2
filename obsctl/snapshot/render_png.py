"""Draw dashboards to PNG from real Prometheus range queries, for people without Grafana.

Each dashboard becomes one picture laid out like Grafana's grid: time series as lines with the
config's threshold lines dashed, stats as big numbers coloured by threshold or value mapping,
tables as the latest value per series and state timelines as coloured bands. The queries are
the dashboards' own, run through ``obsctl.snapshot.prometheus``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from obsctl.mixin.dashboards import Dashboard
from obsctl.snapshot.prometheus import (
    Prometheus,
    QueryError,
    Series,
    TimeRange,
    expand,
)

COLORS = {
    "green": "#56a64b",
    "red": "#e02f44",
    "orange": "#ff9830",
    "yellow": "#fade2a",
    "blue": "#3274d9",
    "text": "#8e8e8e",
}
PALETTE = (
    "#7eb26d",
    "#eab839",
    "#6ed0e0",
    "#ef843c",
    "#e24d42",
    "#1f78c1",
    "#ba43a9",
    "#705da0",
    "#508642",
    "#cca300",
)
GRID_COLUMN_INCHES = 0.8
GRID_ROW_INCHES = 0.34
_TICKS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass
class PanelResult:
    """What was drawn for one panel."""

    title: str
    kind: str
    series: int = 0
    thresholds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    quiet: bool = False


@dataclass
class BoardResult:
    """What was drawn for one dashboard, and where."""

    key: str
    path: Path
    panels: list[PanelResult]

    @property
    def errors(self) -> list[str]:
        """Every query error, with its panel."""
        return [f"{p.title}: {e}" for p in self.panels for e in p.errors]

    @property
    def empty(self) -> list[str]:
        """Panels without data (quiet panels are expected to be empty on a healthy system)."""
        return [p.title for p in self.panels if not p.series and not p.errors]


def format_value(value: float, unit: str) -> str:
    """A value as Grafana would show it in a unit (the units the dashboards use)."""
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.3g}%" if abs(value) < 0.1 else f"{value * 100:.1f}%"
    if unit == "s":
        return _seconds(value)
    if unit == "bytes":
        return _scaled(value, 1024, ("B", "KiB", "MiB", "GiB", "TiB"))
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    if unit in ("reqps", "ops", "short"):
        return _scaled(value, 1000, ("", " K", " Mil", " Bil")) + suffix
    return f"{value:.4g}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 0.001:
        return f"{value * 1e6:.3g} µs"
    if magnitude < 1:
        return f"{value * 1000:.3g} ms"
    if magnitude < 120:
        return f"{value:.3g} s"
    if magnitude < 7200:
        return f"{value / 60:.3g} min"
    return f"{value / 3600:.3g} h"


def _scaled(value: float, base: int, names: Sequence[str]) -> str:
    index = 0
    while abs(value) >= base and index < len(names) - 1:
        value /= base
        index += 1
    text = f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text}{' ' if names[index] and not names[index].startswith(' ') else ''}{names[index]}"


def legend(template: str, labels: Mapping[str, str]) -> str:
    """A series name from a Grafana legend format (`{{route}}`), or its labels."""
    if template:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()
    shown = {k: v for k, v in labels.items() if k not in ("job", "instance", "service")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"


def _color(name: str) -> str:
    return COLORS.get(name, name)


def _threshold_color(value: float, steps: Sequence[Mapping[str, Any]]) -> str:
    chosen = "text"
    for step in steps:
        limit = step.get("value")
        if limit is None or value >= float(limit):
            chosen = str(step.get("color", "text"))
    return _color(chosen)


def _mapping(value: float, mappings: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(text, colour) of the first value or range mapping that matches value."""
    for mapping in mappings:
        options = mapping.get("options", {})
        if mapping.get("type") == "value":
            key = str(int(value)) if value == int(value) else str(value)
            if key in options:
                result = options[key]
                return str(result.get("text", key)), _color(str(result.get("color", "text")))
        if mapping.get("type") == "range":
            low, high = options.get("from"), options.get("to")
            if (low is None or value >= low) and (high is None or value <= high):
                result = options.get("result", {})
                text = result.get("text")
                return (str(text) if text else "", _color(str(result.get("color", "text"))))
    return None


def _positions(document: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    items = []
    bottom = 0
    for panel in document.get("panels", []):
        items.append(panel)
        grid = panel.get("gridPos", {})
        bottom = max(bottom, grid.get("y", 0) + grid.get("h", 1))
        for child in panel.get("panels", []):
            items.append(child)
            grid = child.get("gridPos", {})
            bottom = max(bottom, grid.get("y", 0) + grid.get("h", 1))
    return items, bottom


def render_dashboard(
    board: Dashboard,
    prometheus: Prometheus,
    window: TimeRange,
    out_dir: Path,
    values: Mapping[str, str] | None = None,
) -> BoardResult:
    """Query every panel of one dashboard over window and write `<out_dir>/<key>.png`."""
    document = board.json
    items, rows = _positions(document)
    header = 0.6
    width = 24 * GRID_COLUMN_INCHES
    height = rows * GRID_ROW_INCHES + header
    figure = Figure(figsize=(width, height), dpi=80, facecolor="#111217")
    start = datetime.fromtimestamp(window.start).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(window.end).strftime("%Y-%m-%d %H:%M")
    chosen = ", ".join(f"{k}={v}" for k, v in sorted((values or {}).items())) or "all"
    figure.text(
        0.01,
        1 - 0.3 / height,
        f"{document.get('title')}   {start} - {end}   step {window.step:g}s   variables: {chosen}",
        color="#d8d9da",
        fontsize=15,
        va="center",
    )
    results = []
    for panel in items:
        grid = panel.get("gridPos", {})
        left = grid.get("x", 0) * GRID_COLUMN_INCHES
        top = header + grid.get("y", 0) * GRID_ROW_INCHES
        cell_width = grid.get("w", 12) * GRID_COLUMN_INCHES
        cell_height = grid.get("h", 8) * GRID_ROW_INCHES
        if panel.get("type") == "row":
            figure.text(
                (left + 0.1) / width,
                1 - (top + cell_height / 2) / height,
                str(panel.get("title")),
                color="#d8d9da",
                fontsize=13,
                weight="bold",
                va="center",
            )
            continue
        # Inches kept free inside the cell: tick labels on the left and bottom, the title on top.
        pad_left, pad_bottom = (0.85, 0.35) if panel.get("type") == "timeseries" else (0.1, 0.1)
        if panel.get("type") == "state-timeline":
            pad_left, pad_bottom = 1.4, 0.35
        pad_top, pad_right = 0.3, 0.1
        axes = figure.add_axes(
            (
                (left + pad_left) / width,
                1 - (top + cell_height - pad_bottom) / height,
                (cell_width - pad_left - pad_right) / width,
                (cell_height - pad_top - pad_bottom) / height,
            )
        )
        figure.text(
            (left + 0.1) / width,
            1 - (top + 0.15) / height,
            str(panel.get("title")),
            color="#d8d9da",
            fontsize=10,
            va="center",
        )
        results.append(_draw_panel(panel, axes, prometheus, window, values, board.quiet))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{board.key}.png"
    figure.savefig(path, facecolor=figure.get_facecolor())
    return BoardResult(board.key, path, results)


def _draw_panel(
    panel: Mapping[str, Any],
    axes: Axes,
    prometheus: Prometheus,
    window: TimeRange,
    values: Mapping[str, str] | None,
    quiet: Mapping[str, object],
) -> PanelResult:
    title = str(panel.get("title"))
    kind = str(panel.get("type"))
    result = PanelResult(title, kind, quiet=title in quiet)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = str(defaults.get("unit", "short"))
    steps = defaults.get("thresholds", {}).get("steps", [])
    mappings = defaults.get("mappings", [])
    drawn: list[tuple[str, Series]] = []
    for target in panel.get("targets", []):
        expr = expand(str(target.get("expr", "")), window.rate_interval, values)
        try:
            found = prometheus.query_range(expr, window)
        except QueryError as exc:
            result.errors.append(str(exc))
            continue
        drawn += [(legend(str(target.get("legendFormat", "")), s.labels), s) for s in found]
    if kind == "table":
        # A table shows the latest evaluation, like Grafana's instant query: series that ended
        # earlier in the range (a failure that is over) are not in it.
        recent = window.end - 1.5 * window.step
        drawn = [(name, s) for name, s in drawn if s.times and s.times[-1] >= recent]
    result.series = len(drawn)
    _style(axes)
    if result.errors:
        _message(axes, "query error:\n" + "\n".join(result.errors)[:300], COLORS["red"])
    elif not drawn:
        _message(axes, "No data" + (" (expected while healthy)" if result.quiet else ""), "#8e8e8e")
    elif kind == "timeseries":
        result.thresholds = _draw_timeseries(axes, drawn, window, unit, defaults, steps)
    elif kind == "stat":
        _draw_stat(axes, drawn, unit, steps, mappings)
    elif kind == "table":
        _draw_table(axes, drawn, unit, panel)
    elif kind == "state-timeline":
        _draw_timeline(axes, drawn, window, mappings)
    else:
        _message(axes, f"panel type {kind} is not drawn", "#8e8e8e")
    return result


def _style(axes: Axes) -> None:
    axes.set_facecolor("#181b1f")
    for spine in axes.spines.values():
        spine.set_color("#2c3235")
    axes.tick_params(colors="#9fa7b3", labelsize=8)


def _message(axes: Axes, text: str, color: str) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    axes.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        color=color,
        fontsize=10,
        wrap=True,
        transform=axes.transAxes,
    )


def _draw_timeseries(
    axes: Axes,
    drawn: Sequence[tuple[str, Series]],
    window: TimeRange,
    unit: str,
    defaults: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]],
) -> list[float]:
    for index, (name, series) in enumerate(drawn):
        axes.plot(
            series.times,
            series.values,
            label=name,
            linewidth=1.2,
            color=PALETTE[index % len(PALETTE)],
        )
    lines = []
    style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style != "off":
        for step in steps:
            if step.get("value") is not None:
                value = float(step["value"])
                axes.axhline(
                    value, color=_color(str(step.get("color"))), linestyle="--", linewidth=1.2
                )
                lines.append(value)
    if defaults.get("min") is not None:
        axes.set_ylim(bottom=float(defaults["min"]))
    if defaults.get("max") is not None:
        axes.set_ylim(top=float(defaults["max"]) * 1.02)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    _time_axis(axes, window)
    axes.grid(color="#2c3235", linewidth=0.6)
    shown = min(len(drawn), 12)
    axes.legend(
        [line for line in axes.get_lines()[:shown]],
        [name for name, _ in drawn[:shown]],
        loc="upper left",
        fontsize=7,
        ncol=3 if shown > 4 else 1,
        framealpha=0.5,
        facecolor="#181b1f",
        labelcolor="#d8d9da",
        edgecolor="#2c3235",
    )
    return lines


def _time_axis(axes: Axes, window: TimeRange) -> None:
    """The window as the x axis, ticked every round number of minutes or hours."""
    axes.set_xlim(window.start, window.end)
    span = window.end - window.start
    every = next((t for t in _TICKS if span / t <= 7), _TICKS[-1])
    first = math.ceil(window.start / every) * every
    ticks = [first + i * every for i in range(int((window.end - first) // every) + 1)]
    label = "%m-%d %H:%M" if span > 86400 else "%H:%M"
    axes.set_xticks(ticks, [datetime.fromtimestamp(t).strftime(label) for t in ticks])


def _draw_stat(
    axes: Axes,
    drawn: Sequence[tuple[str, Series]],
    unit: str,
    steps: Sequence[Mapping[str, Any]],
    mappings: Sequence[Mapping[str, Any]],
) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    count = len(drawn)
    for index, (name, series) in enumerate(drawn):
        value = series.last()
        mapped = _mapping(value, mappings) if not math.isnan(value) else None
        text = format_value(value, unit)
        color = _threshold_color(value, steps) if not math.isnan(value) else COLORS["text"]
        if mapped is not None:
            text = mapped[0] or text
            color = mapped[1]
        left = index / count
        axes.add_patch(_rectangle(left + 0.005, 0.02, 1 / count - 0.01, 0.96, color, axes))
        size = 22 if count == 1 else max(8, 18 - count)
        axes.text(
            left + 0.5 / count,
            0.5,
            text,
            ha="center",
            va="center",
            color="white",
            fontsize=size,
            weight="bold",
            transform=axes.transAxes,
        )
        if count > 1 or name != "value":
            axes.text(
                left + 0.5 / count,
                0.12,
                name,
                ha="center",
                va="center",
                color="white",
                fontsize=7,
                transform=axes.transAxes,
            )


def _rectangle(
    left: float, bottom: float, width: float, height: float, color: str, axes: Axes
) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(
        (left, bottom), width, height, facecolor=color, alpha=0.85, transform=axes.transAxes
    )


def _draw_table(
    axes: Axes, drawn: Sequence[tuple[str, Series]], unit: str, panel: Mapping[str, Any]
) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    hidden: set[str] = set()
    for transformation in panel.get("transformations", []):
        hidden |= set(transformation.get("options", {}).get("excludeByName", {}))
    columns = sorted({k for _, s in drawn for k in s.labels} - hidden)
    value = [] if "Value" in hidden else ["Value"]
    rows = [
        [s.labels.get(c, "") for c in columns] + [format_value(s.last(), unit) for _ in value]
        for _, s in drawn[:12]
    ]
    table = axes.table(
        cellText=rows, colLabels=[*columns, *value], loc="upper center", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.set_facecolor("#181b1f")
        cell.set_edgecolor("#2c3235")
        cell.get_text().set_color("#d8d9da")


def _draw_timeline(
    axes: Axes,
    drawn: Sequence[tuple[str, Series]],
    window: TimeRange,
    mappings: Sequence[Mapping[str, Any]],
) -> None:
    names = []
    for row, (name, series) in enumerate(drawn):
        names.append(name)
        for moment, value in zip(series.times, series.values, strict=True):
            mapped = _mapping(value, mappings) if not math.isnan(value) else None
            color = mapped[1] if mapped else COLORS["text"]
            axes.broken_barh([(moment, window.step)], (row + 0.1, 0.8), facecolors=color)
    axes.set_ylim(0, len(drawn))
    axes.set_yticks([i + 0.5 for i in range(len(drawn))], names, fontsize=7)
    _time_axis(axes, window)


def render_dashboards_png(
    dashboards: Iterable[Dashboard],
    prometheus_url: str,
    window: TimeRange,
    out_dir: Path,
    values: Mapping[str, str] | None = None,
) -> list[BoardResult]:
    """Render every dashboard to `<out_dir>/<key>.png`."""
    with Prometheus(prometheus_url) as prometheus:
        return [render_dashboard(b, prometheus, window, out_dir, values) for b in dashboards]
