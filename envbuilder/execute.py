"""Run a Plan: one lock per env, a log per step, resume from the recorded state.

A step whose key matches a completed record is skipped; the first step whose key differs (or
that never completed) runs, and so does everything after it. Before that first re-run the
manifest is removed, so an env is never "ready" while it is being changed. State is written
atomically after every step; a killed build leaves at worst a step that is not marked done.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envbuilder import diagnose, proc
from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import EnvbuilderError, EnvLocked, InputError, StepFailed
from envbuilder.fsutil import write_json
from envbuilder.plan import Plan, PlannedStep
from envbuilder.steps import BY_NAME, STEPS, Deps, Step, builds_on

STATE_VERSION = 1

StepStatus = Literal["done", "skipped", "failed", "checked"]  # checked: a volatile step found no change
RecordStatus = Literal["running", "done", "failed", "interrupted"]


class Reporter:
    """What the executor tells whoever shows progress; this one shows nothing (report.py's
    ProgressReporter draws it)."""

    def step_start(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_skip(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_line(self, line: str) -> None: ...
    def step_note(self, text: str) -> None: ...
    def step_done(self, step: PlannedStep, seconds: float) -> None: ...
    def step_failed(self, step: PlannedStep, error: EnvbuilderError, seconds: float) -> None: ...


@dataclass
class StepResult:
    name: str
    status: StepStatus
    seconds: float
    log: str | None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 2), "log": self.log}


@dataclass
class BuildResult:
    prefix: Path
    manifest: Path
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, Data] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "prefix": str(self.prefix),
            "manifest": str(self.manifest),
            "python": str(Layout(self.prefix).python),
            "steps": [s.to_json() for s in self.steps],
        }


class State:
    """<prefix>/.envbuilder/state.json: per step, its key, status, outputs and duration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps: dict[str, Data] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("version") == STATE_VERSION:
                    self.steps = data.get("steps", {})
            except (OSError, ValueError):
                self.steps = {}  # unreadable state: rebuild from scratch, never trust it

    def save(self) -> None:
        write_json(self.path, {"version": STATE_VERSION, "steps": self.steps}, indent=1)

    def was_cut_off(self, name: str) -> bool:
        """The step was running when envbuilder died (kill -9) or was interrupted."""
        return self.steps.get(name, {}).get("status") in ("running", "interrupted")

    def is_done(self, step: PlannedStep) -> bool:
        record = self.steps.get(step.name)
        return bool(record and record.get("status") == "done" and record.get("key") == step.key)

    def record(
        self,
        step: PlannedStep,
        status: RecordStatus,
        seconds: float,
        outputs: Data | None = None,
        error: str | None = None,
    ) -> None:
        self.steps[step.name] = {
            "key": step.key,
            "status": status,
            "seconds": round(seconds, 2),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "outputs": outputs or {},
            **({"error": error} if error else {}),
        }


class EnvLock:
    """An exclusive flock on <prefix>/.envbuilder/lock; released by the kernel if we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> EnvLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise EnvLocked(
                f"another envbuilder process (pid {holder}) is building {self.path.parent.parent}",
                hint="wait for it to finish, or build into another --prefix",
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def check_prefix(layout: Layout) -> None:
    """Refuse to build into a directory that holds something other than an envbuilder env."""
    prefix = layout.prefix
    if prefix.exists() and not prefix.is_dir():
        raise InputError(f"prefix {prefix} exists and is not a directory", hint="choose another --prefix")
    if prefix.is_dir() and any(prefix.iterdir()) and not layout.meta.is_dir():
        raise InputError(
            f"prefix {prefix} is not empty and is not an envbuilder environment; refusing to write into it",
            hint="choose a new or empty directory with --prefix",
        )


Runner = Callable[[StepContext, Any, Deps], Data]


def execute(plan: Plan, reporter: Reporter | None = None, runners: Mapping[str, Runner] | None = None) -> BuildResult:
    """Run the plan's steps in order. `runners` replaces step functions (tests of the executor)."""
    reporter = reporter or Reporter()
    layout = Layout(plan.prefix, plan.recipe.name)
    check_prefix(layout)
    layout.meta.mkdir(parents=True, exist_ok=True)
    result = BuildResult(prefix=plan.prefix, manifest=layout.manifest)
    with EnvLock(layout.lock_file):
        layout.logs.mkdir(exist_ok=True)
        reaped = [
            pid for track in layout.children() for pid in proc.reap(track)
        ]  # compilers a killed build left running
        if reaped:
            reporter.step_note(f"stopped {len(reaped)} processes left by an interrupted build")
        run = _Run(plan, layout, State(layout.state_file), reporter, result, runners or {})
        for index, planned in enumerate(plan.steps, 1):
            run.step(index, planned)
    return result


