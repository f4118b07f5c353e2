"""Lint rules for the generated dashboards, and the schema check against the Grafana SDK's models.

`lint` returns one problem per line, "<file>: <where>: <what>"; an empty list means every rule
holds. `metric_names` pulls the metric names out of a PromQL expression (a small lexer, enough
for the expressions dashboards use), so no panel can query a metric nobody exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash_m

from obsctl.metric_names import ALERT_PATH_FAMILIES, HOST_FAMILIES, exposed
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import sample_names
from obsctl.mixin.dashboards import SCHEMA_VERSION, Dashboard
from obsctl.mixin.dashboards.overview import KEY as OVERVIEW
from obsctl.mixin.dashboards.panels import (
    ALERTS_EXPR,
    ANNOTATION_EXTRAS,
    DATASOURCE_VARIABLE,
)

# What the API must expose (obsctl.mixin.contract): a panel querying any other API series
# fails the lint until the contract, and so `obsctl check app`, asks for it.
API_METRICS = sample_names()
# What the obsctl exporter exposes and dashboards may show: declared in obsctl.metric_names.
EXPORTER_METRICS = exposed()
# What the alert path's servers expose: the relay, the deadman, Prometheus and Alertmanager.
ALERT_PATH_METRICS = exposed(ALERT_PATH_FAMILIES)
# What node_exporter exposes of the hosts, and the rules and dashboards read.
HOST_METRICS = exposed(HOST_FAMILIES)
# Series Prometheus itself makes: alerts from the rules, and `up` of every target.
PROMETHEUS_METRICS = frozenset({"ALERTS", "up"})
KNOWN_METRICS = (
    API_METRICS | EXPORTER_METRICS | ALERT_PATH_METRICS | HOST_METRICS | PROMETHEUS_METRICS
)

# Grafana's global variables, always defined.
GLOBAL_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__name"})
DATASOURCE_REF = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
RATE_RANGE = "$__rate_interval"

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)(?:[smhdwy]|ms)*)
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<open>[({\[])
    |(?P<close>[)}\]])
    |(?P<space>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE,
)
_VARIABLE_USE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_RANGE = re.compile(r"\[([^\]]*)\]")
_RATE_CALL = re.compile(r"\b(?:rate|irate|increase)\s*\(")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$")


class PromQLSyntaxError(ValueError):
    """An expression the lexer cannot make sense of (unbalanced brackets)."""


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it is."""

    where: str
    expr: str
    kind: str  # "panel", "variable" (a label_values selector) or "annotation"


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or variables)."""
    tokens = [
        (m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"
    ]
    names: set[str] = set()
    depth: list[str] = []
    skip_group_at: int | None = None
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "open":
            depth.append(text)
            if text == "(" and skip_group_at is None and index > 0:
                previous = tokens[index - 1]
                if previous[0] == "ident" and previous[1] in _GROUPING:
                    skip_group_at = len(depth)
            continue
        if kind == "close":
            if not depth or {"(": ")", "{": "}", "[": "]"}[depth[-1]] != text:
                raise PromQLSyntaxError(f"unbalanced {text!r} in {expr!r}")
            if skip_group_at == len(depth):
                skip_group_at = None
            depth.pop()
            continue
        inside_braces_or_range = bool(depth) and depth[-1] in "{["
        if kind != "ident" or inside_braces_or_range or skip_group_at is not None:
            continue
        # A function or an aggregation ("sum (", "sum by (") is followed by its arguments.
        if text in _KEYWORDS or text in _GROUPING or following in ("(", "by", "without"):
            continue
        names.add(text)
    if depth:
        raise PromQLSyntaxError(f"unclosed {depth[-1]!r} in {expr!r}")
    return names


def recorded_metrics(rules_dir: Path) -> set[str]:
    """Names of the recording rules in `rules_dir/*.rules.yml` (none if there are none yet)."""
    names: set[str] = set()
    for path in sorted(rules_dir.glob("*.rules.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for group in document.get("groups", []):
            names.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return names


def panels(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows left out, panels of collapsed rows included)."""
    for panel in document.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(document: Mapping[str, Any]) -> Iterator[Query]:
    """Every PromQL expression of a dashboard: panel targets, variables and annotations."""
    for panel in panels(document):
        for target in panel.get("targets", []):
            where = f"panel {panel.get('title')!r} query {target.get('refId')}"
            yield Query(where, target.get("expr", ""), "panel")
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        found = _LABEL_VALUES.match(text)
        selector = found.group("selector") if found else text
        yield Query(f"variable {variable.get('name')!r}", selector, "variable")
    for annotation in document.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield Query(f"annotation {annotation.get('name')!r}", annotation["expr"], "annotation")


