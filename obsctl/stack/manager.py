"""`stack up`, `down` and `status`: start the servers, stop exactly those, say how they are."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from obsctl.stack import envfile, install
from obsctl.stack.layout import DEFAULT_PORT_BASE, HOST, StackLayout
from obsctl.stack.process import ProcessRecord, ProcessTable, is_running, spawn, stop
from obsctl.stack.services import Service, StackError, build, load_secrets, stack_env, tail

Say = Callable[[str], None]
_POLL_INTERVAL = 0.1
CLIENT_SERVERS = frozenset({"demo-app", "exporter", "relay", "deadman"})


@dataclass(frozen=True)
class ServerStatus:
    """How one server of the stack is doing."""

    name: str
    address: str
    pid: int | None
    running: bool
    answering: bool


def layout_for(root: Path, port_base: int | None = None) -> StackLayout:
    """The layout of the stack in root: the given port base, else the recorded one, else default."""
    root = root.resolve()
    recorded = _read_stack_json(root).get("port_base")
    base = port_base if port_base is not None else recorded
    return StackLayout(root=root, port_base=int(base) if base is not None else DEFAULT_PORT_BASE)


def up(root: Path, port_base: int | None, say: Say, do_install: bool = True) -> StackLayout:
    """Start every server that is not already running; a fully running stack is left as it is."""
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        layout = layout_for(root, port_base)
        table = ProcessTable(layout.processes_file)
        running = {name for name, rec in table.load().items() if is_running(rec)}
        recorded_base = _read_stack_json(layout.root).get("port_base")
        if running and recorded_base is not None and recorded_base != layout.port_base:
            raise StackError(
                f"{layout.root} is already up on port base {recorded_base}; run "
                f"`obsctl stack down --dir {layout.root}` before moving it to {layout.port_base}"
            )
        if do_install:
            install.install_all(say)
        secrets = load_secrets(layout)
        services = build(layout, secrets)
        to_start = [s for s in services if s.name not in running]
        if not to_start:
            say(f"stack in {layout.root} is already up; nothing to do")
            return layout
        if running:
            say(f"already running: {', '.join(sorted(running))}")
        _check_ports_free(to_start)
        _write_stack_json(layout)
        _start(layout, table, to_start, say)
        envfile.write(layout.env_file, stack_env(layout, secrets))
        return layout


def down(root: Path, say: Say) -> bool:
    """Stop every process the stack started, newest first; True if there was anything to stop."""
    layout = layout_for(root)
    table = ProcessTable(layout.processes_file)
    if not table.path.exists():
        say(f"nothing recorded as running in {layout.root}")
        return False
    with _locked(layout.root):
        records = table.load()
        if not records:
            say(f"nothing recorded as running in {layout.root}")
            return False
        ordered = list(reversed(list(records.values())))
        # Clients of the other servers go first, so they do not log a storm of connection errors.
        waves = [
            [r for r in ordered if r.name in CLIENT_SERVERS],
            [r for r in ordered if r.name not in CLIENT_SERVERS],
        ]
        for wave in waves:
            with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
                outcomes = list(pool.map(_stop_fully, wave))
            for record, outcome in zip(wave, outcomes, strict=True):
                say(f"{record.name:<16} {outcome}")
                table.remove(record.name)
        return True


def _stop_fully(record: ProcessRecord) -> str:
    outcome = stop(record)
    stragglers = _stop_session_leftovers(record)
    return outcome + (f" (+{stragglers} leftover child processes)" if stragglers else "")


def status(root: Path) -> list[ServerStatus]:
    """Each server's address, pid, and whether it is running and answering."""
    layout = layout_for(root)
    if not layout.secrets_file.exists():
        raise StackError(f"no stack in {layout.root}: run `obsctl stack up --dir {layout.root}`")
    services = build(layout, load_secrets(layout))
    records = ProcessTable(layout.processes_file).load()

    def one(service: Service) -> ServerStatus:
        record = records.get(service.name)
        running = record is not None and is_running(record)
        return ServerStatus(
            name=service.name,
            address=service.address,
            pid=record.pid if record and running else None,
            running=running,
            answering=running and service.ready(),
        )

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(one, services))


