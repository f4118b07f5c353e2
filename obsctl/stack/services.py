"""The servers of the local stack: how each is prepared, started and known to be ready."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from obsctl.mixin import config as mixin_config
from obsctl.mixin.prometheus_config import run_flags
from obsctl.relay.config import target_env_prefix
from obsctl.stack import mysql_setup, noise, readiness
from obsctl.stack.checkout import demo_project
from obsctl.stack.configs import render_alertmanager_config, render_prometheus_config
from obsctl.stack.fakes.provider import API_KEY_ENV
from obsctl.stack.install import DEMO_PLATFORM_DIR
from obsctl.stack.layout import HOST, PROVIDERS, StackLayout
from obsctl.stack.secrets import (
    StackSecrets,
    dump_json_private,
    load_or_create,
    robot_env,
)

COS_BUCKET = "obsctl-canary-1250000000"
COS_REGION = "ap-guangzhou"
DEMO_TASKS_PER_SECOND = "4"
# node_exporter runs only the collectors the host rules and the Host dashboard read (and the
# few that say what the host is); the defaults add dozens of collectors (ARP, bonding, hwmon,
# thermal, NFS, ZFS, ...) whose series nobody queries and whose reads fail inside containers.
NODE_COLLECTORS = ("cpu", "loadavg", "meminfo", "filesystem", "netdev", "stat", "time", "uname")


class StackError(RuntimeError):
    """The stack could not do what was asked; the message says what and where."""


@dataclass
class Service:
    """One server: its command, readiness check and the steps around its start."""

    name: str
    address: str
    argv: list[str]
    ready: readiness.ReadyCheck
    phase: int = 1
    ready_timeout: float = 20.0
    prepare: Callable[[], object] | None = None
    after_ready: Callable[[], object] | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ports: list[int] = field(default_factory=list)


def relay_targets() -> list[str]:
    """The relay targets the routing delivers to: the stack has a DingTalk robot for each."""
    return mixin_config.load(demo_project().config_file).relay_targets()


def load_secrets(layout: StackLayout) -> StackSecrets:
    """The stack's secrets, with a robot for every relay target and a key for every provider."""
    return load_or_create(layout.secrets_file, relay_targets(), PROVIDERS)


def provider_urls(layout: StackLayout) -> str:
    """PROVIDER_URLS: name=url pairs, comma separated."""
    return ",".join(f"{name}={layout.url(f'provider-{name}')}" for name in PROVIDERS)


def build(layout: StackLayout, secrets: StackSecrets) -> list[Service]:
    """Every server of the stack, in start order."""
    py = sys.executable
    services = [
        _mariadb(layout, secrets),
        Service(
            name="redis",
            address=f"{HOST}:{layout.port('redis')}",
            argv=[
                "redis-server",
                "--port",
                str(layout.port("redis")),
                "--bind",
                HOST,
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(layout.state("redis")),
                "--maxmemory",
                "256mb",
                "--maxmemory-policy",
                REDIS_EVICTION_POLICY,
            ],
            ready=readiness.redis_ping(HOST, layout.port("redis")),
            prepare=lambda: layout.state("redis").mkdir(parents=True, exist_ok=True),
        ),
        Service(
            name="s3",
            address=layout.url("s3"),
            argv=[py, "-m", "moto.server", "-H", HOST, "-p", str(layout.port("s3"))],
            ready=readiness.http(f"{layout.url('s3')}/moto-api/"),
            after_ready=lambda: _create_bucket(layout, secrets),
        ),
        Service(
            name="smtp",
            address=f"{HOST}:{layout.port('smtp')}",
            argv=[
                py,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"{HOST}:{layout.port('smtp')}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(layout.state("smtp") / "maildir"),
            ],
            ready=readiness.smtp(HOST, layout.port("smtp")),
            prepare=lambda: layout.state("smtp").mkdir(parents=True, exist_ok=True),
        ),
        *[_provider(layout, name, secrets) for name in PROVIDERS],
        _dingtalk(layout, secrets),
        _tencent_sms(layout, secrets),
        _alertmanager(layout, secrets),
        _relay(layout, secrets),
        _deadman(layout, secrets),
        _node_exporter(layout),
        _prometheus(layout),
        _demo_app(layout, secrets),
        _exporter(layout, secrets),
    ]
    for service in services:
        service.ports = [int(service.address.rsplit(":", 1)[1])]
    return services


