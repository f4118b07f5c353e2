"""Start a fake as a child process on a free loopback port and wait until it answers."""

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import httpx

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningFake:
    """A fake server running as a child process."""

    process: subprocess.Popen[bytes]
    base_url: str
    _log: IO[bytes]

    def logs(self) -> str:
        """Return everything the fake wrote to stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")

    def stop(self, timeout: float = 5.0) -> int:
        """Send SIGTERM, wait for the exit (SIGKILL after `timeout`) and return the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        """Stop the fake and release its log."""
        self.stop()
        self._log.close()


def start_fake(
    module: str,
    args: Sequence[str],
    *,
    port: int | None = None,
    ready_path: str = "/_control",
    timeout: float = 10.0,
) -> RunningFake:
    """Run ``python -m module --host 127.0.0.1 --port P *args`` and wait for `ready_path`."""
    port = port or free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - RunningFake owns it and closes it
    command = [sys.executable, "-m", module, "--host", LOOPBACK, "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    fake = RunningFake(process, f"http://{LOOPBACK}:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = fake.logs()
            fake.close()
            raise RuntimeError(f"{module} exited with {process.returncode}:\n{output}")
        try:
            httpx.get(fake.base_url + ready_path, timeout=0.5)
            return fake
        except httpx.TransportError:
            time.sleep(0.05)
    output = fake.logs()
    fake.close()
    raise RuntimeError(f"{module} did not answer within {timeout} s:\n{output}")
