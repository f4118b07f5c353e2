"""The relay's own texts (claim page, claim notice, escalation) from obsctl/relay/templates/."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def template_text(name: str) -> str:
    """A file of the relay's templates directory."""
    return (resources.files("obsctl.relay") / "templates" / name).read_text("utf-8")


def load_words(name: str) -> dict[Any, dict[str, str]]:
    """`<name>.words.yaml`: per language, the words of one page or message."""
    words: dict[Any, dict[str, str]] = yaml.safe_load(template_text(f"{name}.words.yaml"))
    return words