def _mariadb(layout: StackLayout, secrets: StackSecrets) -> Service:
    state = layout.state("mariadb")
    datadir = state / "data"

    def prepare() -> None:
        state.mkdir(parents=True, exist_ok=True)
        if not datadir.exists():
            _run_checked(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={datadir}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                layout.log("mariadb-install-db"),
            )

    return Service(
        name="mariadb",
        address=f"{HOST}:{layout.port('mariadb')}",
        argv=[
            "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={layout.mariadb_socket}",
            f"--pid-file={state / 'mariadbd.pid'}",
            f"--port={layout.port('mariadb')}",
            f"--bind-address={HOST}",
            "--user=root",
            "--skip-name-resolve",
            "--performance-schema=ON",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--max-connections=200",
            "--slow-query-log=ON",
            f"--slow-query-log-file={state / 'slow.log'}",
            "--long-query-time=0.5",
            "--innodb-buffer-pool-size=128M",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-log-bin",
        ],
        ready=readiness.mariadb_socket(layout.mariadb_socket),
        ready_timeout=30.0,
        prepare=prepare,
        after_ready=lambda: mysql_setup.apply(
            layout.mariadb_socket, secrets.platform_mysql_password, secrets.exporter_mysql_password
        ),
    )


def _noise() -> noise.StackNoise:
    try:
        return noise.from_env()
    except ValueError as exc:
        raise StackError(f"stack noise: {exc}") from None


def provider_keys_env(secrets: StackSecrets) -> dict[str, str]:
    """PROVIDER_<NAME>_KEY, the API key of every provider of the stack (`PROVIDER_ALPHA_KEY`)."""
    return {f"PROVIDER_{name.upper()}_KEY": secrets.provider_keys[name] for name in PROVIDERS}


def _provider(layout: StackLayout, name: str, secrets: StackSecrets) -> Service:
    service = f"provider-{name}"
    return Service(
        name=service,
        address=layout.url(service),
        argv=[
            sys.executable,
            "-m",
            "obsctl.stack.fakes.provider",
            "--name",
            name,
            "--host",
            HOST,
            "--port",
            str(layout.port(service)),
            *_noise().provider_args(),
        ],
        ready=readiness.http(f"{layout.url(service)}/_control"),
        # In the environment, not the argv: a command line is readable by every local user.
        env={**os.environ, API_KEY_ENV: secrets.provider_keys[name]},
    )


def _dingtalk(layout: StackLayout, secrets: StackSecrets) -> Service:
    state = layout.state("dingtalk")
    robots = state / "robots.json"

    def prepare() -> None:
        dump_json_private(
            robots,
            {
                robot.token: {"secret": robot.secret, "keywords": [], "rate_limit_per_minute": 20}
                for robot in secrets.dingtalk_robots.values()
            },
        )

    return Service(
        name="dingtalk",
        address=layout.url("dingtalk"),
        argv=[
            sys.executable,
            "-m",
            "obsctl.stack.fakes.dingtalk",
            "--host",
            HOST,
            "--port",
            str(layout.port("dingtalk")),
            "--robots",
            str(robots),
            "--store",
            str(state / "messages.jsonl"),
        ],
        ready=readiness.http(f"{layout.url('dingtalk')}/_control"),
        prepare=prepare,
    )


# BullMQ's requirement: at maxmemory refuse writes rather than delete jobs.
REDIS_EVICTION_POLICY = "noeviction"
# How the stack's stand-in for Tencent words an approved template, per variable it fills.
_SMS_TEMPLATE_WORDS = {
    "alertname": "告警 {}",
    "level": "第 {} 级",
    "minutes": "已 {} 分钟无人认领",
    "severity": "级别 {}",
    "team": "团队 {}",
}


