"""Config files for people: every bad file is a located error, none of them shows a secret.

Also random documents through every loader: each loads or raises ConfigError, never anything
else, and never with the secret a ${VAR} resolved to.
"""

from __future__ import annotations

import os
import string
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from obsctl.configfile import ConfigError
from obsctl.drills.remote import load_target
from obsctl.exporter.config import load as load_exporter
from obsctl.relay.config import load as load_relay

TOKEN = "relay-token-Zq8w2Lx7"
DSN = "mysql://exporter:Hunt3r-pass@127.0.0.1:3306/platform"


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(load: object, path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, environ or {})  # type: ignore[operator]
    return caught.value.problems


# --- no secret in any error --------------------------------------------------------------------


def test_a_yaml_syntax_error_next_to_a_literal_token_never_prints_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"webhook:\n  token: {TOKEN}\n   oops: [\ntargets: {{}}\n")

    problems = problems_of(load_relay, path)

    assert problems == ["not valid YAML at line 3, column 8: mapping values are not allowed here"]
    assert TOKEN not in str(problems)


def test_a_secret_from_a_reference_is_hidden_wherever_it_lands(tmp_path: Path) -> None:
    secret_file = write(tmp_path, f"{DSN}\n", "dsn-secret")
    path = write(
        tmp_path,
        "listen: ${OBSCTL_MYSQL_DSN}\n"
        f"render: {{timezone: '${{file:{secret_file}}}'}}\n"
        "targets: {team: {url: 'http://robot/send'}}\n",
    )

    problems = problems_of(load_relay, path, {"OBSCTL_MYSQL_DSN": DSN})
    text = "\n".join(problems)

    assert "listen: Value error, expected host:port such as 127.0.0.1:18310" in text
    assert "render.timezone: Value error, unknown time zone" in text
    assert DSN not in text and "Hunt3r-pass" not in text and "exporter:" not in text
    assert text.count("<redacted>") >= 2


def test_a_literal_dsn_password_never_shows_even_in_part(tmp_path: Path) -> None:
    path = write(tmp_path, f"mysql:\n  dsn: '{DSN}'\n  interval: soon\nlisten: '{DSN}'\n")

    text = "\n".join(problems_of(load_exporter, path))

    assert "mysql.interval:" in text and "listen:" in text
    assert "Hunt3r-pass" not in text and DSN not in text


# --- every bad file is a located error ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (os.urandom(64) + b"\x00\xff\xfe", "not UTF-8 text: byte 0x"),
        (b"listen: 127.0.0.1:1\ntargets: {team: {url: 'http://caf\xe9'}}\n",
         "not UTF-8 text: byte 0xe9 at line 2, column 34"),
        (b"a: b\x00\n", "not valid YAML at line 1, column 5: character U+0000 is not allowed"),
        ("listen: " + "9" * 5_000 + "\n",
         "not valid YAML at line 1, column 9: an integer of 5000 digits"),
        ("[1, 2]\n", "the top level must be a mapping, found list"),
    ],
)  # fmt: skip
def test_garbage_is_a_located_error(tmp_path: Path, content: str | bytes, expected: str) -> None:
    [problem] = problems_of(load_relay, write(tmp_path, content))

    assert problem.startswith(expected), problem


def test_a_duplicate_key_is_refused_instead_of_silently_replacing_the_first(
    tmp_path: Path,
) -> None:
    relay = write(
        tmp_path,
        "targets:\n"
        "  oncall: {url: 'http://robot/a', mentions: {mobiles: ['13800000000']}}\n"
        "  oncall: {url: 'http://robot/b'}\n",
    )
    exporter = write(
        tmp_path, "mysql: {interval: 10s}\nredis: {}\nmysql: {interval: 5s}\n", "e.yml"
    )

    assert problems_of(load_relay, relay) == [
        "not valid YAML at line 3, column 3: duplicate key 'oncall' (first given at line 2); "
        "YAML would keep only the last one"
    ]
    [problem] = problems_of(load_exporter, exporter)
    assert "line 3, column 1: duplicate key 'mysql' (first given at line 1)" in problem


def test_an_alias_bomb_and_a_huge_file_are_refused_quickly(tmp_path: Path) -> None:
    levels = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for name, previous in zip("bcdefghi", "abcdefgh", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb = write(tmp_path, "\n".join(levels) + "\n", "bomb.yaml")
    huge = write(tmp_path, "x: " + "y" * 5_000_000 + "\n", "huge.yaml")

    started = time.monotonic()
    bomb_problems = problems_of(load_relay, bomb)
    huge_problems = problems_of(load_relay, huge)
    elapsed = time.monotonic() - started

    assert bomb_problems == ["the document expands to more than 100,000 values (YAML aliases?)"]
    assert huge_problems == ["the file is 5,000,004 bytes; a config file is at most 1,048,576"]
    assert elapsed < 2


def test_a_missing_variable_does_not_hide_the_other_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen: nowhere\n"
        "webhook: {token: '${NOT_SET_TOKEN}'}\n"
        "targets: {team: {url: '${NOT_SET_URL}', colour: red}}\n",
    )

    problems = problems_of(load_relay, path)

    assert problems == [
        "webhook.token: environment variable NOT_SET_TOKEN is not set",
        "targets.team.url: environment variable NOT_SET_URL is not set",
        "listen: Value error, expected host:port such as 127.0.0.1:18310, found 'nowhere'",
        "targets.team.colour: unknown key",
    ]


SECRET_MARK = "S3cr3t-Fuzz-Value-91x"
# --- random configs ----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(["${SECRET_VAR}", "10s", "99999999999999h", "127.0.0.1:1", "-1", "0", ""]),
)  # fmt: skip
keys = st.one_of(
    st.text(string.ascii_lowercase + "_", min_size=1, max_size=12),
    st.sampled_from(
        ["listen", "targets", "webhook", "delivery", "render", "token", "url", "secret", "mysql",
         "redis", "interval", "timeout", "dsn", "spool_dir", "providers", "name", "prometheus"]
    ),
)  # fmt: skip
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(document=st.dictionaries(keys, documents, max_size=6), raw_tail=st.text(max_size=30))
def test_random_configs_are_loaded_or_refused_with_a_config_error_and_no_secret(
    document: dict[str, Any], raw_tail: str
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True) + (
        raw_tail if len(raw_tail) % 3 == 0 else ""
    )
    environ = {"SECRET_VAR": SECRET_MARK, "OBSCTL_RELAY_TOKEN": SECRET_MARK}
    path = Path(f"/tmp/obsctl-fuzz-{os.getpid()}.yaml")
    path.write_text(text, encoding="utf-8")
    try:
        for load in (load_relay, load_exporter, load_target):
            try:
                load(path, environ)  # type: ignore[operator]
            except ConfigError as exc:
                assert SECRET_MARK not in str(exc), str(exc)
    finally:
        path.unlink()
