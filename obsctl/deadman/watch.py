"""What the dead man's switch knows of each heartbeat, and the notices it owes on-call.

A heartbeat is *waiting* until its first Watchdog (the grace is one timeout from when this
process started), *ok* while Watchdogs keep arriving, and *missing* once none came for its timeout.
Turning missing queues one ``missing`` notice; staying missing queues a ``reminder`` every
``reminder`` seconds (never while an earlier notice for it is still unsent); the next
Watchdog queues ``recovered``. Each notice is owed to every configured channel until that
channel took it, and the whole state is saved after every change, so a restart neither
forgets an outage nor tells it twice.

A drill that stops the alert path on purpose (``obsctl drill run alert-path-down``) sets a
*drill mark* first, with a time to live. A notice says it is a drill only when the outage began
while that mark was set and the mark is still set when the notice is made: an outage that was
already there, or one that outlives the drill (its restore failed, the mark expired or was
cleared), pages unmarked, as a real one.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from obsctl.deadman.config import HeartbeatConfig

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


class Phase(StrEnum):
    """Where a heartbeat is."""

    WAITING = "waiting"
    OK = "ok"
    MISSING = "missing"


class Kind(StrEnum):
    """What a notice says."""

    MISSING = "missing"
    REMINDER = "reminder"
    RECOVERED = "recovered"


class Notice(BaseModel):
    """One message owed to on-call, with the channels that have yet to take it."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    kind: Kind
    heartbeat: str
    created_at: float
    # When the heartbeat was last seen before the outage (None: never since watching began).
    last_seen: float | None
    missing_since: float
    pending: list[str]
    # The drill that caused this outage, when the notice must say so (see the module docstring).
    drill: str | None = None


class DrillMark(BaseModel):
    """A drill under way that stops the alert path on purpose, until `until` at the latest."""

    id: str
    since: float
    until: float


class Heartbeat(BaseModel):
    """The saved state of one heartbeat."""

    phase: Phase = Phase.WAITING
    watching_since: float
    last_seen: float | None = None
    missing_since: float | None = None
    notified_at: float | None = None
    received: int = 0
    # The drill mark's id when this outage began under it.
    drill: str | None = None


class State(BaseModel):
    """Everything saved across restarts."""

    heartbeats: dict[str, Heartbeat] = Field(default_factory=dict)
    notices: list[Notice] = Field(default_factory=list)
    drill: DrillMark | None = None


class Watcher:
    """Applies Watchdogs and the passing of time to the state; saves it after each change."""

    def __init__(
        self, heartbeats: list[HeartbeatConfig], channels: list[str], directory: Path, now: float
    ) -> None:
        self._configs = {h.name: h for h in heartbeats}
        self._channels = channels
        self._path = directory / STATE_FILE
        self.state = self._load()
        for name in self._configs:
            heartbeat = self.state.heartbeats.setdefault(name, Heartbeat(watching_since=now))
            # Watchdogs sent while this process was down were lost, not missing: one timeout
            # of grace after every start (an outage already paged stays paged).
            heartbeat.watching_since = now
        for name in list(self.state.heartbeats):
            if name not in self._configs:  # a heartbeat removed from the config
                del self.state.heartbeats[name]
        self.save()

    def _load(self) -> State:
        try:
            return State.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return State()
        except (OSError, ValueError, ValidationError) as exc:
            log.error("%s: unreadable state (%s); starting afresh", self._path, type(exc).__name__)
            return State()

    def save(self) -> None:
        """Write the state atomically."""
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self._path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(self.state.model_dump_json())
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._path)

    def known(self, name: str) -> bool:
        """Whether `name` is a configured heartbeat."""
        return name in self._configs

    def beat(self, name: str, now: float) -> None:
        """A Watchdog arrived."""
        heartbeat = self.state.heartbeats[name]
        if heartbeat.phase is Phase.MISSING:
            assert heartbeat.missing_since is not None
            self._owe(Kind.RECOVERED, name, heartbeat, now)
            log.info("%s: heartbeat back after %.0fs", name, now - heartbeat.missing_since)
        heartbeat.phase = Phase.OK
        heartbeat.last_seen = now
        heartbeat.missing_since = None
        heartbeat.drill = None
        heartbeat.received += 1
        self.save()

    def tick(self, now: float) -> None:
        """Turn overdue heartbeats missing and queue the reminders that are due."""
        changed = False
        mark = self.state.drill
        if mark is not None and now >= mark.until:
            log.warning("drill %s: its mark expired; notices are no longer marked", mark.id)
            self.state.drill = None
            changed = True
        for name, config in self._configs.items():
            heartbeat = self.state.heartbeats[name]
            if heartbeat.phase is not Phase.MISSING:
                since = max(heartbeat.last_seen or 0.0, heartbeat.watching_since)
                if now - since >= config.timeout:
                    heartbeat.phase = Phase.MISSING
                    heartbeat.missing_since = heartbeat.last_seen or heartbeat.watching_since
                    heartbeat.drill = self.active_drill(now)
                    self._owe(Kind.MISSING, name, heartbeat, now)
                    log.warning("%s: no Watchdog for %.0fs: paging on-call", name, now - since)
                    changed = True
            elif (
                config.reminder
                and heartbeat.notified_at is not None
                and now - heartbeat.notified_at >= config.reminder
                and not any(n.heartbeat == name for n in self.state.notices)
            ):
                self._owe(Kind.REMINDER, name, heartbeat, now)
                changed = True
        if changed:
            self.save()

    def _owe(self, kind: Kind, name: str, heartbeat: Heartbeat, now: float) -> None:
        assert heartbeat.missing_since is not None
        drill = heartbeat.drill if heartbeat.drill == self.active_drill(now) else None
        self.state.notices.append(
            Notice(
                kind=kind,
                heartbeat=name,
                created_at=now,
                last_seen=heartbeat.last_seen,
                missing_since=heartbeat.missing_since,
                pending=list(self._channels),
                drill=drill,
            )
        )
        heartbeat.notified_at = now

    def active_drill(self, now: float) -> str | None:
        """The id of the drill mark in force at `now`, if any."""
        mark = self.state.drill
        return mark.id if mark is not None and mark.since <= now < mark.until else None

    def mark_drill(self, drill_id: str, now: float, ttl: float) -> DrillMark:
        """A drill is about to stop the alert path: mark what it causes, for `ttl` seconds."""
        self.state.drill = DrillMark(id=drill_id, since=now, until=now + ttl)
        self.save()
        log.info("drill %s: marking the notices of outages it causes for %.0fs", drill_id, ttl)
        return self.state.drill

    def clear_drill(self, drill_id: str) -> bool:
        """The drill is over: remove its mark (another drill's is left alone); True if removed."""
        if self.state.drill is None or self.state.drill.id != drill_id:
            return False
        self.state.drill = None
        self.save()
        log.info("drill %s: mark cleared", drill_id)
        return True

    def delivered(self, notice: Notice, channel: str) -> None:
        """`channel` took `notice`; forget the notice once every channel has."""
        if channel in notice.pending:
            notice.pending.remove(channel)
        if not notice.pending and notice in self.state.notices:
            self.state.notices.remove(notice)
        self.save()

    def owed(self, channel: str) -> list[Notice]:
        """Notices `channel` has yet to take, oldest first."""
        return [n for n in self.state.notices if channel in n.pending]

    def snapshot(self) -> dict[str, object]:
        """The state as /health shows it."""
        return json.loads(self.state.model_dump_json())  # type: ignore[no-any-return]