class _Run:
    """One build: which steps re-run, and the bookkeeping around each (state, log, reporter)."""

    def __init__(
        self,
        plan: Plan,
        layout: Layout,
        state: State,
        reporter: Reporter,
        result: BuildResult,
        runners: Mapping[str, Runner],
    ) -> None:
        self.plan, self.layout, self.state, self.reporter, self.result = plan, layout, state, reporter, result
        self.runners = runners
        self.keys = {s.name: s.key for s in plan.steps}
        self.rerun: set[str] = set()
        # Package installs cut off half-way can leave files without metadata or the reverse:
        # a step that names such a producer is rebuilt rather than trusted.
        self.distrust = {s.NAME for s in STEPS if any(state.was_cut_off(p) for p in s.DISTRUST_AFTER_CUT)}
        self.ctx = StepContext(layout=layout, log=layout.logs / "build.log")
        self.ctx.on_line, self.ctx.on_note = reporter.step_line, reporter.step_note

    def _reusable(self, step: Step, planned: PlannedStep) -> bool:
        record = self.state.steps.get(planned.name, {})
        outputs = record.get("outputs", {})
        # a record made by an older envbuilder may lack outputs this one declares (a stand-in runner's are its own)
        declared = set(getattr(step.Outputs, "__required_keys__", ())) if planned.name not in self.runners else set()
        complete = declared <= set(outputs)
        return (
            self.state.is_done(planned)
            and not step.VOLATILE
            and step.NAME not in self.distrust
            and not self.rerun.intersection(planned.depends)
            and complete
            and step.still_valid(self.layout, outputs)
        )

    def step(self, index: int, planned: PlannedStep) -> None:
        step, total = BY_NAME[planned.name], len(self.plan.steps)
        log = self.layout.logs / f"{index:02d}-{planned.name}.log"
        if self._reusable(step, planned):
            self.result.outputs[planned.name] = self.state.steps[planned.name]["outputs"]
            self.result.steps.append(StepResult(planned.name, "skipped", 0.0, str(log)))
            self.reporter.step_skip(planned, index, total)
            return
        # a volatile step that finds what it found last time changes nothing downstream
        recheck = step.VOLATILE and self.state.is_done(planned) and not self.rerun.intersection(planned.depends)
        previous = self.state.steps.get(planned.name, {}).get("outputs")
        if not self.rerun and not step.VOLATILE:
            self.layout.manifest.unlink(missing_ok=True)  # not ready until the manifest step ends
            self.layout.legacy_manifest.unlink(missing_ok=True)
        if not recheck:
            self.rerun.add(planned.name)
        self.state.record(planned, "running", 0.0)  # replaced by the outcome; left as is by a kill -9
        self.state.save()
        log.write_text(f"# envbuilder step {planned.name} (key {planned.key})\n# {planned.summary}\n")
        self.ctx.log = log
        self.reporter.step_start(planned, index, total)
        started = time.monotonic()
        outputs = self._call(step, planned, log, started)
        seconds = time.monotonic() - started
        if recheck and outputs != previous:
            self.rerun.add(planned.name)  # e.g. an asset appeared: the manifest must say so
        self.state.record(planned, "done", seconds, outputs)
        self.state.save()
        self.result.outputs[planned.name] = outputs
        status: StepStatus = "checked" if recheck and outputs == previous else "done"
        self.result.steps.append(StepResult(planned.name, status, seconds, str(log)))
        self.reporter.step_done(planned, seconds)

    def _call(self, step: Step, planned: PlannedStep, log: Path, started: float) -> Data:
        names = builds_on(planned.name)
        deps = Deps(planned.name, {n: self.result.outputs[n] for n in names}, {n: self.keys[n] for n in names})
        self.ctx.key = planned.key
        runner: Runner = self.runners.get(planned.name) or step.run
        try:
            return dict(runner(self.ctx, planned.given, deps))
        except KeyboardInterrupt:
            self.state.record(planned, "interrupted", time.monotonic() - started)
            self.state.save()
            raise
        except EnvbuilderError as exc:
            failure = self._failed(planned, exc.message, started, log, exc)
            raise failure from exc
        except Exception as exc:  # a bug in envbuilder: keep the traceback in the log
            with log.open("a") as f:
                f.write(traceback.format_exc())
            failure = self._failed(planned, repr(exc), started, log, None)
            raise failure from exc

    def _failed(
        self, planned: PlannedStep, message: str, started: float, log: Path, exc: EnvbuilderError | None
    ) -> StepFailed:
        seconds = time.monotonic() - started
        self.state.record(planned, "failed", seconds, error=message)
        self.state.save()
        if exc is None:
            failure = StepFailed(
                planned.name,
                f"internal error: {message}",
                log=log,
                hint="this is an envbuilder bug; please report it with the log",
            )
        else:
            failure = _step_failed(planned, exc, log)
        self.reporter.step_failed(planned, failure, seconds)
        return failure


def _step_failed(step: PlannedStep, exc: EnvbuilderError, log: Path) -> StepFailed:
    tail = getattr(exc, "tail", "") or ""
    own = getattr(exc, "log", None)  # a command with a log of its own (one of concurrent builds)
    log = own if isinstance(own, Path) and own.is_file() else log
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    findings = diagnose.scan(text + "\n" + exc.message)
    hint = exc.hint
    if findings:
        hint = "; ".join(f"{f.cause} Fix: {f.fix}" for f in findings[:2])
    return StepFailed(step.name, exc.message, log=log, tail=tail, hint=hint, diagnoses=[f.to_json() for f in findings])
