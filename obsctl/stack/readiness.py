"""Checks that tell whether a server answers, each bounded by a short timeout."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pymysql

ReadyCheck = Callable[[], bool]


def tcp(host: str, port: int, timeout: float = 0.5) -> ReadyCheck:
    """Ready when a TCP connection is accepted."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return check


def smtp(host: str, port: int, timeout: float = 0.5) -> ReadyCheck:
    """Ready when the server sends an SMTP 220 greeting."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                return sock.recv(64).startswith(b"220")
        except OSError:
            return False

    return check


def http(url: str, timeout: float = 0.5, expect: int = 200) -> ReadyCheck:
    """Ready when GET url answers with the expected status."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=timeout).status_code == expect
        except httpx.HTTPError:
            return False

    return check


def redis_ping(host: str, port: int, timeout: float = 0.5) -> ReadyCheck:
    """Ready when Redis answers PING with PONG (it accepts TCP while still loading)."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def mariadb_socket(path: Path, timeout: float = 0.5) -> ReadyCheck:
    """Ready when root can run SELECT 1 over the unix socket."""

    def check() -> bool:
        try:
            conn = pymysql.connect(unix_socket=str(path), user="root", connect_timeout=timeout)
        except pymysql.MySQLError:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        finally:
            conn.close()

    return check
