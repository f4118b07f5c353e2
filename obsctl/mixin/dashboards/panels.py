"""Shared pieces of every dashboard: the datasource variable, annotations, links and panels.

Dashboards are built with the Grafana Foundation SDK (builders for Grafana 11.6's schema); this
module wraps the few panel shapes the dashboards use so that every panel gets the datasource
variable, a unit, stable ids and refIds, and threshold lines taken from the mixin config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import statetimeline as timeline_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from obsctl.metric_names import ProbeMetric
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.promql import series

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
GRAFANA_DATASOURCE = dash_m.DataSourceRef(type_val="grafana", uid="-- Grafana --")
RATE = "$__rate_interval"
TAG = "obsctl"
# The Prometheus ALERTS series of firing alerts; obsctl's alerts carry severity and team.
ALERTS_EXPR = 'ALERTS{alertstate="firing"}'
# Keys Grafana's Prometheus annotations read from the annotation itself. The dashboard schema
# leaves AnnotationQuery open for them ("datasources spread their query into the base object"),
# but the SDK's model only knows `expr`, so they are added after the SDK has built the JSON.
ANNOTATION_EXTRAS: dict[str, object] = {
    "step": "30s",
    "titleFormat": "{{alertname}}",
    "tagKeys": "severity,team",
    "textFormat": "{{alertname}} ({{severity}}, team {{team}})",
    "useValueForTime": False,
}

GREEN = "green"
RED = "red"
ORANGE = "orange"
GREY = "text"


class Fault(StrEnum):
    """A fault that fills a panel that is rightly empty while everything is healthy."""

    PROVIDER_TIMEOUT = "provider_timeout"
    QUEUE_PAUSED = "queue_paused"
    CONFIG_CACHE_MISS_STORM = "config_cache_miss_storm"  # every config lookup loads from MySQL


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and the legend of its series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Line:
    """A threshold from the mixin config: red above it (`above`) or red below it."""

    value: float
    above: bool = True

    def steps(self) -> list[dash_m.Threshold]:
        """Grafana threshold steps: the base colour, then the colour past the line."""
        if self.above:
            return [dash_m.Threshold(None, GREEN), dash_m.Threshold(self.value, RED)]
        return [dash_m.Threshold(None, RED), dash_m.Threshold(self.value, GREEN)]


@dataclass(frozen=True)
class Mapping:
    """A value shown as text and colour (for status encodings) instead of a number."""

    value: int
    text: str
    color: str


# Dependency status as encoded by `status_expr`: 0 ok, 1 degraded, 2 down, 3 unknown.
STATUS_MAPPINGS = (
    Mapping(0, "OK", GREEN),
    Mapping(1, "DEGRADED", ORANGE),
    Mapping(2, "DOWN", RED),
    Mapping(3, "UNKNOWN", GREY),
)


def status_expr(selector: str) -> str:
    """Each probe's status as one number (see STATUS_MAPPINGS) from obsctl_probe_status."""

    def of(status: str) -> str:
        metric = series(ProbeMetric.STATUS, selector, f'status="{status}"')
        return f"sum without (status) ({metric})"

    return f"{of('degraded')} + 2 * {of('down')} + 3 * {of('unknown')}"


def _value_mappings(mappings: Sequence[Mapping]) -> list[dash_m.ValueMapping]:
    options = {
        str(m.value): dash_m.ValueMappingResult(text=m.text, color=m.color, index=i)
        for i, m in enumerate(mappings)
    }
    return [dash_m.ValueMap(options=options)]


def _count_mappings(label_zero: str, label_some: str) -> list[dash_m.ValueMapping]:
    # A count that is fine at 0 and bad at 1 or more; a mapping, so no threshold literal is needed.
    return [
        dash_m.ValueMap(options={"0": dash_m.ValueMappingResult(text=label_zero, color=GREEN)}),
        dash_m.RangeMap(
            options=dash_m.DashboardRangeMapOptions(
                from_val=1, to=1e9, result=dash_m.ValueMappingResult(color=RED)
            )
        ),
    ]


