"""Run one drill: steady state, fault, expectations, guaranteed restore, steady state, journal."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from obsctl.deadman.notify import ALERT_NAME as WATCHDOG_MISSING
from obsctl.deadman.notify import kind_of_title
from obsctl.deadman.watch import Kind
from obsctl.drills.deadman import DINGTALK_CHANNEL
from obsctl.drills.journal import Journal, Outcome, Step
from obsctl.drills.lock import DrillRunning, drill_lock
from obsctl.drills.scenarios import SCENARIOS, Invariant, Scenario
from obsctl.drills.target import DrillError, DrillTarget, Message, wait_until
from obsctl.mixin.config import DEADMAN_HEARTBEAT, AlertName, MixinConfig
from obsctl.mixin.relay_config import deadman_document
from obsctl.silences import Matcher, SilenceError, muting

Say = Callable[[str], None]
FIRING_TIMEOUT = 150.0
# How long an alert may take to fire beyond its own `for` (probe interval, evaluation, rates).
FIRING_BEYOND_FOR = 130.0
NOTIFY_TIMEOUT = 120.0
RESOLVE_TIMEOUT = 180.0
STEADY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0  # for a stopped server to stop answering
# How long past its heartbeat timeout the dead man's switch may take to turn missing (it checks
# every second); the timeout itself runs from the last Watchdog, which came before the fault.
DEADMAN_BEYOND_TIMEOUT = 30.0
# A drill's mark on the dead man's switch lasts the heartbeat timeout plus this, at most.
DEADMAN_MARK_BEYOND_TIMEOUT = 600.0
# How the relay's templates (zh-CN, en-US) and the email mark a resolved alert.
RESOLVED_WORDS = ("RESOLVED", "已恢复", "· resolved")
_SECTION = re.compile(r"(?=^#### )|(?=<tr>)", re.MULTILINE)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a drill; the restore still runs."""


class StepFailed(Exception):
    """An expectation did not hold."""


