"""The relay's record of the messages DingTalk accepted: proof of delivery, and history.

DingTalk offers no API to read a group's messages back, so a drill against a real robot cannot
look in the group. The relay is the last hop that knows: a message counts as delivered only when
DingTalk answered errcode 0. The most recent are kept in memory (``GET /api/v1/deliveries``);
with a spool directory every delivery is also appended to ``deliveries.jsonl`` there (rotated
past MAX_FILE_BYTES, one old file kept) and the newest are read back at start, so a restart
keeps them and ``obsctl report alerts --relay-url`` can say when each episode reached a robot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from obsctl.relay.alertmanager import Alert

log = logging.getLogger(__name__)

LOG_FILE = "deliveries.jsonl"
MAX_FILE_BYTES = 16 * 1024 * 1024
# The most a history read returns (two full files hold fewer for messages of a few KB).
MAX_HISTORY = 100_000
# Labels kept per delivered alert, and the length of each value: the history needs to match
# an alert, not to hold whatever a rule put in its labels.
MAX_LABELS, MAX_VALUE_CHARS = 40, 200


@dataclass(frozen=True)
class Delivery:
    """One message a robot accepted, and the alerts it carried."""

    sent_at: float
    target: str
    title: str
    text: str
    alerts: int
    # Per alert of the message: its labels, status and start (unix s; None when unknown).
    episodes: tuple[dict[str, Any], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /api/v1/deliveries`` and written to the log file."""
        row = asdict(self)
        row["episodes"] = list(self.episodes)
        return row


def episode_of(alert: Alert) -> dict[str, Any]:
    """What the history keeps of one delivered alert."""
    labels = dict(list(alert.labels.items())[:MAX_LABELS])
    return {
        "labels": {key: value[:MAX_VALUE_CHARS] for key, value in labels.items()},
        "status": alert.status,
        "startsAt": alert.startsAt.timestamp() if alert.startsAt else None,
    }


class DeliveryLog:
    """A bounded list of recent deliveries across every target, mirrored to a file if given."""

    def __init__(self, size: int, directory: Path | None = None) -> None:
        self._entries: deque[Delivery] = deque(maxlen=size)
        self._path = directory / LOG_FILE if directory is not None else None
        self._file: IO[str] | None = None
        if self._path is not None:
            self._entries.extend(_read_tail(self._path, size))
            self._open()

    def record(self, target: str, title: str, text: str, alerts: int,
               delivered: Iterable[Alert] = ()) -> None:  # fmt: skip
        """Remember that `target` accepted a message just now."""
        entry = Delivery(time.time(), target, title, text, alerts,
                         tuple(episode_of(a) for a in delivered))  # fmt: skip
        self._entries.append(entry)
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(entry.as_json(), ensure_ascii=False) + "\n")
            self._file.flush()
            if self._file.tell() > MAX_FILE_BYTES:
                self._rotate()
        except OSError as exc:
            log.error("cannot write %s (%s); deliveries are kept in memory only", self._path,
                      exc.strerror)  # fmt: skip
            self.close()

    def since(self, after: float, target: str | None = None) -> list[Delivery]:
        """Deliveries at or after unix time `after`, optionally for one target, oldest first."""
        return _matching(self._entries, after, target)

    def reaches_back(self, after: float) -> bool:
        """Whether memory holds every delivery since `after` (else the file holds more)."""
        if self._path is None or len(self._entries) < (self._entries.maxlen or 0):
            return True
        return bool(self._entries) and self._entries[0].sent_at <= after

    def from_file(self, after: float, target: str | None = None) -> list[Delivery]:
        """Like since(), read from the log file and its rotated one (blocking: call in a thread)."""
        if self._path is None:
            return []
        return _matching(_read_tail(self._path, MAX_HISTORY), after, target)

    def close(self) -> None:
        """Close the file (records go on in memory)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _open(self) -> None:
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", encoding="utf-8")
        except OSError as exc:
            log.error("cannot open %s (%s); deliveries are kept in memory only", self._path,
                      exc.strerror)  # fmt: skip

    def _rotate(self) -> None:
        assert self._path is not None
        self.close()
        os.replace(self._path, self._path.with_name(LOG_FILE + ".1"))
        self._open()


def _matching(entries: Iterable[Delivery], after: float, target: str | None) -> list[Delivery]:
    return [d for d in entries if d.sent_at >= after and (target is None or d.target == target)]


def _read_tail(path: Path, size: int) -> list[Delivery]:
    """The newest `size` readable deliveries of the file (and of its rotated one before it)."""
    rows: deque[Delivery] = deque(maxlen=size)
    skipped = 0
    for source in (path.with_name(LOG_FILE + ".1"), path):
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cannot read %s (%s); its deliveries are not restored", source,
                      exc.strerror)  # fmt: skip
            continue
        for line in lines:
            try:
                row = json.loads(line)
                rows.append(Delivery(**{**row, "episodes": tuple(row.get("episodes", ()))}))
            except (ValueError, TypeError):
                skipped += 1  # a line cut short by a crash, or from another version
    if skipped:
        log.warning("skipped %d unreadable lines of %s", skipped, path)
    return list(rows)
