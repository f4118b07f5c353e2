"""The relay's journal on disk: accepted alerts until delivered, and each robot's recent sends.

One JSONL file (``journal.jsonl``) in ``delivery.spool_dir``, owned by one relay at a time
(``obsctl.statedir``):

- ``{"add": key, "target": t, "at": unix, "entry": {...}}`` when an alert is accepted (or a
  queued alert is replaced by a newer state: the same key again);
- ``{"done": [keys]}`` once delivered;
- ``{"sent": t, "at": unix}`` for every message a robot accepted, and ``{"blocked": t,
  "until": unix}`` when DingTalk throttles it, so a restart keeps the rate-limit budget
  instead of bursting into DingTalk's 10-minute throttle.

Writes are group-committed: every record written while an fsync runs goes into the next one,
so a webhook is answered only once its alerts are on disk, at thousands of webhooks a second.
Loading replays the file and rewrites it compacted; it is compacted again whenever it holds
far more lines than open entries. A line cut short by a crash is skipped and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from obsctl.relay.compose import Entry
from obsctl.statedir import StateDirError, claim

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
# Sends older than this no longer count against a robot's budget (DingTalk's minute + margin).
SEND_MEMORY_SECONDS = 120.0
_COMPACT_MIN_LINES = 5_000


class SpoolError(RuntimeError):
    """The spool directory cannot be used (not writable, or another relay holds it)."""


@dataclass(frozen=True)
class Queued:
    """An accepted alert a previous run had not delivered."""

    key: str
    entry: Entry
    accepted_at: float


@dataclass
class Restored:
    """What a previous run left, per target."""

    queued: dict[str, list[Queued]] = field(default_factory=lambda: defaultdict(list))
    sent: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    blocked_until: dict[str, float] = field(default_factory=dict)
    skipped_lines: int = 0


class Spool:
    """The durable part of every robot queue; with no directory it keeps nothing (memory only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._lock: IO[str] | None = None
        self._journal: IO[str] | None = None
        self._open: dict[str, str] = {}  # key -> its "add" line
        self._sent: dict[str, list[float]] = defaultdict(list)
        self._blocked: dict[str, float] = {}
        self._lines = 0
        self._pending: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def durable(self) -> bool:
        """Whether accepted alerts survive a restart."""
        return self.directory is not None

    # --- start and stop --------------------------------------------------------------------

    def open(self) -> Restored:
        """Lock the directory, replay the journal and compact it; SpoolError if unusable."""
        restored = Restored()
        if self.directory is None:
            return restored
        try:
            self._lock = claim(self.directory, "relay")
        except StateDirError as exc:
            raise SpoolError(f"spool directory {exc}") from None
        path = self.directory / JOURNAL
        if path.exists():
            self._replay(path, restored)
        self._rewrite()
        return restored

    def start(self) -> None:
        """Start the group-commit writer in the running loop."""
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="relay-spool")

    async def close(self) -> None:
        """Write what is pending, stop the writer and release the directory."""
        if self._writer is not None:
            await self._flush_now()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # --- what the outboxes record -----------------------------------------------------------

    async def persist(self, target: str, items: Iterable[tuple[str, Entry]]) -> None:
        """Write accepted alerts and return once they are on disk; OSError if they are not."""
        if self.directory is None:
            return
        now = time.time()
        lines = []
        for key, entry in items:
            entry_json = entry.model_dump(mode="json")
            record = {"add": key, "target": target, "at": now, "entry": entry_json}
            line = json.dumps(record, ensure_ascii=False)
            self._open[key] = line
            lines.append(line)
        if not lines:
            return
        if self._writer is None:
            raise RuntimeError("Spool.start() was not called")
        done = asyncio.get_running_loop().create_future()
        self._queue(lines, done)
        await done

    def delivered(self, target: str, keys: Iterable[str], sent_at: float) -> None:
        """Record a message the robot accepted and the alerts it carried (written in background)."""
        if self.directory is None:
            return
        sends = self._sent[target]
        sends.append(sent_at)
        if len(sends) > 200:
            self._forget_old_sends()
        keys = [key for key in keys if self._open.pop(key, None) is not None]
        lines = [json.dumps({"sent": target, "at": sent_at})]
        if keys:
            lines.append(json.dumps({"done": keys}))
        self._queue(lines, None)

    def discard(self, keys: Iterable[str]) -> None:
        """Forget accepted alerts that will never be sent (dropped after repeated errors)."""
        keys = [key for key in keys if self._open.pop(key, None) is not None]
        if keys:
            self._queue([json.dumps({"done": keys})], None)

    def blocked(self, target: str, until: float) -> None:
        """Record that DingTalk throttles `target` until the unix time `until`."""
        self._blocked[target] = until
        if self.directory is not None:
            self._queue([json.dumps({"blocked": target, "until": until})], None)

    def open_entries(self) -> int:
        """Accepted alerts on disk not yet delivered."""
        return len(self._open)

    # --- the file ----------------------------------------------------------------------------

    def _replay(self, path: Path, restored: Restored) -> None:
        adds: dict[str, dict[str, Any]] = {}
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    if "add" in record:
                        key = str(record["add"])
                        adds.pop(key, None)  # a replaced state moves to the end
                        adds[key] = record
                    elif "done" in record:
                        for key in record["done"]:
                            adds.pop(str(key), None)
                    elif "sent" in record:
                        self._sent[str(record["sent"])].append(float(record["at"]))
                    elif "blocked" in record:
                        self._blocked[str(record["blocked"])] = float(record["until"])
                except (ValueError, TypeError, KeyError, AttributeError):
                    restored.skipped_lines += 1  # e.g. a line cut short by a crash
        for key, record in adds.items():
            try:
                entry = Entry.model_validate(record["entry"])
            except (ValidationError, KeyError, TypeError):
                restored.skipped_lines += 1
                continue
            target = str(record.get("target", ""))
            restored.queued[target].append(Queued(key, entry, float(record.get("at", 0.0))))
            self._open[key] = json.dumps(record, ensure_ascii=False)
        if restored.skipped_lines:
            log.warning("%s: skipped %d unreadable lines", path, restored.skipped_lines)
        self._forget_old_sends()
        for target, sends in self._sent.items():
            restored.sent[target] = list(sends)
        now = time.time()
        restored.blocked_until = {t: u for t, u in self._blocked.items() if u > now}

    def _forget_old_sends(self) -> None:
        horizon = time.time() - SEND_MEMORY_SECONDS
        for target in list(self._sent):
            self._sent[target] = [at for at in self._sent[target] if at > horizon]

    def _rewrite(self) -> None:
        """Replace the journal with just what is still open (and the recent sends)."""
        self._replace_journal(self._snapshot())

    def _snapshot(self) -> list[str]:
        self._forget_old_sends()
        now = time.time()
        lines = list(self._open.values())
        for target, sends in self._sent.items():
            lines += [json.dumps({"sent": target, "at": at}) for at in sends]
        lines += [
            json.dumps({"blocked": t, "until": until})
            for t, until in self._blocked.items()
            if until > now
        ]
        return lines

    def _replace_journal(self, lines: list[str]) -> None:
        assert self.directory is not None
        path = self.directory / JOURNAL
        temporary = path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        if self._journal is not None:
            self._journal.close()
        self._journal = path.open("a", encoding="utf-8")
        self._lines = len(lines)

    def _queue(self, lines: list[str], done: asyncio.Future[None] | None) -> None:
        self._pending.extend(lines)
        if done is not None:
            self._waiters.append(done)
        if self._wake is not None:
            self._wake.set()

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_now()

    async def _flush_now(self) -> None:
        if not self._pending:
            return
        lines, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        try:
            await asyncio.to_thread(self._append, lines)
            if self._lines > max(_COMPACT_MIN_LINES, 4 * len(self._open)):
                await asyncio.to_thread(self._replace_journal, self._snapshot())
        except OSError as exc:
            log.error("%s: cannot write the journal (%s)", self.directory, exc.strerror)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _append(self, lines: list[str]) -> None:
        assert self._journal is not None
        self._journal.write("".join(line + "\n" for line in lines))
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._lines += len(lines)