def _tencent_sms(layout: StackLayout, secrets: StackSecrets) -> Service:
    state = layout.state("sms")
    accounts = state / "accounts.json"

    def prepare() -> None:
        # The account the project's escalation.sms names, with its signature and template
        # approved (none when the project texts nobody: every request is then refused).
        sms = _project_sms()
        approved = {}
        if sms is not None:
            words = [_SMS_TEMPLATE_WORDS[p].format(f"{{{n}}}")
                     for n, p in enumerate(sms.template_params, 1)]  # fmt: skip
            comma = "\uff0c"  # full-width, as Chinese text has it
            template = comma.join([*words, "请立即处理并认领。"])
            approved = {
                secrets.sms_secret_id: {
                    "secret_key": secrets.sms_secret_key,
                    "sdk_app_id": sms.sdk_app_id,
                    "sign_names": [sms.sign_name],
                    "templates": {sms.template_id: template},
                }
            }
        dump_json_private(accounts, approved)

    return Service(
        name="sms",
        address=layout.url("sms"),
        argv=[
            sys.executable,
            "-m",
            "obsctl.stack.fakes.tencent_sms",
            "--host",
            HOST,
            "--port",
            str(layout.port("sms")),
            "--accounts",
            str(accounts),
            "--store",
            str(state / "messages.jsonl"),
        ],
        ready=readiness.http(f"{layout.url('sms')}/_control"),
        prepare=prepare,
    )


def _project_sms() -> mixin_config.SmsSettings | None:
    escalation = mixin_config.load(demo_project().config_file).escalation
    return escalation.sms if escalation is not None else None


def _relay(layout: StackLayout, secrets: StackSecrets) -> Service:
    return Service(
        name="relay",
        address=layout.url("relay"),
        argv=[
            sys.executable,
            "-m",
            "obsctl",
            "relay",
            "--config",
            str(demo_project().relay_config),
        ],
        ready=readiness.http(f"{layout.url('relay')}/ready"),
        env={**os.environ, **relay_env(layout, secrets)},
    )


def relay_env(layout: StackLayout, secrets: StackSecrets) -> dict[str, str]:
    """The relay's variables: robots and their secrets, the webhook token, spool, link prefixes."""
    env = {
        "OBSCTL_RELAY_LISTEN": f"{HOST}:{layout.port('relay')}",
        "OBSCTL_RELAY_TOKEN": secrets.relay_token,
        "OBSCTL_RELAY_SPOOL_DIR": str(layout.state("relay") / "spool"),
        # The stack's Prometheus and Alertmanager, so query and silence links are kept.
        "OBSCTL_RELAY_LINK_PREFIXES": f"{layout.url('prometheus')} {layout.url('alertmanager')}",
        # Claim links open the stack's relay and record claims in the stack's Alertmanager.
        "OBSCTL_RELAY_CLAIM_KEY": secrets.claim_key,
        "OBSCTL_RELAY_CLAIM_URL": layout.url("relay"),
        "OBSCTL_RELAY_ALERTMANAGER_URL": layout.url("alertmanager"),
        # Escalations are mailed to the stack's SMTP sink and texted through its SMS fake.
        "OBSCTL_RELAY_SMARTHOST": f"{HOST}:{layout.port('smtp')}",
        "OBSCTL_RELAY_SMS_ENDPOINT": layout.url("sms"),
        "OBSCTL_RELAY_SMS_SECRET_ID": secrets.sms_secret_id,
        "OBSCTL_RELAY_SMS_SECRET_KEY": secrets.sms_secret_key,
    }
    for target, robot in secrets.dingtalk_robots.items():
        prefix = target_env_prefix(target)
        env[f"{prefix}_URL"] = f"{layout.url('dingtalk')}/robot/send?access_token={robot.token}"
        env[f"{prefix}_SECRET"] = robot.secret
    return env


def _deadman(layout: StackLayout, secrets: StackSecrets) -> Service:
    return Service(
        name="deadman",
        address=layout.url("deadman"),
        argv=[
            sys.executable,
            "-m",
            "obsctl",
            "deadman",
            "--config",
            str(demo_project().deadman_config),
        ],
        ready=readiness.http(f"{layout.url('deadman')}/ready"),
        env={**os.environ, **deadman_env(layout, secrets)},
    )