class DrillRun:
    """One run of one scenario against one target, journaled step by step."""

    def __init__(
        self,
        target: DrillTarget,
        scenario: Scenario,
        variant: str | None,
        journal_path: Path,
        say: Say,
        mixin: MixinConfig,
    ) -> None:
        self.target = target
        self.scenario = scenario
        self.variant = variant
        self.journal_path = journal_path
        self.say = say
        self.mixin = mixin
        drill_id = f"{scenario.name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.journal = Journal(
            scenario=scenario.name,
            variant=variant,
            drill_id=drill_id,
            target=target.description,
        )
        self.state_file = target.state_file
        self.expect = target.expectations(scenario)
        self._restore_began = 0.0

    # --- the experiment ----------------------------------------------------------------

    def run(self) -> Journal:
        """Run the drill; the journal says how it went (status passed/failed/refused/...)."""
        try:
            with drill_lock(self.state_file, self.scenario.name, self.journal.drill_id):
                return self._run()
        except DrillRunning as exc:
            self.journal.status = "locked"
            self.say(f"refusing to start: {exc}")
            return self._finish()

    def _run(self) -> Journal:
        inject, restore = self.target.fault(self.scenario, self.variant, self.journal.drill_id)
        with _signals_raise_interrupted():
            try:
                self._step("undo what an earlier drill left", self._recover_leftovers)
                self._step("check the steady state", self._steady_state_before)
            except StepFailed as exc:
                self.journal.status = "refused"
                self.say(f"refusing to start: {exc}")
                return self._finish()
            except Interrupted:
                self.journal.status = "interrupted"
                return self._finish()
            fault_injected = False
            try:
                self._write_state()
                self._step("mark the drill's own alerts", self._label_alerts)
                self._step(f"inject: {self.scenario.summary}", inject)
                fault_injected = True
                self.journal.moments["fault"] = time.time()
                self._expect_during_fault()
            except StepFailed:
                self.journal.deviated = True
            except Interrupted:
                self.journal.status = "interrupted"
            except DrillError as exc:
                self.journal.deviated = True
                self.say(f"drill error: {exc}")
            finally:
                with _signals_ignored():
                    self._rollback(restore, fault_injected)
        if self.journal.status == "running":
            self.journal.status = "failed" if self.journal.deviated else "passed"
        return self._finish()

    def _expect_during_fault(self) -> None:
        if self.scenario.stops:
            server = self.scenario.stops
            self._step(f"{server} stops answering", partial(self._stopped, server))
        if self.scenario.health_group:
            group = self.scenario.health_group
            self._step(f"/health/{group} turns 503", lambda: self._health_degraded(group))
        for alert, labels in self.expect:
            self._step(f"{alert.value} pending, then firing", partial(self._firing, alert, labels))
            self._step(f"{alert.value} in Alertmanager", partial(self._in_alertmanager, alert))
            for channel in self._channels(alert):
                self._step(
                    f"{alert.value} message on {channel}",
                    partial(self._notified, alert, channel, False),
                )
        for invariant in self.scenario.holds:
            self._step(f"holds: {invariant.description}", partial(self._holds, invariant))
        if self.scenario.deadman:
            self._step("the dead man's switch misses the Watchdog", self._deadman_missing)
            for channel in self._deadman_channels():
                self._step(
                    f"{WATCHDOG_MISSING} message on {channel}",
                    partial(self._deadman_notified, channel, False),
                )

    def _rollback(self, restore: Callable[[], object], fault_injected: bool) -> None:
        """Always runs: restore, watch the alert resolve, drop the drill label, steady state."""
        # A restarted Alertmanager may deliver the Watchdog before the restore step returns.
        self._restore_began = time.time()
        self._step("restore", restore, must=False)
        self.journal.moments["restore"] = time.time()
        if fault_injected and self.journal.status != "interrupted":
            if self.scenario.deadman:
                self._step(
                    "the Watchdog reaches the dead man's switch again", self._deadman_back, False
                )
                for channel in self._deadman_channels():
                    self._step(
                        f"{WATCHDOG_MISSING} recovery message on {channel}",
                        partial(self._deadman_notified, channel, True),
                        must=False,
                    )
            for alert, labels in self.expect:
                self._step(f"{alert.value} resolved", partial(self._resolved, alert, labels), False)
                for channel in self._channels(alert):
                    self._step(
                        f"{alert.value} resolved message on {channel}",
                        partial(self._notified, alert, channel, True),
                        must=False,
                    )
        self._step("remove the drill label", self._unlabel_alerts, must=False)
        self.state_file.unlink(missing_ok=True)
        if self.journal.status != "interrupted":
            self._step("check the steady state again", self._steady_state_after, must=False)

    # --- steps -------------------------------------------------------------------------

    def _recover_leftovers(self) -> str:
        if not self.state_file.exists():
            return "nothing left over"
        left = json.loads(self.state_file.read_text())
        scenario = SCENARIOS.get(left.get("scenario", ""))
        left_id = str(left.get("drill_id", ""))
        if scenario is not None:
            _, restore = self.target.fault(scenario, left.get("variant"), left_id)
            restore()
        self.target.unlabel_alerts(left_id)
        if scenario is not None and scenario.deadman:
            self.target.unmark_deadman(left_id)
        self.state_file.unlink(missing_ok=True)
        return (
            f"restored after an interrupted {left.get('scenario')} drill ({left.get('drill_id')})"
        )

    def _steady_state_before(self) -> str:
        problems = self._steady_problems()
        self.journal.steady_state_before = problems or {"all": "ok"}
        if problems:
            raise StepFailed("; ".join(f"{k}: {v}" for k, v in problems.items()))
        return "every server answers, the exporter is healthy, no drill alert is active"

    def _steady_state_after(self) -> str:
        deadline = time.time() + STEADY_TIMEOUT
        while True:
            problems = self._steady_problems()
            if not problems:
                self.journal.steady_state_after = {"all": "ok"}
                return "back to steady state"
            if not wait_until(deadline, 2.0):
                self.journal.steady_state_after = problems
                raise StepFailed("; ".join(f"{k}: {v}" for k, v in problems.items()))

    def _steady_problems(self) -> dict[str, str]:
        problems = {
            name: "not answering" for name, ok in self.target.servers_answering().items() if not ok
        }
        code, body = self.target.exporter_health()
        # A slow answer (degraded) is still an answer; a drill needs every dependency up.
        down = [
            name
            for name, dep in body.get("deps", {}).items()
            if dep.get("status") in ("down", "unknown") or dep.get("reason") == "stale"
        ]
        if code == 0 or down:
            problems["exporter /health"] = f"HTTP {code}, down: {', '.join(down) or body}"
        for alert in self.target.prometheus_alerts():
            name = alert["labels"].get("alertname")
            if any(name == a.value for a, _ in self.expect):
                problems[f"alert {name}"] = f"already {alert['state']}"
        if self.scenario.deadman:
            problems.update(self._deadman_problems())
        problems.update(self._muted())
        return problems

    def _muted(self) -> dict[str, str]:
        """Expected alerts a silence or an open maintenance window would keep from on-call."""
        try:
            silences = self.target.alertmanager_silences()
        except SilenceError as exc:
            return {"alertmanager silences": str(exc)}
        now = dt.datetime.now(dt.UTC)
        problems = {}
        for alert, labels in self.expect:
            policy = self.mixin.policy(alert)
            full = {"alertname": alert.value, "severity": policy.severity.value,
                    "team": policy.team, **labels}  # fmt: skip
            for silence in muting(silences, full):
                problems[f"{alert.value} silenced"] = (
                    f"silence {silence['id']} by {silence.get('createdBy', '?')} "
                    f"({', '.join(str(Matcher.from_api(m)) for m in silence['matchers'])}) until "
                    f"{silence.get('endsAt', '?')}; expire it (`obsctl silence expire ID`) or wait"
                )
            for name, window in self.mixin.maintenance.items():
                if window.is_open(now) and window.selects(full):
                    problems[f"{alert.value} in maintenance"] = (
                        f"window {name} is open ({window.comment}); run the drill after it"
                    )
        return problems

    def _deadman_problems(self) -> dict[str, str]:
        """Why the dead man's switch could not prove this drill: it must hear the Watchdog."""
        if deadman_document(self.mixin) is None:
            return {"obsctl.yaml": "routes the Watchdog to no dead man's switch (routing.deadman)"}
        code, body = self.target.deadman_health()
        beat = body.get("heartbeats", {}).get(DEADMAN_HEARTBEAT) if code == 200 else None
        if beat is None:
            found = f"no heartbeat {DEADMAN_HEARTBEAT}" if code == 200 else body.get("error")
            return {"dead man's switch": f"HTTP {code}: {found}"}
        problems = {}
        if beat["phase"] != "ok":
            since = beat.get("seconds_since_last")
            problems["dead man's switch"] = f"heartbeat {DEADMAN_HEARTBEAT} is {beat['phase']}" + (
                f", last Watchdog {since:.0f}s ago" if since is not None else ""
            )
        unsent = {channel: n for channel, n in body.get("unsent", {}).items() if n}
        if unsent:
            problems["dead man's switch unsent"] = ", ".join(
                f"{n} on {c}" for c, n in unsent.items()
            )
        if body.get("drill"):
            problems["dead man's switch drill mark"] = f"set by {body['drill'].get('id')}"
        return problems

    def _write_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(
            json.dumps(
                {
                    "scenario": self.scenario.name,
                    "variant": self.variant,
                    "drill_id": self.journal.drill_id,
                    "started_at": self.journal.started_at,
                }
            )
        )

    def _label_alerts(self) -> str:
        drill_id = self.journal.drill_id
        done = []
        if self.expect:
            self.target.label_alerts(drill_id, self.expect)
            names = ", ".join(alert.value for alert, _ in self.expect)
            done.append(f"{names} carry drill={drill_id}; every other alert is unmarked")
        if self.scenario.deadman:
            ttl = self._deadman_timeout() + DEADMAN_MARK_BEYOND_TIMEOUT
            done.append(self.target.mark_deadman(drill_id, ttl))
        return "; ".join(done)

    def _unlabel_alerts(self) -> str:
        drill_id = self.journal.drill_id
        self.target.unlabel_alerts(drill_id)
        if self.scenario.deadman:
            return self.target.unmark_deadman(drill_id)
        return "no alert carries the drill label"

    def _health_degraded(self, group: str) -> str:
        deadline = time.time() + FIRING_TIMEOUT
        while True:
            code, body = self.target.exporter_health(group)
            if code == 503:
                reasons = {n: d.get("reason") for n, d in body["deps"].items() if not d["ok"]}
                return f"503, {reasons}"
            if not wait_until(deadline):
                raise StepFailed(f"/health/{group} still answers {code}")

    def _holds(self, invariant: Invariant) -> str:
        ok, said = invariant.judge(self.target.prometheus_query(invariant.expr))
        if not ok:
            raise StepFailed(f"{invariant.description}: {said}")
        return said

    def _matching(self, alert: Any, name: str, labels: dict[str, str]) -> bool:
        got = alert["labels"]
        return got.get("alertname") == name and all(got.get(k) == v for k, v in labels.items())

    def firing_timeout(self, alert: AlertName) -> float:
        """How long to wait for an alert to fire: its `for` from the mixin config plus a margin."""
        return FIRING_BEYOND_FOR + (self.mixin.policy(alert).for_ or 0.0)

    def _firing(self, alert: AlertName, labels: dict[str, str]) -> str:
        timeout = self.firing_timeout(alert)
        deadline = time.time() + timeout
        while True:
            states = {
                a["state"]
                for a in self.target.prometheus_alerts()
                if self._matching(a, alert.value, labels)
            }
            now = time.time()
            if states and "pending" not in self.journal.moments:
                self.journal.moments["pending"] = now
            if "firing" in states:
                self.journal.moments.setdefault("firing", now)
                return "firing"
            if not wait_until(deadline):
                raise StepFailed(f"{alert.value} did not fire within {timeout:.0f}s")

    def _in_alertmanager(self, alert: AlertName) -> str:
        deadline = time.time() + NOTIFY_TIMEOUT
        while True:
            for active in self.target.alertmanager_alerts():
                labels = active["labels"]
                if labels.get("alertname") == alert.value and labels.get("drill") == (
                    self.journal.drill_id
                ):
                    self.journal.moments.setdefault("alertmanager", time.time())
                    return f"state {active['status']['state']}"
            if not wait_until(deadline):
                raise StepFailed(f"{alert.value} never reached Alertmanager with the drill label")

    def _channels(self, alert: AlertName) -> list[str]:
        """Where the routing sends this alert: the source of truth is the mixin config."""
        return self.mixin.channels(alert)

    def _notified(self, alert: AlertName, channel: str, resolved: bool) -> str:
        since = self.journal.moments["restore" if resolved else "fault"]
        deadline = time.time() + (RESOLVE_TIMEOUT if resolved else NOTIFY_TIMEOUT)
        moment = ("email" if channel == "email" else "dingtalk") + ("_resolved" if resolved else "")
        while True:
            for message in self._messages(channel, since):
                if self._about(message, alert.value, resolved):
                    self.journal.moments.setdefault(moment, message.received_at)
                    return f"{message.title!r} at +{message.received_at - since:.1f}s"
            if not wait_until(deadline, 1.0):
                kind = "resolved message" if resolved else "message"
                raise StepFailed(f"no {kind} about {alert.value} on {channel}")

    def _messages(self, channel: str, since: float) -> list[Message]:
        if channel == "email":
            return self.target.emails(since)
        return [m for m in self.target.dingtalk_messages(since) if m.channel == channel]

    def _about(self, message: Message, alertname: str, resolved: bool) -> bool:
        """True when the message holds this drill's alert in the wanted state.

        One message can hold firing and resolved alerts of a group, so look at each alert's own
        section: a "#### " heading in the DingTalk markdown, a table row in the email.
        """
        sections = _SECTION.split(message.text)
        if len(sections) > 1:
            sections = sections[1:]  # the part before the first alert is the message's header
        return any(
            alertname in section
            and self.journal.drill_id in section
            and any(word in section for word in RESOLVED_WORDS) == resolved
            for section in sections
        )

    def _stopped(self, server: str) -> str:
        deadline = time.time() + STOP_TIMEOUT
        while True:
            if not self.target.servers_answering().get(server, True):
                after = time.time() - self.journal.moments["fault"]
                return f"no answer from {server} {after:.1f}s after the fault"
            if not wait_until(deadline):
                raise StepFailed(f"{server} still answers {STOP_TIMEOUT:.0f}s after the fault")

    # --- the dead man's switch (scenarios that stop the alert path) --------------------

    def _deadman_heartbeat(self) -> dict[str, Any]:
        code, body = self.target.deadman_health()
        beat = body.get("heartbeats", {}).get(DEADMAN_HEARTBEAT) if code == 200 else None
        if beat is None:
            raise DrillError(f"dead man's switch /health: HTTP {code}: {str(body)[:200]}")
        return dict(beat)

    def _deadman_timeout(self) -> float:
        return float(self._deadman_heartbeat()["timeout_seconds"])

    def _deadman_channels(self) -> list[str]:
        """Where the dead man's switch pages: as alertmanager/deadman.yaml is generated."""
        document = deadman_document(self.mixin)
        if document is None:
            raise DrillError(
                "obsctl.yaml routes the Watchdog to no dead man's switch (routing.deadman)"
            )
        notify = document["notify"]
        channels = []
        if "dingtalk" in notify:
            channels.append(DINGTALK_CHANNEL)
        if "email" in notify:
            channels.append("email")
        return channels

    def _deadman_mobiles(self) -> list[str]:
        document = deadman_document(self.mixin) or {}
        return list(document.get("notify", {}).get("dingtalk", {}).get("mobiles", []))

    def _deadman_missing(self) -> str:
        fault = self.journal.moments["fault"]
        timeout = self._deadman_timeout()
        deadline = fault + timeout + DEADMAN_BEYOND_TIMEOUT
        while True:
            beat = self._deadman_heartbeat()
            if beat["phase"] == "missing":
                now = beat.get("notified_at") or time.time()  # when it paged
                self.journal.moments.setdefault("firing", now)
                last = beat.get("last_seen")
                if last is None:
                    return (
                        f"missing {now - fault:.0f}s after the fault (no Watchdog since it started)"
                    )
                self.journal.moments.setdefault("last_heartbeat", last)
                if last > fault + 2.0:
                    raise StepFailed(
                        f"a Watchdog reached the dead man's switch {last - fault:.0f}s after the "
                        "fault: the fault did not stop the alert path"
                    )
                return (
                    f"missing {now - last:.0f}s after the last Watchdog (timeout {timeout:.0f}s), "
                    f"{now - fault:.0f}s after the fault"
                )
            if not wait_until(deadline):
                raise StepFailed(
                    f"the dead man's switch still says {beat['phase']} {deadline - fault:.0f}s "
                    f"after the fault (timeout {timeout:.0f}s)"
                )

    def _deadman_back(self) -> str:
        restore = self._restore_began
        deadline = self.journal.moments["restore"] + RESOLVE_TIMEOUT
        while True:
            beat = self._deadman_heartbeat()
            last = beat.get("last_seen") or 0.0
            if beat["phase"] == "ok" and last >= restore:
                self.journal.moments.setdefault("resolved", last)
                after = last - self.journal.moments["restore"]
                return f"a Watchdog arrived {after:.1f}s after the restore"
            if not wait_until(deadline):
                raise StepFailed(
                    f"no Watchdog at the dead man's switch since the restore ({beat['phase']})"
                )

    def _deadman_notified(self, channel: str, recovered: bool) -> str:
        since = self._restore_began if recovered else self.journal.moments["fault"]
        deadline = time.time() + (RESOLVE_TIMEOUT if recovered else NOTIFY_TIMEOUT)
        moment = ("email" if channel == "email" else "dingtalk") + (
            "_resolved" if recovered else ""
        )
        wanted = Kind.RECOVERED if recovered else Kind.MISSING
        mobiles = [] if recovered or channel == "email" else self._deadman_mobiles()
        problem = ""
        while True:
            if channel == "email":
                messages = self.target.emails(since)
            else:
                messages = [m for m in self.target.deadman_messages(since) if m.channel == channel]
            for message in messages:
                if kind_of_title(message.title) is not wanted:
                    continue
                problem = self._deadman_message_problem(message, mobiles)
                if not problem:
                    self.journal.moments.setdefault(moment, message.received_at)
                    return f"{message.title!r} at +{message.received_at - since:.1f}s"
            if not wait_until(deadline, 1.0):
                kind = "recovery message" if recovered else "message"
                raise StepFailed(
                    f"no {WATCHDOG_MISSING} {kind} on {channel}"
                    + (f": {problem}" if problem else "")
                )

    def _deadman_message_problem(self, message: Message, mobiles: list[str]) -> str:
        """Why a WatchdogMissing message is not this drill's proper page ('' when it is)."""
        if self.journal.drill_id not in message.text:
            return f"{message.title!r} does not name drill {self.journal.drill_id}"
        missing = [m for m in mobiles if m not in message.mentions or f"@{m}" not in message.text]
        if missing:
            return f"{message.title!r} does not @-mention {', '.join(missing)}"
        return ""

    def _resolved(self, alert: AlertName, labels: dict[str, str]) -> str:
        deadline = time.time() + RESOLVE_TIMEOUT
        while True:
            active = [
                a for a in self.target.prometheus_alerts() if self._matching(a, alert.value, labels)
            ]
            if not active:
                self.journal.moments.setdefault("resolved", time.time())
                return "inactive in Prometheus"
            if not wait_until(deadline):
                raise StepFailed(f"{alert.value} still {active[0]['state']}")

    # --- bookkeeping -------------------------------------------------------------------

    def _step(self, name: str, action: Callable[[], object], must: bool = True) -> None:
        step = Step(name=name, started_at=time.time())
        self.journal.steps.append(step)
        self.journal.save(self.journal_path)  # a watcher sees which step is under way
        elapsed = step.started_at - self.journal.started_at
        self.say(f"[{elapsed:6.1f}s] {name} ...")
        try:
            output = action()
            step.outcome = Outcome.OK
            step.output = str(output) if output is not None else None
        except (StepFailed, DrillError) as exc:
            step.outcome = Outcome.FAILED
            step.error = str(exc)
            if must:
                raise StepFailed(str(exc)) from exc
            self.journal.deviated = True
        except Interrupted:
            step.outcome = Outcome.FAILED
            step.error = "interrupted"
            raise
        except Exception as exc:  # a bug or a broken dependency must still reach the journal
            step.outcome = Outcome.FAILED
            step.error = f"{type(exc).__name__}: {exc}"
            if must:
                raise StepFailed(step.error) from exc
            self.journal.deviated = True
        finally:
            step.ended_at = time.time()
            self.journal.save(self.journal_path)
            mark = "ok" if step.outcome is Outcome.OK else "FAILED"
            detail = step.output if step.outcome is Outcome.OK else step.error
            at = step.ended_at - self.journal.started_at
            took = step.duration_seconds or 0.0
            self.say(f"[{at:6.1f}s]   {mark} ({took:.1f}s){': ' + detail if detail else ''}")

    def _finish(self) -> Journal:
        self.journal.ended_at = time.time()
        self.journal.save(self.journal_path)
        return self.journal


@contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """The rollback must finish: a second Ctrl-C would otherwise leave the fault in place."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_drill(
    target: DrillTarget,
    scenario: Scenario,
    variant: str | None,
    journal_path: Path,
    say: Say,
    mixin: MixinConfig,
) -> Journal:
    """Run the scenario against the target (whose alerting `mixin` describes); the journal."""
    return DrillRun(target, scenario, variant, journal_path, say, mixin).run()


def find_scenario(name: str, variant: str | None) -> Scenario:
    """The scenario by name; DrillError naming the choices when it (or the variant) is unknown."""
    if name not in SCENARIOS:
        raise DrillError(f"unknown scenario {name!r}; try: {', '.join(SCENARIOS)}")
    scenario = SCENARIOS[name]
    if variant is not None and variant not in scenario.variants:
        choices = ", ".join(scenario.variants) or "none"
        raise DrillError(f"{name} has no variant {variant!r} (variants: {choices})")
    return scenario
