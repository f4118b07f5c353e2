"""Config files for people: YAML read safely, ${ENV} and ${file:} secrets, errors with key paths.

Shared by the exporter, the relay and the mixin configs, so each speaks the same way about a
problem: `FILE: key.path: what was expected (found …)`, secrets never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

_REFERENCE = re.compile(
    r"^\$\{(?:(?P<file>file:)(?P<path>[^}]+)|(?P<var>[A-Za-z_][A-Za-z0-9_]*))\}$"
)
ModelT = TypeVar("ModelT", bound=BaseModel)
_LISTEN = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class StrictModel(BaseModel):
    """A config section that refuses unknown keys (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists each one with where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid config:\n  " + "\n  ".join(problems))


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ConfigError when missing, unparsable or not a map."""
    source = str(path)
    if not path.exists():
        raise ConfigError(source, ["file not found"])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(source, [f"not valid YAML at {where}: {exc}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"the top level must be a mapping, found {type(raw).__name__}"])
    return raw


def host_port(value: str) -> str:
    """Field validator for listen addresses: host:port with a valid port."""
    match = _LISTEN.match(value)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:18310, found {value!r}")
    return value


def resolve_references(
    node: Any, where: tuple[str | int, ...], environ: Mapping[str, str], problems: list[str]
) -> Any:
    """Replace "${VAR}" and "${file:/path}" strings by their values, collecting what is missing."""
    if isinstance(node, dict):
        return {k: resolve_references(v, (*where, k), environ, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_references(v, (*where, i), environ, problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    match = _REFERENCE.match(node.strip())
    if not match:
        return node
    key = _dotted(where)
    if match.group("var"):
        name = match.group("var")
        if name not in environ:
            problems.append(f"{key}: environment variable {name} is not set")
            return None
        return environ[name]
    secret_path = Path(match.group("path"))
    try:
        return secret_path.read_text().strip()
    except OSError as exc:
        problems.append(f"{key}: cannot read secret file {secret_path}: {exc.strerror}")
        return None


_SECRET_HINTS = ("dsn", "url", "key", "secret", "password", "token")


def describe_validation_error(error: Any, raw: dict[str, Any]) -> str:
    """'mysql.interval: expected ..., found ...' with secrets never echoed."""
    loc = tuple(error.get("loc", ()))
    key = _dotted(loc) or "(top level)"
    message = error.get("msg", "invalid")
    if error.get("type") == "extra_forbidden":
        return f"{key}: unknown key"
    if error.get("type") == "missing":
        return f"{key}: required key is missing"
    found = _redacted(_lookup(raw, loc), str(loc[-1]) if loc else "")
    return f"{key}: {message} (found {found!r})"


def _redacted(value: Any, key: str) -> Any:
    """value with anything under a secret-looking key replaced, however deep."""
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if isinstance(value, str) and any(hint in key.lower() for hint in _SECRET_HINTS):
        return "<redacted>"
    return value


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    node = raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _dotted(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def set_path(raw: dict[str, Any], key_path: tuple[str, ...], value: Any) -> None:
    """Put `value` at `key_path` in a raw config mapping, creating sections on the way."""
    node = raw
    for part in key_path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[key_path[-1]] = value


def load_model(
    path: Path,
    model: type[ModelT],
    environ: Mapping[str, str],
    apply_overrides: Callable[[dict[str, Any], Mapping[str, str]], None],
    explain: Callable[[Any, dict[str, Any]], str] = describe_validation_error,
) -> ModelT:
    """Read path, resolve secret references, apply env overrides, validate into model.

    Every problem (a missing variable, an unknown key, a bad value) is collected into one
    ConfigError naming the file and each key path.
    """
    raw = read_mapping(path)
    problems: list[str] = []
    resolved = resolve_references(raw, (), environ, problems)
    apply_overrides(resolved, environ)
    if problems:
        raise ConfigError(str(path), problems)
    try:
        return model.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(str(path), [explain(err, resolved) for err in exc.errors()]) from None