def deadman_env(layout: StackLayout, secrets: StackSecrets) -> dict[str, str]:
    """The deadman's variables, as production sets them: listen, token, state, SMTP, the robot.

    Its config is the project's generated alertmanager/deadman.yaml; only addresses and
    secrets are the stack's: the on-call robot's URL and secret go in the variables its
    references name (obsctl.yaml `oncall.dingtalk`), pointing at the stack's fake robot.
    """
    env = {
        "OBSCTL_DEADMAN_LISTEN": f"{HOST}:{layout.port('deadman')}",
        "OBSCTL_DEADMAN_TOKEN": secrets.deadman_token,
        "OBSCTL_DEADMAN_STATE_DIR": str(layout.deadman_state_dir),
        "OBSCTL_DEADMAN_SMARTHOST": f"{HOST}:{layout.port('smtp')}",
    }
    oncall = mixin_config.load(demo_project().config_file).oncall.dingtalk
    if oncall is not None:
        robot = secrets.robot(mixin_config.ONCALL)
        env[_reference_variable(oncall.url)] = (
            f"{layout.url('dingtalk')}/robot/send?access_token={robot.token}"
        )
        if oncall.secret:
            env[_reference_variable(oncall.secret)] = robot.secret
    return env


def _reference_variable(reference: str) -> str:
    """The variable a ${VAR} reference of obsctl.yaml reads."""
    match = re.match(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}$", reference)
    if match is None:
        raise StackError(
            f"the demo project's on-call robot is {reference!r}: the stack sets ${{VAR}} "
            "references only"
        )
    return match.group(1)


def _alertmanager(layout: StackLayout, secrets: StackSecrets) -> Service:
    state = layout.state("alertmanager")
    return Service(
        name="alertmanager",
        address=layout.url("alertmanager"),
        argv=[
            "prometheus-alertmanager",
            f"--config.file={state / 'alertmanager.yml'}",
            f"--storage.path={state / 'data'}",
            f"--web.listen-address={HOST}:{layout.port('alertmanager')}",
            f"--web.external-url={layout.url('alertmanager')}",
            "--cluster.listen-address=",
        ],
        ready=readiness.http(f"{layout.url('alertmanager')}/-/ready"),
        prepare=lambda: render_alertmanager_config(layout, secrets),
    )


def _node_exporter(layout: StackLayout) -> Service:
    """The Debian package's node_exporter, on loopback, with the collectors the rules read."""
    return Service(
        name="node-exporter",
        address=layout.url("node-exporter"),
        argv=[
            "prometheus-node-exporter",
            f"--web.listen-address={HOST}:{layout.port('node-exporter')}",
            "--collector.disable-defaults",
            *(f"--collector.{name}" for name in NODE_COLLECTORS),
        ],
        ready=readiness.http(f"{layout.url('node-exporter')}/metrics"),
    )


def _prometheus(layout: StackLayout) -> Service:
    state = layout.state("prometheus")
    return Service(
        name="prometheus",
        address=layout.url("prometheus"),
        argv=[
            "prometheus",
            f"--config.file={state / 'prometheus.yml'}",
            f"--storage.tsdb.path={state / 'data'}",
            f"--web.listen-address={HOST}:{layout.port('prometheus')}",
            f"--web.external-url={layout.url('prometheus')}",
            "--web.enable-lifecycle",
            "--rules.alert.resend-delay=5s",
            # The project's retention (at least the SLO period) and any flag its file needs.
            *run_flags(mixin_config.load(demo_project().config_file)),
        ],
        ready=readiness.http(f"{layout.url('prometheus')}/-/ready"),
        prepare=lambda: render_prometheus_config(layout),
    )


def _demo_app(layout: StackLayout, secrets: StackSecrets) -> Service:
    env = {
        **os.environ,
        "DEMO_HOST": HOST,
        "DEMO_PORT": str(layout.port("demo-app")),
        "PLATFORM_MYSQL_DSN": platform_dsn(layout, secrets),
        "REDIS_URL": f"redis://{HOST}:{layout.port('redis')}/0",
        "PROVIDER_URLS": provider_urls(layout),
        **provider_keys_env(secrets),
        "DEMO_ADMIN_TOKEN": secrets.demo_admin_token,
        "DEMO_TASKS_PER_SECOND": os.environ.get("DEMO_TASKS_PER_SECOND", DEMO_TASKS_PER_SECOND),
        **_noise().demo_env(),
    }
    return Service(
        name="demo-app",
        address=layout.url("demo-app"),
        argv=[shutil.which("node") or "node", "src/server.js"],
        ready=readiness.http(f"{layout.url('demo-app')}/healthz"),
        phase=2,
        ready_timeout=45.0,
        env=env,
        cwd=DEMO_PLATFORM_DIR,
    )


