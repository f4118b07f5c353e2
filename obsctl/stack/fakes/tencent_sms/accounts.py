"""The SMS fake's accounts: API keys, and the app, signatures and templates each may use."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_PLACEHOLDER = re.compile(r"\{([0-9]+)\}")


class Account(BaseModel):
    """One CAM API key of the fake, with what Tencent has approved for it."""

    model_config = ConfigDict(extra="forbid")

    secret_key: str = Field(min_length=1)
    sdk_app_id: str
    sign_names: list[str] = Field(min_length=1)
    # Template id -> its approved text, variables written {1}, {2}, ...
    templates: dict[str, str] = Field(min_length=1)
    # Longest value a template variable may have.
    param_max_chars: int = 12

    def variables(self, template_id: str) -> int:
        """How many variables the template has."""
        return len(set(_PLACEHOLDER.findall(self.templates[template_id])))

    def text(self, template_id: str, sign_name: str, params: list[str]) -> str:
        """The text the phone shows: 【signature】 and the template filled in."""
        filled = _PLACEHOLDER.sub(lambda m: params[int(m[1]) - 1], self.templates[template_id])
        return f"【{sign_name}】{filled}"


class AccountsFileError(Exception):
    """The accounts file cannot be used; the message says where."""


def load_accounts(path: Path) -> dict[str, Account]:
    """Read ``{SecretId: account}`` from a JSON file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(secret_id): Account.model_validate(a) for secret_id, a in raw.items()}
    except (OSError, ValueError, AttributeError) as exc:
        detail = str(exc) if not isinstance(exc, ValidationError) else exc.errors()[0]["msg"]
        raise AccountsFileError(f"{path}: {detail}") from None