def _start(layout: StackLayout, table: ProcessTable, services: list[Service], say: Say) -> None:
    started: list[ProcessRecord] = []
    began = time.monotonic()
    try:
        for phase in sorted({s.phase for s in services}):
            batch = [s for s in services if s.phase == phase]
            procs: dict[str, subprocess.Popen[bytes]] = {}
            for service in batch:
                if service.prepare:
                    service.prepare()
                record, proc = spawn(
                    service.name, service.argv, layout.log(service.name), service.env, service.cwd
                )
                table.add(record)
                started.append(record)
                procs[service.name] = proc
            _wait_ready(layout, batch, procs, say, began)
    except BaseException:
        for record in reversed(started):
            stop(record)
            _stop_session_leftovers(record)
            table.remove(record.name)
        if started:
            say(f"stopped again what this run had started: {', '.join(r.name for r in started)}")
        raise


def _wait_ready(
    layout: StackLayout,
    batch: list[Service],
    procs: dict[str, subprocess.Popen[bytes]],
    say: Say,
    began: float,
) -> None:
    pending = {s.name: s for s in batch}
    deadlines = {s.name: time.monotonic() + s.ready_timeout for s in batch}
    with ThreadPoolExecutor(max_workers=max(1, len(batch))) as pool:
        while pending:
            for name in list(pending):
                code = procs[name].poll()
                if code is not None:
                    raise StackError(
                        f"{name} exited with code {code} during start-up; "
                        f"last lines of {layout.log(name)}:\n{tail(layout.log(name))}"
                    )
            results = dict(
                zip(pending, pool.map(lambda s: s.ready(), pending.values()), strict=True)
            )
            for name, ready in results.items():
                service = pending[name]
                if ready:
                    if service.after_ready:
                        service.after_ready()
                    say(f"{name:<16} ready at {service.address} ({time.monotonic() - began:.1f}s)")
                    del pending[name]
                elif time.monotonic() > deadlines[name]:
                    raise StackError(
                        f"{name} did not answer at {service.address} within "
                        f"{service.ready_timeout:.0f}s; last lines of {layout.log(name)}:\n"
                        f"{tail(layout.log(name))}"
                    )
            if pending:
                time.sleep(_POLL_INTERVAL)


def _check_ports_free(services: list[Service]) -> None:
    problems = []
    for service in services:
        for port in service.ports:
            if not _port_free(port):
                problems.append(
                    f"port {port} ({service.name}) is already in use by {_holder(port)}"
                )
    if problems:
        raise StackError("cannot start the stack:\n  " + "\n  ".join(problems))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port left in TIME_WAIT by a stopped stack would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _holder(port: int) -> str:
    """Who listens on port, as 'pid N (name: cmdline)', as far as this user can see."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return "another process (run as root to see which)"
    for conn in conns:
        if (
            conn.laddr
            and conn.laddr.port == port
            and conn.status == psutil.CONN_LISTEN
            and conn.pid
        ):
            try:
                proc = psutil.Process(conn.pid)
                cmdline = " ".join(proc.cmdline())[:120]
                return f"pid {conn.pid} ({proc.name()}: {cmdline})"
            except psutil.NoSuchProcess:
                return f"pid {conn.pid}"
    return "another process"


def _stop_session_leftovers(record: ProcessRecord) -> int:
    """Kill processes left in the server's session after its leader died (e.g. after kill -9)."""
    count = 0
    for proc in psutil.process_iter(["pid", "create_time", "status"]):
        try:
            if proc.pid in (os.getpid(), record.pid) or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.pid) != record.pid:
                continue
            if record.older(proc.pid, proc.info["create_time"]):
                continue  # older than our server: the session id was reused, not ours
            proc.kill()
            count += 1
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return count


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise up/down on one stack directory."""
    lock_path = root / "run" / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(f"another obsctl is changing the stack in {root}; try again") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_stack_json(root: Path) -> dict[str, int]:
    path = root / "run" / "stack.json"
    if not path.exists():
        return {}
    data: dict[str, int] = json.loads(path.read_text())
    return data


def _write_stack_json(layout: StackLayout) -> None:
    path = layout.run_dir / "stack.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"port_base": layout.port_base}))
