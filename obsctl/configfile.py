"""Config files for people: YAML read safely, ${ENV} and ${file:} secrets, errors with key paths.

Shared by the exporter, the relay, the mixin and the drill target configs, so each speaks the
same way about a problem: `FILE: key.path: what was expected (found …)`, every problem at
once, and no secret in any message. A secret is recognised by where its value came from (any
resolved ``${…}``) and by the key it sits under; each such value is replaced wherever it
would appear, including in values found under other keys.

Reading is bounded: a file over ``MAX_CONFIG_BYTES``, text that is not UTF-8, a duplicate key
(which YAML would silently resolve to the last one), an integer of thousands of digits, or
aliases that expand to more than ``MAX_EXPANDED_VALUES`` values are each a located error.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

# ${VAR}, ${VAR:-default} (the default when VAR is unset) or ${file:/path}.
_REFERENCE = re.compile(
    r"^\$\{(?:(?P<file>file:)(?P<path>[^}]+)"
    r"|(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?)\}$"
)
ModelT = TypeVar("ModelT", bound=BaseModel)
_LISTEN = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
MAX_CONFIG_BYTES = 1_048_576
MAX_SECRET_FILE_BYTES = 65_536
# Values in the document once aliases are expanded: far above any real config, far below
# what an alias bomb ("billion laughs") would make every later step walk through.
MAX_EXPANDED_VALUES = 100_000
MAX_INT_DIGITS = 30
REDACTED = "<redacted>"
_SECRET_HINTS = ("dsn", "url", "key", "secret", "password", "token")
# A key is a secret's when its last word is one of these (access_key, robot_secret, ...).
_SECRET_WORDS = frozenset(
    {"dsn", "key", "secret", "password", "passwd", "token", "credentials", "dingtalk"}
)
# A URL holds a secret when it carries credentials in its user part or its query.
_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@|[?&][^=&]*(token|key|secret|sign|signature)=", re.I)


class StrictModel(BaseModel):
    """A config section that refuses unknown keys (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists each one with where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid config:\n  " + "\n  ".join(problems))


class _Missing:
    """Stands in for an unresolved ${…} so validation still reports everything else."""

    def __repr__(self) -> str:
        return REDACTED


MISSING = _Missing()


# --- reading YAML ------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and absurdly long integers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping whose keys are each given once (``<<`` merges may still override)."""
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {str(key)[:60]!r} (first given at line "
                    f"{first.start_mark.line + 1}); YAML would keep only the last one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer of a sane length."""
        digits = sum(char.isdigit() for char in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits is not a config value", node.start_mark
            )
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Line, column and what is wrong; never the text around it (it may hold a secret)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return (
            f"not valid YAML at line {line}, column {column}: character "
            f"U+{exc.character:04X} is not allowed in YAML (binary data?)"
            if isinstance(exc.character, int)
            else f"not valid YAML at line {line}, column {column}: {exc.reason}"
        )
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else str(problem)
    return f"not valid YAML at {where}: {detail}"


def _expanded_values(node: Any, budget: int) -> int:
    """How many values `node` holds with aliases expanded, counting at most `budget`."""
    count = 0
    stack = [node]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
            count += len(item)
        elif isinstance(item, list):
            stack.extend(item)
    return count


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ConfigError when it cannot be a config."""
    source = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror}"]) from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            source, [f"the file is {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,}"]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise ConfigError(
            source, [f"not UTF-8 text: byte 0x{byte} at line {line}, column {column}"]
        ) from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc, text)]) from None
    except RecursionError:
        raise ConfigError(source, ["nested too deeply to be a config"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"the top level must be a mapping, found {type(raw).__name__}"])
    if _expanded_values(raw, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise ConfigError(
            source,
            [f"the document expands to more than {MAX_EXPANDED_VALUES:,} values (YAML aliases?)"],
        )
    return raw


# --- values --------------------------------------------------------------------------------


def host_port(value: str) -> str:
    """Field validator for listen addresses: host:port with a valid port."""
    match = _LISTEN.match(value)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:18310, found {value!r}")
    return value


def resolve_references(
    node: Any,
    where: tuple[str | int, ...],
    environ: Mapping[str, str],
    problems: list[str],
    secrets: set[str] | None = None,
) -> Any:
    """Replace "${VAR}" and "${file:/path}" strings by their values.

    What cannot be resolved becomes MISSING and is described in `problems`; every resolved
    value is added to `secrets`, so error messages can hide it wherever it turns up.
    """
    if isinstance(node, dict):
        return {
            k: resolve_references(v, (*where, k), environ, problems, secrets)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            resolve_references(v, (*where, i), environ, problems, secrets)
            for i, v in enumerate(node)
        ]
    if not isinstance(node, str):
        return node
    match = _REFERENCE.match(node.strip())
    if not match:
        return node
    key = _dotted(where)
    value: str | None
    if match.group("var"):
        name = match.group("var")
        # `in` then `[]`, not .get(): validate stands in for secrets with a mapping that
        # answers every name through __missing__.
        if name in environ:
            value = environ[name]
        elif match.group("default") is not None:
            return match.group("default")
        else:
            value = None
            problems.append(f"{key}: environment variable {name} is not set")
    else:
        value = _read_secret_file(Path(match.group("path")), key, problems)
    if value is None:
        return MISSING
    if secrets is not None and value:
        secrets.add(value)
    return value


def _read_secret_file(path: Path, key: str, problems: list[str]) -> str | None:
    try:
        if path.stat().st_size > MAX_SECRET_FILE_BYTES:
            problems.append(
                f"{key}: secret file {path} is larger than {MAX_SECRET_FILE_BYTES:,} bytes"
            )
            return None
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{key}: cannot read secret file {path}: {exc.strerror}")
    except UnicodeDecodeError:
        problems.append(f"{key}: secret file {path} is not UTF-8 text")
    return None


def set_path(raw: dict[str, Any], key_path: tuple[str, ...], value: Any) -> None:
    """Put `value` at `key_path` in a raw config mapping, creating sections on the way."""
    node = raw
    for part in key_path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[key_path[-1]] = value


# --- errors ------------------------------------------------------------------------------


def describe_validation_error(error: Any, raw: dict[str, Any]) -> str:
    """'mysql.interval: expected ..., found ...' with secret-looking keys never echoed."""
    loc = tuple(error.get("loc", ()))
    key = _dotted(loc) or "(top level)"
    # A whole-file check (no loc) is ours and lists every problem it found; a field's message
    # may quote what was typed, so it stays short.
    message = str(error.get("msg", "invalid"))[: 300 if loc else 2000]
    if error.get("type") == "extra_forbidden":
        return f"{key}: unknown key"
    if error.get("type") == "missing":
        return f"{key}: required key is missing"
    if "found" in message or not loc:  # said already, or the whole file (nothing to quote)
        return f"{key}: {message}"
    found = _short(_redacted(_lookup(raw, loc), str(loc[-1]) if loc else ""))
    return f"{key}: {message} (found {found})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _redacted(value: Any, key: str) -> Any:
    """value with anything under a secret-looking key replaced, however deep."""
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if isinstance(value, str) and _secret_key(key):
        return REDACTED
    return value


def _secret_key(key: str) -> bool:
    return any(hint in key.lower() for hint in _SECRET_HINTS)


def secret_values(raw: Any, key: str = "") -> Iterator[str]:
    """Every string of a raw config that is a secret by its key or its shape."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            yield from secret_values(v, str(k))
    elif isinstance(raw, list):
        for v in raw:
            yield from secret_values(v, key)
    elif isinstance(raw, str) and raw and not _REFERENCE.match(raw.strip()):
        last_word = re.split(r"[_\-.]", key.lower())[-1]
        if last_word in _SECRET_WORDS or _URL_CREDENTIALS.search(raw):
            yield raw


def _with_parts(secrets: set[str]) -> set[str]:
    """The secrets plus the user and password inside any of them that is a URL or DSN."""
    found = set(secrets)
    for secret in secrets:
        if "://" in secret and "@" in secret:
            try:
                parts = urllib.parse.urlsplit(secret)
            except ValueError:
                continue
            found.update(p for p in (parts.password, parts.username) if p and len(p) >= 3)
    return found


def scrub(text: str, secrets: set[str]) -> str:
    """`text` with every known secret value replaced (longest first, so parts never leak)."""
    for secret in sorted(_with_parts(secrets), key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, REDACTED)
            # Also as repr() shows it inside quotes (escaped backslashes and quotes).
            shown = repr(secret)[1:-1]
            if shown != secret:
                text = text.replace(shown, REDACTED)
    return text


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
        text = str(part)[:80]
        out += f"[{text}]" if isinstance(part, int) else (f".{text}" if out else text)
    return out


def _under(loc: tuple[Any, ...], prefixes: list[tuple[Any, ...]]) -> bool:
    return any(loc[: len(prefix)] == prefix for prefix in prefixes)


def _missing_paths(node: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if node is MISSING:
        yield where
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _missing_paths(v, (*where, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _missing_paths(v, (*where, i))


def load_model(
    path: Path,
    model: type[ModelT],
    environ: Mapping[str, str],
    apply_overrides: Callable[[dict[str, Any], Mapping[str, str]], None],
    explain: Callable[[Any, dict[str, Any]], str] = describe_validation_error,
) -> ModelT:
    """Read path, resolve secret references, apply env overrides, validate into model.

    Every problem (a missing variable, an unknown key, a bad value) is collected into one
    ConfigError naming the file and each key path, with every secret value scrubbed.
    """
    raw = read_mapping(path)
    problems: list[str] = []
    secrets = set(secret_values(raw))
    resolved = resolve_references(raw, (), environ, problems, secrets)
    apply_overrides(resolved, environ)
    secrets.update(secret_values(resolved))
    unresolved = list(_missing_paths(resolved))
    try:
        validated = model.model_validate(resolved)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            if unresolved and _under(loc, unresolved):
                continue  # already reported as the variable or file that is missing
            problems.append(explain(err, resolved))
        validated = None
    except RecursionError:
        problems.append("(top level): nested too deeply to be a config")
        validated = None
    if problems or validated is None:
        raise ConfigError(str(path), [scrub(p, secrets) for p in problems] or ["invalid"])
    return validated