@dataclass
class Board:
    """One dashboard under construction: its key, builder, the panel ids and the quiet panels."""

    config: MixinConfig
    key: str
    title: str
    description: str
    variables: Sequence[dash_b.QueryVariable] = ()
    quiet: dict[str, Fault] = field(default_factory=dict)
    _builder: dash_b.Dashboard = field(init=False)
    _next_id: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        uid = self.config.links.dashboard_uids[self.key]
        self._builder = (
            dash_b.Dashboard(self.title)
            .uid(uid)
            .description(self.description)
            .tags([TAG])
            .editable()
            .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
            .time("now-1h", "now")
            .refresh("30s")
            .timezone("browser")
            .with_variable(datasource_variable())
            .annotation(builtin_annotation())
            .annotation(alerts_annotation())
            .link(
                dash_b.DashboardLink("obsctl dashboards")
                .type(dash_m.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(False)
                .keep_time(True)
            )
        )
        for variable in self.variables:
            self._builder.with_variable(variable)

    def link_to(self, key: str, title: str) -> None:
        """Add a link to another obsctl dashboard, keeping the time range."""
        uid = self.config.links.dashboard_uids[key]
        self._builder.link(
            dash_b.DashboardLink(title)
            .type(dash_m.DashboardLinkType.LINK)
            .url(f"/d/{uid}")
            .icon("dashboard")
            .tooltip(f"Open the {title} dashboard")
            .keep_time(True)
        )

    def row(self, title: str) -> None:
        """Start a new (expanded) row."""
        self._builder.with_row(dash_b.Row(title).id(self._take_id()))

    def timeseries(
        self,
        title: str,
        description: str,
        unit: str,
        targets: Sequence[Target],
        *,
        line: Line | None = None,
        width: int = 12,
        height: int = 8,
        stacked: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
        quiet: Fault | None = None,
        draw: Literal["line", "bars"] = "line",
    ) -> None:
        """A time series panel; `line` draws a config threshold as a dashed line."""
        panel = (
            timeseries_b.Panel()
            .line_width(1)
            .fill_opacity(10 if not stacked else 40)
            .show_points(common_m.VisibilityMode.NEVER)
            .span_nulls(False)
            .legend(
                common_b.VizLegendOptions()
                .display_mode(common_m.LegendDisplayMode.LIST)
                .placement(common_m.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common_b.VizTooltipOptions()
                .mode(common_m.TooltipDisplayMode.MULTI)
                .sort(common_m.SortOrder.DESCENDING)
            )
        )
        if draw == "bars":
            panel.draw_style(common_m.GraphDrawStyle.BARS)
        if stacked:
            panel.stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
        if line is not None:
            panel.thresholds_style(
                common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.DASHED)
            )
        else:
            panel.thresholds_style(
                common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.OFF)
            )
        if min_value is not None:
            panel.min(min_value)
        if max_value is not None:
            panel.max(max_value)
        self._add(panel, title, description, unit, targets, line, width, height, quiet)

    def stat(
        self,
        title: str,
        description: str,
        unit: str,
        targets: Sequence[Target],
        *,
        line: Line | None = None,
        mappings: Sequence[Mapping] = (),
        count_ok: tuple[str, str] | None = None,
        width: int = 4,
        height: int = 4,
        link: str | None = None,
        quiet: Fault | None = None,
    ) -> None:
        """A single-value panel coloured by its config threshold (or by its mappings)."""
        panel = (
            stat_b.Panel()
            .graph_mode(common_m.BigValueGraphMode.AREA)
            .color_mode(common_m.BigValueColorMode.BACKGROUND)
            .text_mode(common_m.BigValueTextMode.VALUE_AND_NAME)
            .justify_mode(common_m.BigValueJustifyMode.AUTO)
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
        if mappings:
            panel.mappings(_value_mappings(mappings))
            panel.graph_mode(common_m.BigValueGraphMode.NONE)
        if count_ok is not None:
            panel.mappings(_count_mappings(*count_ok))
        if link is not None:
            uid = self.config.links.dashboard_uids[link]
            panel.links([dash_b.DashboardLink(f"Open {link}").url(f"/d/{uid}").keep_time(True)])
        self._add(panel, title, description, unit, targets, line, width, height, quiet)

    def status(
        self,
        title: str,
        description: str,
        targets: Sequence[Target],
        *,
        width: int = 24,
        height: int = 6,
        timeline: bool = False,
    ) -> None:
        """Dependency status (STATUS_MAPPINGS) as tiles or as a state timeline."""
        if not timeline:
            self.stat(
                title,
                description,
                "none",
                targets,
                mappings=STATUS_MAPPINGS,
                width=width,
                height=height,
            )
            return
        panel = (
            timeline_b.Panel()
            .mappings(_value_mappings(STATUS_MAPPINGS))
            .show_value(common_m.VisibilityMode.NEVER)
            .merge_values(True)
            .row_height(0.8)
            .legend(common_b.VizLegendOptions().show_legend(False))
        )
        self._add(panel, title, description, "none", targets, None, width, height, None)

    def table(
        self,
        title: str,
        description: str,
        unit: str,
        targets: Sequence[Target],
        *,
        hide: Sequence[str] = ("Time", "__name__", "job", "instance", "service"),
        width: int = 12,
        height: int = 8,
        quiet: Fault | None = None,
    ) -> None:
        """Latest values as a table (instant queries), one row per series."""
        panel = (
            table_b.Panel()
            .show_header(True)
            .with_transformation(
                dash_m.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": dict.fromkeys(hide, True), "renameByName": {}},
                )
            )
        )
        self._add(
            panel, title, description, unit, targets, None, width, height, quiet, instant=True
        )

    def build(self) -> dash_m.Dashboard:
        """The SDK model of the dashboard."""
        return self._builder.build()

    def _take_id(self) -> int:
        taken = self._next_id
        self._next_id += 1
        return taken

    def _add(
        self,
        panel: Any,
        title: str,
        description: str,
        unit: str,
        targets: Sequence[Target],
        line: Line | None,
        width: int,
        height: int,
        quiet: Fault | None,
        instant: bool = False,
    ) -> None:
        panel.id(self._take_id()).title(title).description(description).datasource(DATASOURCE)
        panel.unit(unit).span(width).height(height)
        steps = line.steps() if line is not None else [dash_m.Threshold(None, GREEN)]
        panel.thresholds(
            dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps)
        )
        for index, target in enumerate(targets):
            query = (
                prom_b.Dataquery()
                .expr(target.expr)
                .ref_id(chr(ord("A") + index))
                .datasource(DATASOURCE)
                .editor_mode(prom_m.QueryEditorMode.CODE)
            )
            if target.legend:
                query.legend_format(target.legend)
            if instant:
                query.instant().format(prom_m.PromQueryFormat.TABLE)
            else:
                query.range()
            panel.with_target(query)
        if quiet is not None:
            self.quiet[title] = quiet
        self._builder.with_panel(panel)


def datasource_variable() -> dash_b.DatasourceVariable:
    """The `datasource` variable every query goes through."""
    return (
        dash_b.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Prometheus")
        .type("prometheus")
        .regex("")
    )


def query_variable(
    name: str, label: str, metric: str, label_name: str, multi: bool = True
) -> dash_b.QueryVariable:
    """A label-values variable with an `All` option that matches everything."""
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {label_name})")
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(True)
        .all_value(".*")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def builtin_annotation() -> dash_b.AnnotationQuery:
    """Grafana's own "Annotations & Alerts" (Grafana-managed alerts and manual notes)."""
    return (
        dash_b.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(GRAFANA_DATASOURCE)
        .built_in(1)
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
    )


def alerts_annotation() -> dash_b.AnnotationQuery:
    """The Prometheus alerts that fire, as annotations (keys completed by ANNOTATION_EXTRAS)."""
    return (
        dash_b.AnnotationQuery()
        .name("Firing alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color(RED)
        .expr(ALERTS_EXPR)
    )
