"""The business reader's checkpoint: what a new leader needs to continue the counters.

The leader saves it (fenced by its lease token) after every complete read, and publishes only
what it saved; a new leader loads it and re-reads from its watermark - overlap with the same
remembered ids, so every task is counted once and no counter ever goes back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from obsctl.exporter.probes.business_ledger import QuotaLedger, QuotaTotals, TaskLedger

if TYPE_CHECKING:
    from obsctl.exporter.probes.business_config import BusinessConfig

VERSION = 1


@dataclass
class ReaderState:
    """Everything of a business reader that outlives one leader."""

    ledger: TaskLedger
    watermark: datetime
    newest: datetime | None
    rows_read: int
    quotas: QuotaLedger


def dump(state: ReaderState) -> str:
    """The checkpoint as JSON text."""
    latest = state.quotas.latest
    return json.dumps(
        {
            "version": VERSION,
            "ledger": state.ledger.dump(),
            "watermark": state.watermark.isoformat(),
            "newest": state.newest.isoformat() if state.newest else None,
            "rows_read": state.rows_read,
            "quotas": {
                "latest": asdict(latest) if latest else None,
                "consumed": state.quotas.consumed,
            },
        },
        separators=(",", ":"),
    )


def load(text: str, config: BusinessConfig) -> ReaderState | None:
    """A reader state from a checkpoint (None if it was written by another format version)."""
    data: dict[str, Any] = json.loads(text)
    if data.get("version") != VERSION:
        return None
    saved = data["ledger"]
    ledger = TaskLedger(
        datetime.fromisoformat(saved["counts_from"]),
        config.features,
        saved["providers"],
        config.latency_buckets,
        config.tables.tasks.statuses.terminal(),
    )
    ledger.restore(saved)
    quotas = data["quotas"]
    latest = QuotaTotals(**quotas["latest"]) if quotas["latest"] else None
    return ReaderState(
        ledger=ledger,
        watermark=datetime.fromisoformat(data["watermark"]),
        newest=datetime.fromisoformat(data["newest"]) if data["newest"] else None,
        rows_read=int(data["rows_read"]),
        quotas=QuotaLedger(latest, int(quotas["consumed"])),
    )
