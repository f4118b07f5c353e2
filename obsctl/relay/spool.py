"""A robot queue's accepted-but-undelivered alerts on disk, so a restart does not lose them.

One JSONL file per target: ``{"add": id, "entry": {...}}`` when an alert is accepted (written
and fsynced before the webhook is answered), ``{"done": [ids]}`` once delivered. Loading
replays the file; it is rewritten with just the open entries at start and emptied whenever
nothing is left open.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from obsctl.relay.compose import Entry

log = logging.getLogger(__name__)


class Spool:
    """The durable part of one target's queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: dict[str, Entry] = {}

    def load(self) -> list[tuple[str, Entry]]:
        """Open entries left by a previous run, oldest first; the file is compacted."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entries: dict[str, Entry] = {}
        skipped = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    if "add" in record:
                        entries[str(record["add"])] = Entry.model_validate(record["entry"])
                    for done in record.get("done", []):
                        entries.pop(str(done), None)
                except (ValueError, TypeError, ValidationError):
                    skipped += 1  # e.g. a line cut short by a crash
        if skipped:
            log.warning("%s: skipped %d unreadable lines", self.path, skipped)
        self._open = entries
        self._rewrite()
        return list(entries.items())

    def add(self, items: Iterable[tuple[str, Entry]]) -> None:
        """Persist accepted entries; raises OSError when they could not be written."""
        items = list(items)
        lines: list[dict[str, object]] = [
            {"add": key, "entry": entry.model_dump(mode="json")} for key, entry in items
        ]
        self._append(lines)
        self._open.update(items)

    def done(self, keys: Iterable[str]) -> None:
        """Mark entries delivered; the file is emptied when none is left open."""
        keys = [key for key in keys if key in self._open]
        if not keys:
            return
        for key in keys:
            del self._open[key]
        try:
            if self._open:
                self._append([{"done": keys}])
            else:
                self._rewrite()
        except OSError as exc:
            log.error("%s: cannot record delivery (%s); may resend after a restart", self.path, exc)

    def _append(self, records: list[dict[str, object]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _rewrite(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for key, entry in self._open.items():
                record = {"add": key, "entry": entry.model_dump(mode="json")}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
