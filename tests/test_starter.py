"""The starter project `obsctl init` writes: its commented examples are configs that load."""

from __future__ import annotations

import re
from pathlib import Path

from obsctl.exporter.config import load

STARTER = Path(__file__).resolve().parents[1] / "obsctl" / "starter"
ENVIRON = {
    "OBSCTL_MYSQL_DSN": "mysql://reader:pw@127.0.0.1:3306/platform",
    "OBSCTL_REDIS_URL": "redis://127.0.0.1:6379/0",
    "OPENAI_API_KEY": "sk-starter-example",
}


def uncomment(text: str, section: str) -> str:
    """The text with the commented-out top-level `section` turned on."""
    lines = text.splitlines()
    start = lines.index(f"# {section}:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("#   "):
        end += 1
    body = [line[2:] for line in lines[start + 1 : end]]
    out = [*lines[:start], f"{section}:", *body, *lines[end:]]
    return "\n".join(out) + "\n"


def test_the_starter_exporter_config_loads_as_shipped() -> None:
    config = load(STARTER / "obsctl-exporter.yml", ENVIRON)
    assert config.providers == []


def test_the_starter_provider_example_loads_with_its_key_secret(tmp_path: Path) -> None:
    text = uncomment((STARTER / "obsctl-exporter.yml").read_text(), "providers")
    assert re.search(r"^providers:\n  - name: openai\b", text, re.M)
    path = tmp_path / "obsctl-exporter.yml"
    path.write_text(text)
    (provider,) = load(path, ENVIRON).providers
    assert provider.name == "openai" and provider.path == "/v1/models"
    header = provider.headers["Authorization"]
    assert header.get_secret_value() == "Bearer sk-starter-example"
    assert "sk-starter-example" not in repr(provider)