def variable_names(document: Mapping[str, Any]) -> set[str]:
    """Names of the dashboard's template variables."""
    return {v["name"] for v in document.get("templating", {}).get("list", [])}


def used_variables(expr: str) -> set[str]:
    """Template variables an expression refers to (Grafana's globals left out)."""
    used = {a or b for a, b in _VARIABLE_USE.findall(expr)}
    return used - GLOBAL_VARIABLES


def config_threshold_values(config: MixinConfig) -> set[float]:
    """Every number in config.thresholds: the only values a threshold line may have."""
    return {float(v) for v in config.thresholds.model_dump().values()}


def lint(
    dashboards: Sequence[Dashboard],
    config: MixinConfig,
    recorded: Iterable[str] = (),
) -> list[str]:
    """Every broken convention of the dashboards, one per line; empty when all hold."""
    known = KNOWN_METRICS | set(recorded)
    problems: list[str] = []
    for board in dashboards:
        problems += [f"{board.path}: {p}" for p in _lint_one(board, config, known)]
    uids = [b.json.get("uid") for b in dashboards]
    for uid in sorted({u for u in uids if uids.count(u) > 1}, key=str):
        problems.append(f"dashboards: UID {uid!r} is used more than once")
    overview = next((b for b in dashboards if b.key == OVERVIEW), None)
    if overview is None:
        problems.append("dashboards: there is no overview dashboard")
    else:
        urls = {link.get("url") for link in overview.json.get("links", [])}
        for board in dashboards:
            if board.key != OVERVIEW and f"/d/{board.json.get('uid')}" not in urls:
                problems.append(f"{overview.path}: links: no link to the {board.key} dashboard")
    return problems


def _lint_one(board: Dashboard, config: MixinConfig, known: AbstractSet[str]) -> Iterator[str]:
    document = board.json
    expected_uid = config.links.dashboard_uids.get(board.key)
    if document.get("uid") != expected_uid:
        found = document.get("uid")
        yield f"uid: {found!r}, but links.dashboard_uids.{board.key} is {expected_uid!r}"
    if document.get("schemaVersion") != SCHEMA_VERSION:
        yield f"schemaVersion: {document.get('schemaVersion')}, expected {SCHEMA_VERSION}"
    yield from _lint_variables(document)
    yield from _lint_annotations(document)
    yield from _lint_panels(document, config)
    defined = variable_names(document)
    for query in queries(document):
        yield from _lint_query(query, known, defined)


def _lint_variables(document: Mapping[str, Any]) -> Iterator[str]:
    variables = document.get("templating", {}).get("list", [])
    datasource = [v for v in variables if v.get("name") == DATASOURCE_VARIABLE]
    if not datasource:
        yield f"templating: no {DATASOURCE_VARIABLE!r} variable"
    elif datasource[0].get("type") != "datasource" or datasource[0].get("query") != "prometheus":
        yield f"templating: {DATASOURCE_VARIABLE!r} must be a datasource variable of prometheus"
    used: set[str] = set()
    for query in queries(document):
        used |= used_variables(query.expr)
    for variable in variables:
        name = variable.get("name")
        if variable.get("type") == "query" and variable.get("datasource") != DATASOURCE_REF:
            yield f"variable {name!r}: datasource must be {DATASOURCE_REF}"
        if name != DATASOURCE_VARIABLE and name not in used:
            yield f"variable {name!r}: defined but no query uses it"


def _lint_annotations(document: Mapping[str, Any]) -> Iterator[str]:
    annotations = document.get("annotations", {}).get("list", [])
    if not any(a.get("builtIn") == 1 and a.get("type") == "dashboard" for a in annotations):
        yield "annotations: no built-in 'Annotations & Alerts'"
    alerts = [a for a in annotations if a.get("expr") == ALERTS_EXPR]
    if not alerts:
        yield f"annotations: no Prometheus annotation of {ALERTS_EXPR}"
    elif alerts[0].get("datasource") != DATASOURCE_REF or not alerts[0].get("enable"):
        yield f"annotations: the {ALERTS_EXPR} annotation must be enabled and use $datasource"


