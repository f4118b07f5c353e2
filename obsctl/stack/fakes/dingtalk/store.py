"""Every request the robot fake received: kept in memory and appended to a JSONL file."""

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("dingtalk")


class MessageStore:
    """An append-only record list mirrored line by line into `path`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._records = self._load(path)
        self._file = path.open("a", encoding="utf-8")

    @staticmethod
    def _load(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        records, skipped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                skipped += 1  # e.g. a line cut short when the process was killed
        if skipped:
            log.warning("skipped %d unreadable lines of %s", skipped, path)
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Keep `record` and write it to the file at once, so readers see it immediately."""
        self._records.append(record)
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def query(self, token: str | None, accepted: bool | None) -> list[dict[str, Any]]:
        """Return the records, oldest first, filtered by token and acceptance when given."""
        return [
            record
            for record in self._records
            if (token is None or record["token"] == token)
            and (accepted is None or record["accepted"] is accepted)
        ]

    def clear(self) -> None:
        """Forget every record and empty the file."""
        self._records.clear()
        self._file.seek(0)
        self._file.truncate()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
