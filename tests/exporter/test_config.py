"""Exporter config: strict validation, env overrides, secrets from env or files, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from obsctl.configfile import ConfigError
from obsctl.exporter.config import load

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "exporters" / "obsctl-exporter.yml"
STACK_LIKE_ENV = {
    "OBSCTL_MYSQL_DSN": "mysql://obsctl_exporter:s3cret-pw@127.0.0.1:3306/platform",
    "OBSCTL_REDIS_URL": "redis://127.0.0.1:6379/0",
    "OBSCTL_COS_ENDPOINT": "http://127.0.0.1:9000",
    "OBSCTL_COS_BUCKET": "obsctl-canary-1250000000",
    "OBSCTL_COS_ACCESS_KEY": "AKIDEXAMPLE",
    "OBSCTL_COS_SECRET_KEY": "very-secret-key",
    "OBSCTL_COS_REGION": "ap-guangzhou",
    "PROVIDER_ALPHA_URL": "http://127.0.0.1:9001",
    "PROVIDER_BETA_URL": "http://127.0.0.1:9002",
    "PROVIDER_ALPHA_KEY": "sk-alpha-key-of-the-stack",
    "PROVIDER_BETA_KEY": "sk-beta-key-of-the-stack",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def _problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, env or {})
    return caught.value.problems


def test_the_shipped_example_is_valid_with_the_stack_env() -> None:
    config = load(EXAMPLE, STACK_LIKE_ENV)
    assert config.mysql is not None and config.mysql.dsn.get_secret_value().startswith("mysql://")
    assert config.cos is not None and config.cos.bucket == "obsctl-canary-1250000000"
    assert [p.name for p in config.providers] == ["alpha", "beta"]
    assert config.providers[0].slow_threshold == pytest.approx(0.2)
    assert config.providers[0].timeout == pytest.approx(2.0)
    for provider in config.providers:
        key = STACK_LIKE_ENV[f"PROVIDER_{provider.name.upper()}_KEY"]
        assert provider.headers["Authorization"].get_secret_value() == f"Bearer {key}"
        assert provider.expect_json is not None and provider.expect_json.field == "status"


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "listen: 127.0.0.1:1\nredis:\n  url: redis://file:6379/0\n")
    config = load(path, {"OBSCTL_LISTEN": "127.0.0.1:9999", "OBSCTL_REDIS_URL": "redis://env/1"})
    assert config.listen == "127.0.0.1:9999"
    assert config.redis is not None and config.redis.url.get_secret_value() == "redis://env/1"


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("mysql://u:p@127.0.0.1:3306/platform\n")
    path = _write(tmp_path, f"mysql:\n  dsn: ${{file:{secret}}}\n")
    config = load(path, {})
    assert config.mysql is not None
    assert config.mysql.dsn.get_secret_value() == "mysql://u:p@127.0.0.1:3306/platform"


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "redis:\n  url: redis://x\n  intervall: 5s\n")
    assert _problems(path) == ["redis.intervall: unknown key"]


def test_negative_interval_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "providers:\n  - name: alpha\n    url: http://x\n    interval: -5s\n")
    (problem,) = _problems(path)
    assert problem.startswith("providers[0].interval: ")
    assert "-5s" in problem


def test_missing_secret_names_the_key_and_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, "providers:\n  - name: alpha\n    url: ${PROVIDER_ALPHA_URL}\n")
    assert _problems(path) == [
        "providers[0].url: environment variable PROVIDER_ALPHA_URL is not set"
    ]


def test_missing_required_secret_of_a_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "cos:\n  interval: 30s\n")
    problems = _problems(path)
    for key in ("endpoint", "bucket", "access_key", "secret_key", "region"):
        assert f"cos.{key}: required key is missing" in problems


def test_bad_dsn_is_an_error_that_never_echoes_the_password(tmp_path: Path) -> None:
    path = _write(tmp_path, "mysql:\n  dsn: postgres://user:hunter2@db/platform\n")
    problems = _problems(path)
    assert any(p.startswith("mysql.dsn:") for p in problems), problems
    assert "hunter2" not in "\n".join(problems)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, "listen: nowhere\nbogus: 1\nredis:\n  url: redis://x\n  timeout: 0s\n")
    problems = _problems(path)
    assert len(problems) == 3, problems
    assert {p.split(":")[0] for p in problems} == {"listen", "bogus", "redis.timeout"}


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    path = _write(tmp_path, "listen: [unclosed\n")
    (problem,) = _problems(path)
    assert "line" in problem and "column" in problem


def test_check_flag_exits_2_with_the_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, "redis:\n  urll: redis://x\n")
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "exporter", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "redis.urll: unknown key" in result.stderr
    assert str(path) in result.stderr


def test_check_flag_accepts_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "exporter", "--config", str(EXAMPLE), "--check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **STACK_LIKE_ENV},
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "key-of-the-stack" not in result.stdout + result.stderr


def test_a_section_level_error_never_echoes_secrets_inside_it(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "providers:\n"
        "  - {name: alpha, url: 'http://u:topsecret@127.0.0.1:1'}\n"
        "  - {name: alpha, url: 'http://u:topsecret@127.0.0.1:2'}\n",
    )
    (problem,) = _problems(path)
    assert problem.startswith("providers: ") and "repeated: alpha" in problem
    assert "topsecret" not in problem


def test_what_startup_would_reject_is_refused_by_the_check(tmp_path: Path) -> None:
    empty = _write(tmp_path, "listen: 127.0.0.1:1\n")
    lonely = tmp_path / "lonely.yml"
    lonely.write_text("business: {interval: 15s}\n")
    slow = tmp_path / "slow.yml"
    slow.write_text(
        "redis: {url: 'redis://127.0.0.1:6379/0', interval: 99999999999999h}\n"
        "providers: [{name: alpha, url: 'http://p', interval: 1s, timeout: 5s}]\n"
    )

    assert _problems(empty) == [
        "(top level): Value error, no probe is configured: add at least one of mysql, business, "
        "redis, bullmq, cos or providers (an exporter that probes nothing reports nothing)"
    ]
    assert _problems(lonely) == [
        "(top level): Value error, business reads through the mysql probe's pool: add a mysql "
        "section"
    ]
    problems = _problems(slow)
    assert "redis.interval: Value error, a duration must be at most 30 days" in problems[0]
    assert problems[1] == (
        "providers[0].timeout: Value error, timeout (5s) must not be longer than interval (1s) "
        "(found '5s')"
    )


def test_a_key_inside_a_header_value_is_resolved_from_env_or_file(tmp_path: Path) -> None:
    key_file = tmp_path / "beta.key"
    key_file.write_text("sk-beta-from-file\n")
    path = _write(
        tmp_path,
        "providers:\n"
        "  - name: alpha\n    url: http://p\n"
        "    headers: {Authorization: 'Bearer ${ALPHA_KEY}', X-Team: '${TEAM:-images}'}\n"
        f"  - name: beta\n    url: http://p\n    headers: {{X-API-Key: '${{file:{key_file}}}'}}\n",
    )
    alpha, beta = load(path, {"ALPHA_KEY": "sk-alpha"}).providers
    assert {k: v.get_secret_value() for k, v in alpha.headers.items()} == {
        "Authorization": "Bearer sk-alpha",
        "X-Team": "images",
    }
    assert beta.headers["X-API-Key"].get_secret_value() == "sk-beta-from-file"
    assert "sk-alpha" not in repr(alpha) and "sk-beta" not in repr(beta)


def test_a_missing_or_empty_key_in_a_header_names_its_key_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "providers:\n"
        "  - {name: alpha, url: 'http://p', headers: {Authorization: 'Bearer ${ALPHA_KEY}'}}\n"
        "  - {name: beta, url: 'http://p', headers: {Authorization: 'Bearer ${BETA_KEY}'}}\n"
        "  - {name: gamma, url: 'http://p', headers: {X-API-Key: '${GAMMA_KEY}'}}\n",
    )
    # Sorted: a whole-value reference is reported as the file is read, the others on validation.
    assert sorted(_problems(path, {"BETA_KEY": ""})) == [
        "providers[0].headers.Authorization: environment variable ALPHA_KEY is not set",
        "providers[1].headers.Authorization: ${BETA_KEY} resolves to an empty value",
        "providers[2].headers.X-API-Key: environment variable GAMMA_KEY is not set",
    ]


def test_header_problems_name_the_key_path_and_never_echo_a_value(tmp_path: Path) -> None:
    literal, from_env = "Bearer sk-literal-9f8e7d", "sk-from-env-1a2b3c"
    path = _write(
        tmp_path,
        "providers:\n"
        f"  - {{name: alpha, url: 'http://p', headers: {{Authorization: '{literal}'}}}}\n"
        f"  - {{name: alpha, url: 'http://p', headers: {{X-Key: 'Bearer ${{KEY}}'}}}}\n",
    )
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "providers:\n"
        "  - name: alpha\n    url: http://p\n"
        f"    headers: {{Authorization: \"{literal}\\u0007\", 'Bad Name': x, Host: h}}\n"
        f"  - {{name: beta, url: 'http://p', headers: ['Authorization: {literal}']}}\n"
        f"  - {{name: gamma, url: 'http://p', headers: {{A: '{literal}', a: '{literal}'}}}}\n"
        "  - {name: delta, url: 'http://p', headers: {X-Key: '${KEY}x', X-Other: 7}}\n",
    )
    env = {"KEY": from_env}

    (repeated,) = _problems(path, env)
    problems = _problems(broken, env)

    assert repeated.startswith("providers: Value error, provider names must be unique")
    assert problems == [
        "providers[0].headers.Authorization: Value error, a header value holds printable ASCII "
        "only, found another character at position 25 (the value is never shown)",
        "providers[0].headers.Bad Name.[key]: Value error, not a header name: letters, digits and "
        "!#$%&'*+.^_`|~- only, at most 64 (found 'Bad Name')",
        "providers[0].headers.Host.[key]: Value error, the HTTP client sets Host from the request "
        "itself (found Host)",
        "providers[1].headers: Value error, expected a mapping of header name to value, found list",
        "providers[2].headers: Value error, header names ignore case, found A and a",
        "providers[3].headers.X-Other: Value error, a header value must be text, found int",
    ]
    for text in (repeated, *problems):
        assert "sk-literal" not in text and from_env not in text


def test_the_request_and_the_expected_answer_are_checked(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "providers:\n"
        "  - {name: a, url: 'http://p', heartbeat_path: /v1/ping}\n"
        "  - {name: b, url: 'http://p', method: PUT}\n"
        "  - {name: c, url: 'http://p', body: {prompt: hi}}\n"
        "  - {name: d, url: 'http://p', method: head, expect_json: {field: status, equals: ok}}\n"
        "  - {name: e, url: 'http://p', expect_status: [200, 200]}\n"
        "  - {name: f, url: 'http://p', expect_status: [700]}\n"
        "  - {name: g, url: 'http://p', expect_json: {field: 'a..b'}}\n"
        "  - {name: h, url: 'http://p', path: v1/heartbeat}\n",
    )
    problems = _problems(path)
    assert problems[0] == (
        "providers[0].heartbeat_path: Value error, renamed to `path` (the same request path, "
        "e.g. /v1/heartbeat) (found '/v1/ping')"
    )
    assert problems[1].startswith("providers[1].method: Input should be 'GET', 'HEAD' or 'POST'")
    assert problems[2:5] == [
        "providers[2].body: Value error, a body is sent only with method POST, found method GET",
        "providers[3].expect_json: Value error, a HEAD answer has no body to check, found method "
        "HEAD",
        "providers[4].expect_status: Value error, each status code once, found [200, 200]",
    ]
    assert problems[5].startswith("providers[5].expect_status[0]: Input should be less than")
    assert [p.split(":")[0] for p in problems[6:]] == [
        "providers[6].expect_json.field",
        "providers[6].expect_json.equals",
        "providers[7].path",
    ]


def test_a_provider_request_is_fully_configurable(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "providers:\n"
        "  - name: alpha\n    url: http://p\n    method: post\n    path: /v1/tasks\n"
        "    body: {feature: matting, n: 1}\n    expect_status: 202\n"
        "    expect_json: {field: status, equals: processing}\n",
    )
    (provider,) = load(path, {}).providers
    assert (provider.method, provider.path, provider.expect_status) == ("POST", "/v1/tasks", [202])
    assert provider.body == {"feature": "matting", "n": 1}
    assert provider.expect_json is not None and provider.expect_json.field == "status"
    assert provider.accepts(202) and not provider.accepts(200)


def test_leader_section_is_strict_and_needs_a_redis(tmp_path: Path) -> None:
    path = _write(tmp_path, "redis:\n  url: redis://x\nleader:\n  enabled: true\n  leese: 30s\n")
    assert _problems(path) == ["leader.leese: unknown key"]
    path = _write(tmp_path, "providers: [{name: a, url: 'http://x'}]\nleader: {enabled: true}\n")
    (problem,) = _problems(path)
    assert "leader.enabled needs leader.url or a redis section" in problem


def test_leader_lease_defaults_to_30s_on_the_redis_probes_url(tmp_path: Path) -> None:
    path = _write(tmp_path, "redis:\n  url: redis://x:6379/0\nleader:\n  enabled: true\n")
    config = load(path, {})
    assert config.leader.lease == 30.0
    assert (
        config.lease_url is not None and config.lease_url.get_secret_value() == "redis://x:6379/0"
    )