def _lint_panels(document: Mapping[str, Any], config: MixinConfig) -> Iterator[str]:
    allowed_lines = config_threshold_values(config)
    ids: list[int] = []
    for panel in document.get("panels", []):
        ids.append(panel.get("id", -1))
        ids += [child.get("id", -1) for child in panel.get("panels", [])]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        yield f"panel id {duplicate} is used more than once"
    yield from _overlaps(document)
    for panel in panels(document):
        where = f"panel {panel.get('title')!r}"
        if panel.get("datasource") != DATASOURCE_REF:
            yield f"{where}: datasource must be {DATASOURCE_REF}"
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if not defaults.get("unit"):
            yield f"{where}: no unit"
        targets = panel.get("targets", [])
        if not targets:
            yield f"{where}: no query"
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or "" in ref_ids:
            yield f"{where}: refIds must be set and unique ({ref_ids})"
        for target in targets:
            if target.get("datasource") != DATASOURCE_REF:
                yield f"{where} query {target.get('refId')}: datasource must be {DATASOURCE_REF}"
        grid = panel.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            yield f"{where}: gridPos is wider than the 24 columns"
        steps = defaults.get("thresholds", {}).get("steps", [])
        for step in steps:
            value = step.get("value")
            if value is not None and float(value) not in allowed_lines:
                yield f"{where}: threshold {value} is not a value of config.thresholds"


def _overlaps(document: Mapping[str, Any]) -> Iterator[str]:
    placed: list[tuple[str, int, int, int, int]] = []
    for panel in document.get("panels", []):
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k, 0) for k in ("x", "y", "w", "h"))
        for title, ox, oy, ow, oh in placed:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                yield f"panel {panel.get('title')!r} overlaps panel {title!r}"
        placed.append((str(panel.get("title")), x, y, w, h))


def _lint_query(query: Query, known: AbstractSet[str], defined: AbstractSet[str]) -> Iterator[str]:
    where = query.where
    try:
        names = metric_names(query.expr)
    except PromQLSyntaxError as exc:
        yield f"{where}: {exc}"
        return
    if not names:
        yield f"{where}: selects no metric"
    for name in sorted(names - known):
        yield (
            f"{where}: unknown metric {name!r} (not in the API's contract, nor exported by the"
            " exporter, the relay, the deadman, node_exporter, Prometheus or Alertmanager:"
            " obsctl.metric_names)"
        )
    for variable in sorted(used_variables(query.expr) - defined):
        yield f"{where}: uses ${variable}, which is not a variable of this dashboard"
    for found in _RANGE.finditer(query.expr):
        if found.group(1) != RATE_RANGE:
            yield f"{where}: range [{found.group(1)}] must be [{RATE_RANGE}]"
    calls = len(_RATE_CALL.findall(query.expr))
    if calls > query.expr.count(f"[{RATE_RANGE}]"):
        yield f"{where}: every rate()/increase() needs a [{RATE_RANGE}] range"


def schema_problems(document: Mapping[str, Any]) -> list[str]:
    """Differences after a round trip through the SDK's Dashboard model (Grafana 11.6 schema)."""
    # The model drops a key the schema does not know and reshapes a value of the wrong shape, so
    # any difference is a problem, except the Prometheus annotation keys the schema leaves open.
    try:
        model = dash_m.Dashboard.from_json(dict(document))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"the SDK cannot read the dashboard: {exc!r}"]
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    allowed = {
        f"annotations.list[{index}].{key}"
        for index, annotation in enumerate(document.get("annotations", {}).get("list", []))
        if annotation.get("expr") == ALERTS_EXPR
        for key in ANNOTATION_EXTRAS
    }
    return [d for d in _differences(document, again, "") if d.split(":")[0] not in allowed]


def _differences(before: Any, after: Any, path: str) -> Iterator[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after)):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                yield f"{where}: not in the schema (dropped by the SDK model)"
            elif key not in before:
                yield f"{where}: missing (the SDK model adds {after[key]!r})"
            else:
                yield from _differences(before[key], after[key], where)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (one, other) in enumerate(zip(before, after, strict=True)):
            yield from _differences(one, other, f"{path}[{index}]")
    elif before != after or type(before) is not type(after):
        yield f"{path}: {before!r} comes back as {after!r}"
