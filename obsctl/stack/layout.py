"""Where each server of a local stack listens and keeps its state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT_BASE = 18300
HOST = "127.0.0.1"

# Offsets from the port base; the obsctl servers keep the offsets of their default ports (18310…).
PORT_OFFSETS: dict[str, int] = {
    "mariadb": 0,
    "redis": 1,
    "s3": 2,
    "smtp": 3,
    "prometheus": 4,
    "alertmanager": 5,
    "provider-alpha": 6,
    "provider-beta": 7,
    "dingtalk": 8,
    "demo-app": 9,
    "exporter": 10,
    "relay": 11,
    "deadman": 12,
    "node-exporter": 13,
    "sms": 14,
}
PROVIDERS = ("alpha", "beta")


@dataclass(frozen=True)
class StackLayout:
    """Ports and paths of one stack, derived from its directory and port base."""

    root: Path
    port_base: int = DEFAULT_PORT_BASE

    def port(self, name: str) -> int:
        """Port of the named server."""
        return self.port_base + PORT_OFFSETS[name]

    def url(self, name: str) -> str:
        """HTTP base URL of the named server."""
        return f"http://{HOST}:{self.port(name)}"

    def state(self, name: str) -> Path:
        """State directory of one server (created on demand by the caller)."""
        return self.root / name

    @property
    def run_dir(self) -> Path:
        """Process records and the stack description."""
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        """One log file per server."""
        return self.root / "logs"

    @property
    def env_file(self) -> Path:
        """The stack.env file other tools source."""
        return self.root / "stack.env"

    @property
    def processes_file(self) -> Path:
        """The record of every process the stack started (pid and start time)."""
        return self.run_dir / "processes.json"

    @property
    def secrets_file(self) -> Path:
        """Generated passwords and keys, kept across restarts of the same stack."""
        return self.run_dir / "secrets.json"

    @property
    def deadman_state_dir(self) -> Path:
        """The dead man's switch's state (each heartbeat, the notices it owes, a drill's mark)."""
        return self.state("deadman") / "state"

    @property
    def mariadb_socket(self) -> Path:
        """Unix socket of MariaDB, used for root-only setup."""
        return self.state("mariadb") / "mysqld.sock"

    def log(self, name: str) -> Path:
        """Log file of one server."""
        return self.log_dir / f"{name}.log"
