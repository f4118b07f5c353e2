"""The servers of the local stack do what the rest of obsctl relies on."""

from __future__ import annotations

import mailbox
import smtplib
from email.message import EmailMessage
from pathlib import Path

import boto3
import httpx
import pymysql
import pytest
import redis

from obsctl.metric_names import HOST_FAMILIES, exposed
from obsctl.stack.services import NODE_COLLECTORS

from conftest import RunningStack, demo_config, mysql_connect, wait_for


def _mysql_errno(exc: pytest.ExceptionInfo[pymysql.MySQLError]) -> int:
    return int(exc.value.args[0])


def test_mariadb_runs_utf8mb4_with_performance_schema(stack: RunningStack) -> None:
    conn = mysql_connect(stack.env["PLATFORM_MYSQL_DSN"])
    with conn.cursor() as cur:
        cur.execute("SELECT @@character_set_server, @@performance_schema, @@bind_address")
        assert cur.fetchone() == ("utf8mb4", 1, "127.0.0.1")


def test_exporter_account_reads_but_cannot_write(stack: RunningStack) -> None:
    conn = mysql_connect(stack.env["OBSCTL_MYSQL_DSN"])
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM users")
        assert cur.fetchone()[0] >= 1000  # type: ignore[index]
        for sql in (
            "INSERT INTO users (nick) VALUES ('intruder')",
            "UPDATE quotas SET remaining = 0",
            "DELETE FROM tasks",
            "CREATE TABLE platform.hijack (id INT)",
            "DROP TABLE tasks",
        ):
            with pytest.raises(pymysql.MySQLError) as denied:
                cur.execute(sql)
            assert _mysql_errno(denied) in (1142, 1044), (sql, denied.value)


def test_exporter_account_sees_processlist_and_replication_state(stack: RunningStack) -> None:
    platform = mysql_connect(stack.env["PLATFORM_MYSQL_DSN"])
    exporter = mysql_connect(stack.env["OBSCTL_MYSQL_DSN"])
    with exporter.cursor() as cur:
        cur.execute("SELECT DISTINCT user FROM information_schema.processlist")
        users = {row[0] for row in cur.fetchall()}
        assert "platform" in users, "PROCESS privilege lets the exporter see other accounts"
        cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        assert int(cur.fetchone()[1]) >= 2  # type: ignore[index]
        cur.execute("SHOW SLAVE STATUS")  # needs SLAVE MONITOR; empty on a primary
        cur.execute("SHOW MASTER STATUS")  # needs REPLICATION CLIENT / BINLOG MONITOR
        cur.execute("SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest")
    platform.close()


def test_exporter_account_is_separate_and_has_a_connection_cap(stack: RunningStack) -> None:
    conn = mysql_connect(stack.env["OBSCTL_MYSQL_DSN"])
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), @@max_user_connections")
        user, _ = cur.fetchone()  # type: ignore[misc]
        assert user.startswith("obsctl_exporter@")
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
    assert "MAX_USER_CONNECTIONS 10" in grants
    assert "ALL PRIVILEGES" not in grants and "INSERT" not in grants


def test_redis_answers_and_keeps_nothing_on_disk(stack: RunningStack) -> None:
    client = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"])
    assert client.ping()
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("bind") == {"bind": "127.0.0.1"}


def test_cos_bucket_exists_and_takes_objects(stack: RunningStack) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.env["OBSCTL_COS_ENDPOINT"],
        aws_access_key_id=stack.env["OBSCTL_COS_ACCESS_KEY"],
        aws_secret_access_key=stack.env["OBSCTL_COS_SECRET_KEY"],
        region_name=stack.env["OBSCTL_COS_REGION"],
    )
    bucket = stack.env["OBSCTL_COS_BUCKET"]
    s3.put_object(Bucket=bucket, Key="tests/hello.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="tests/hello.txt")["Body"].read() == b"hello"
    s3.delete_object(Bucket=bucket, Key="tests/hello.txt")


def test_smtp_sink_keeps_delivered_mail(stack: RunningStack) -> None:
    host, port = stack.env["SMTP_SMARTHOST"].split(":")
    message = EmailMessage()
    message["From"] = "alertmanager@localhost"
    message["To"] = "oncall@localhost"
    message["Subject"] = "obsctl smtp sink test"
    message.set_content("hello")
    with smtplib.SMTP(host, int(port), timeout=5) as smtp:
        smtp.send_message(message)
    box = Path(stack.env["SMTP_SINK_DIR"])
    subjects = wait_for(
        "the mail in the sink's maildir",
        lambda: [m["Subject"] for m in mailbox.Maildir(box, create=False)],
        timeout=5,
    )
    assert "obsctl smtp sink test" in subjects


def test_prometheus_sends_alerts_to_the_stacks_alertmanager(stack: RunningStack) -> None:
    def active() -> list[str]:
        body = httpx.get(f"{stack.env['PROMETHEUS_URL']}/api/v1/alertmanagers", timeout=5).json()
        return [am["url"] for am in body["data"]["activeAlertmanagers"]]

    urls = wait_for("Prometheus to discover Alertmanager", active, timeout=20)
    assert any(stack.env["ALERTMANAGER_URL"].split("//")[1] in url for url in urls)
    status = httpx.get(f"{stack.env['ALERTMANAGER_URL']}/api/v2/status", timeout=5).json()
    assert status["cluster"]["status"] == "disabled"


def test_prometheus_scrapes_the_hosts_node_exporter(stack: RunningStack) -> None:
    """The host alerts read node_exporter: the stack's own runs on loopback and is scraped."""
    node = demo_config().selectors.node

    def scraped() -> list[dict[str, object]]:
        answer = httpx.get(
            f"{stack.env['PROMETHEUS_URL']}/api/v1/query",
            params={"query": f"up{{{node}}}"},
            timeout=5,
        ).json()
        return [r for r in answer["data"]["result"] if r["value"][1] == "1"]

    [target] = wait_for("Prometheus to scrape node_exporter (up == 1)", scraped, timeout=30)
    assert target["metric"]["instance"] == stack.env["NODE_EXPORTER_URL"].split("//")[1]
    metrics = httpx.get(f"{stack.env['NODE_EXPORTER_URL']}/metrics", timeout=5).text
    names = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line[:1] != "#"}
    assert names >= exposed(HOST_FAMILIES), sorted(exposed(HOST_FAMILIES) - names)
    # Only the collectors the rules and dashboards read: no ARP, hwmon, thermal, NFS, ...
    collectors = {
        line.split('collector="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("node_scrape_collector_success{")
    }
    assert collectors == set(NODE_COLLECTORS)
