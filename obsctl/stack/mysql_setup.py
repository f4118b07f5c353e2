"""Databases and accounts of the stack's MariaDB, applied idempotently as root over the socket."""

from __future__ import annotations

from pathlib import Path

import pymysql

PLATFORM_DB = "platform"
PLATFORM_USER = "platform"
EXPORTER_USER = "obsctl_exporter"
# The exporter is a sidecar: cap its connections so a bug in it can never starve the platform.
EXPORTER_MAX_CONNECTIONS = 10


def statements(platform_password: str, exporter_password: str) -> list[tuple[str, tuple[str, ...]]]:
    """The SQL that brings the server to the wanted state, with its parameters."""
    exporter = f"'{EXPORTER_USER}'@'127.0.0.1'"
    return [
        (f"CREATE DATABASE IF NOT EXISTS `{PLATFORM_DB}` CHARACTER SET utf8mb4", ()),
        (
            f"CREATE USER IF NOT EXISTS '{PLATFORM_USER}'@'127.0.0.1' IDENTIFIED BY %s",
            (platform_password,),
        ),
        (f"ALTER USER '{PLATFORM_USER}'@'127.0.0.1' IDENTIFIED BY %s", (platform_password,)),
        (f"GRANT ALL PRIVILEGES ON `{PLATFORM_DB}`.* TO '{PLATFORM_USER}'@'127.0.0.1'", ()),
        (
            f"CREATE USER IF NOT EXISTS '{EXPORTER_USER}'@'127.0.0.1' IDENTIFIED BY %s",
            (exporter_password,),
        ),
        (
            f"ALTER USER '{EXPORTER_USER}'@'127.0.0.1' IDENTIFIED BY %s"
            f" WITH MAX_USER_CONNECTIONS {EXPORTER_MAX_CONNECTIONS}",
            (exporter_password,),
        ),
        # Least privilege: read the platform's tables, see the processlist and replication state.
        (f"GRANT SELECT ON `{PLATFORM_DB}`.* TO '{EXPORTER_USER}'@'127.0.0.1'", ()),
        (f"GRANT SELECT ON `performance_schema`.* TO '{EXPORTER_USER}'@'127.0.0.1'", ()),
        (f"GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO {exporter}", ()),
        ("FLUSH PRIVILEGES", ()),
    ]


def apply(socket_path: Path, platform_password: str, exporter_password: str) -> None:
    """Create the platform database and both accounts with their grants."""
    conn = pymysql.connect(unix_socket=str(socket_path), user="root", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            for sql, params in statements(platform_password, exporter_password):
                cur.execute(sql, params or None)
        conn.commit()
    finally:
        conn.close()


def dsn(user: str, password: str, host: str, port: int, database: str = PLATFORM_DB) -> str:
    """A mysql:// DSN with the password URL-quoted."""
    from urllib.parse import quote

    return f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"