def _exporter(layout: StackLayout, secrets: StackSecrets) -> Service:
    # The exporter reads the same stack.env a user would load, plus nothing else.
    env = {**os.environ, **stack_env(layout, secrets)}
    return Service(
        name="exporter",
        address=layout.url("exporter"),
        argv=[
            sys.executable,
            "-m",
            "obsctl",
            "exporter",
            "--config",
            str(demo_project().exporter_config),
        ],
        ready=readiness.http(f"{layout.url('exporter')}/metrics"),
        phase=3,
        env=env,
    )


def platform_dsn(layout: StackLayout, secrets: StackSecrets) -> str:
    """The platform's read-write DSN."""
    return mysql_setup.dsn(
        mysql_setup.PLATFORM_USER, secrets.platform_mysql_password, HOST, layout.port("mariadb")
    )


def exporter_dsn(layout: StackLayout, secrets: StackSecrets) -> str:
    """The exporter's read-only DSN."""
    return mysql_setup.dsn(
        mysql_setup.EXPORTER_USER, secrets.exporter_mysql_password, HOST, layout.port("mariadb")
    )


def _create_bucket(layout: StackLayout, secrets: StackSecrets) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=layout.url("s3"),
        aws_access_key_id=secrets.cos_access_key,
        aws_secret_access_key=secrets.cos_secret_key,
        region_name=COS_REGION,
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if COS_BUCKET not in existing:
        client.create_bucket(
            Bucket=COS_BUCKET, CreateBucketConfiguration={"LocationConstraint": COS_REGION}
        )


def stack_env(layout: StackLayout, secrets: StackSecrets) -> dict[str, str]:
    """The variables written to stack.env for the exporter, the CLI and tests."""
    return {
        "OBSCTL_STACK_DIR": str(layout.root),
        "OBSCTL_PORT_BASE": str(layout.port_base),
        "OBSCTL_LISTEN": f"{HOST}:{layout.port('exporter')}",
        "OBSCTL_MYSQL_DSN": exporter_dsn(layout, secrets),
        "OBSCTL_REDIS_URL": f"redis://{HOST}:{layout.port('redis')}/0",
        "OBSCTL_COS_ENDPOINT": layout.url("s3"),
        "OBSCTL_COS_BUCKET": COS_BUCKET,
        "OBSCTL_COS_ACCESS_KEY": secrets.cos_access_key,
        "OBSCTL_COS_SECRET_KEY": secrets.cos_secret_key,
        "OBSCTL_COS_REGION": COS_REGION,
        "PLATFORM_MYSQL_DSN": platform_dsn(layout, secrets),
        "PROMETHEUS_URL": layout.url("prometheus"),
        "ALERTMANAGER_URL": layout.url("alertmanager"),
        "NODE_EXPORTER_URL": layout.url("node-exporter"),
        "DEMO_APP_URL": layout.url("demo-app"),
        "DEMO_ADMIN_TOKEN": secrets.demo_admin_token,
        "PROVIDER_URLS": provider_urls(layout),
        **{f"PROVIDER_{name.upper()}_URL": layout.url(f"provider-{name}") for name in PROVIDERS},
        **provider_keys_env(secrets),
        "DINGTALK_SINK_URL": layout.url("dingtalk"),
        "SMS_SINK_URL": layout.url("sms"),
        **{
            f"{robot_env(target)}_{part.upper()}": getattr(robot, part)
            for target, robot in secrets.dingtalk_robots.items()
            for part in ("token", "secret")
        },
        "RELAY_URL": layout.url("relay"),
        **relay_env(layout, secrets),
        "DEADMAN_URL": layout.url("deadman"),
        **deadman_env(layout, secrets),
        "SMTP_SMARTHOST": f"{HOST}:{layout.port('smtp')}",
        "SMTP_SINK_DIR": str(layout.state("smtp") / "maildir"),
    }


def _run_checked(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise StackError(f"`{cmd[0]}` exited {proc.returncode}; see {log}\n{tail(log)}")


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, indented for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"    (no log at {path})"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def describe(services: list[Service]) -> str:
    """A JSON description of the stack's servers (name, address)."""
    return json.dumps([{"name": s.name, "address": s.address} for s in services])
