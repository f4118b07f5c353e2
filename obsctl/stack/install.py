"""Install what the local stack needs and is missing: Debian packages, Python modules, npm."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from obsctl.stack.checkout import ROOT

DEMO_PLATFORM_DIR = Path(__file__).resolve().parent / "demo_platform"
# npm projects: the demo platform, and fixtures that need another major version of bullmq.
NPM_PROJECTS = (DEMO_PLATFORM_DIR, ROOT / "tests" / "fixtures" / "bullmq5")
CONSTRAINTS = ROOT / "constraints.txt"

# The binary each Debian package provides; a package is installed only when its binary is missing.
APT_PACKAGES: dict[str, str] = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    # The host's CPU, memory and filesystems (HostMemoryHigh, HostDiskFillingUp, HostCpuSaturated).
    "prometheus-node-exporter": "prometheus-node-exporter",
    "node": "nodejs",
    "npm": "npm",
    # A real IMAP server: drill tests read alert emails back the way a remote target's are read.
    "dovecot": "dovecot-imapd",
    # Validates compose.yaml offline (no Docker engine runs on these machines).
    "docker-compose": "docker-compose",
    # A real headless browser for the tests of the relay's claim page (selenium drives it).
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
# Importable module -> pip requirement, for the stand-in servers run from this venv (the `stack`
# extra, for an install without it).
PYTHON_MODULES: dict[str, str] = {
    "moto": "moto[server]",
    "aiosmtpd": "aiosmtpd",
    "flask": "flask",
    "boto3": "boto3",
}

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Exit code 101 tells invoke-rc.d "action forbidden": packages install without starting services
# that would listen on every interface and fight the stack for its ports.
_POLICY_SCRIPT = "#!/bin/sh\n# written by obsctl while installing packages\nexit 101\n"

Say = Callable[[str], None]


class InstallError(RuntimeError):
    """An installer command failed."""


def missing_apt_packages(binaries: Iterable[str] = APT_PACKAGES) -> list[str]:
    """Debian packages whose binaries are not on PATH, in a stable order."""
    wanted = {APT_PACKAGES[b] for b in binaries if shutil.which(b) is None}
    return sorted(wanted)


def install_apt(packages: list[str], say: Say) -> None:
    """apt-get install packages without letting their init scripts start services."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise InstallError(f"missing Debian packages {', '.join(packages)}; install them as root")
    say(f"installing Debian packages: {' '.join(packages)}")
    created_policy = not POLICY_RC_D.exists()
    if created_policy:
        POLICY_RC_D.write_text(_POLICY_SCRIPT)
        POLICY_RC_D.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "update", "-q"], env=env)
        _run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            env=env,
        )
    finally:
        if created_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def install_python_modules(say: Say) -> None:
    """pip install (pinned by constraints.txt) the stand-in servers' modules if missing."""
    missing = [req for mod, req in PYTHON_MODULES.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    say(f"installing Python packages: {' '.join(missing)}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", *missing]
    if CONSTRAINTS.exists():
        cmd += ["-c", str(CONSTRAINTS)]
    _run(cmd)


def install_npm_packages(say: Say, project: Path = DEMO_PLATFORM_DIR) -> None:
    """npm ci the demo platform when node_modules is missing or older than its lock file."""
    lock = project / "package-lock.json"
    stamp = project / "node_modules" / ".package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    say(f"installing npm packages in {project.name}/")
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=project)


def install_all(say: Say) -> None:
    """Everything `stack up` needs, installed only where missing."""
    install_apt(missing_apt_packages(), say)
    install_python_modules(say)
    for project in NPM_PROJECTS:
        if (project / "package-lock.json").exists():
            install_npm_packages(say, project)


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise InstallError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail}")
