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
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from envbuilder import diagnose, proc
from envbuilder.context import Context, Data, Layout
from envbuilder.errors import EnvbuilderError, EnvLocked, InputError, StepFailed
from envbuilder.host import HostFacts
from envbuilder.plan import VOLATILE, Plan, PlannedStep
from envbuilder.steps import STEPS, StepFunction

STATE_VERSION = 1

# step -> the step whose cut-off run makes it untrustworthy: pip/uv killed mid-install can leave
# a package's metadata without all of its files, which "already satisfied" would then accept.
DISTRUST_AFTER_CUT = {"venv": "wheels"}


class Reporter(Protocol):
    def step_start(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_skip(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_line(self, line: str) -> None: ...
    def step_note(self, text: str) -> None: ...
    def step_done(self, step: PlannedStep, seconds: float) -> None: ...
    def step_failed(self, step: PlannedStep, error: EnvbuilderError, seconds: float) -> None: ...


class NullReporter:
    def step_start(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_skip(self, step: PlannedStep, index: int, total: int) -> None: ...
    def step_line(self, line: str) -> None: ...
    def step_note(self, text: str) -> None: ...
    def step_done(self, step: PlannedStep, seconds: float) -> None: ...
    def step_failed(self, step: PlannedStep, error: EnvbuilderError, seconds: float) -> None: ...


@dataclass
class StepResult:
    name: str
    status: str  # done | skipped | failed
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
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": STATE_VERSION, "steps": self.steps}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def was_cut_off(self, name: str) -> bool:
        """The step was running when envbuilder died (kill -9) or was interrupted."""
        return self.steps.get(name, {}).get("status") in ("running", "interrupted")

    def is_done(self, step: PlannedStep) -> bool:
        record = self.steps.get(step.name)
        return bool(record and record.get("status") == "done" and record.get("key") == step.key)

    def record(
        self, step: PlannedStep, status: str, seconds: float, outputs: Data | None = None, error: str | None = None
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


def still_valid(name: str, layout: Layout, outputs: Data) -> bool:
    """Cheap checks that a completed step's results are still on disk (a user may delete them)."""
    if name == "sources":
        return Path(str(outputs.get("root", ""))).is_dir()
    if name == "venv":
        return layout.python.exists()
    if name == "extensions":
        return all(Path(e["wheel"]).is_file() for e in outputs.get("extensions", []))
    if name == "manifest":
        return layout.manifest.is_file()
    return True


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


def execute(
    plan: Plan, host: HostFacts, reporter: Reporter | None = None, steps: dict[str, StepFunction] | None = None
) -> BuildResult:
    """Run the plan's steps in order. `steps` replaces the step functions (tests of the executor)."""
    reporter = reporter or NullReporter()
    steps = steps or STEPS
    layout = Layout(plan.prefix)
    check_prefix(layout)
    layout.meta.mkdir(parents=True, exist_ok=True)
    result = BuildResult(prefix=plan.prefix, manifest=layout.manifest)
    with EnvLock(layout.lock_file):
        layout.logs.mkdir(exist_ok=True)
        reaped = proc.reap(layout.child)  # compilers a killed build left running
        state = State(layout.state_file)
        if reaped:
            reporter.step_note(f"stopped {len(reaped)} processes left by an interrupted build")
        ctx = Context(plan=plan, host=host, layout=layout, log=layout.logs / "build.log", outputs=result.outputs)
        ctx.on_line, ctx.on_note = reporter.step_line, reporter.step_note
        rerun: set[str] = set()
        # Package installs cut off half-way can leave files without metadata or the reverse:
        # rebuild the venv rather than trust it (venv and torch are reinstalled, from caches).
        distrust = {step for step, producer in DISTRUST_AFTER_CUT.items() if state.was_cut_off(producer)}
        total = len(plan.steps)
        for index, step in enumerate(plan.steps, 1):
            log = layout.logs / f"{index:02d}-{step.name}.log"
            record = state.steps.get(step.name, {})
            if (
                state.is_done(step)
                and step.name not in VOLATILE
                and step.name not in distrust
                and not rerun.intersection(step.depends)
                and still_valid(step.name, layout, record.get("outputs", {}))
            ):
                result.outputs[step.name] = record["outputs"]
                result.steps.append(StepResult(step.name, "skipped", 0.0, str(log)))
                reporter.step_skip(step, index, total)
                continue
            # a volatile step that finds what it found last time changes nothing downstream
            unchanged_check = step.name in VOLATILE and state.is_done(step) and not rerun.intersection(step.depends)
            previous = record.get("outputs")
            if not rerun and step.name not in VOLATILE:
                layout.manifest.unlink(missing_ok=True)  # not ready until the manifest step ends
            if step.name not in VOLATILE or not unchanged_check:
                rerun.add(step.name)
            state.record(step, "running", 0.0)  # replaced by the outcome; left as is by a kill -9
            state.save()
            log.write_text(f"# envbuilder step {step.name} (key {step.key})\n# {step.summary}\n")
            ctx.log = log
            reporter.step_start(step, index, total)
            started = time.monotonic()
            try:
                outputs = steps[step.name](ctx, step.inputs)
            except KeyboardInterrupt:
                state.record(step, "interrupted", time.monotonic() - started)
                state.save()
                raise
            except EnvbuilderError as exc:
                seconds = time.monotonic() - started
                state.record(step, "failed", seconds, error=exc.message)
                state.save()
                failure = _step_failed(step, exc, log)
                reporter.step_failed(step, failure, seconds)
                raise failure from exc
            except Exception as exc:  # a bug in envbuilder: keep the traceback in the log
                seconds = time.monotonic() - started
                with log.open("a") as f:
                    f.write(traceback.format_exc())
                state.record(step, "failed", seconds, error=repr(exc))
                state.save()
                failure = StepFailed(
                    step.name,
                    f"internal error: {exc!r}",
                    log=log,
                    hint="this is an envbuilder bug; please report it with the log",
                )
                reporter.step_failed(step, failure, seconds)
                raise failure from exc
            seconds = time.monotonic() - started
            if unchanged_check and outputs != previous:
                rerun.add(step.name)  # e.g. an asset appeared: the manifest must say so
            state.record(step, "done", seconds, outputs)
            state.save()
            result.outputs[step.name] = outputs
            result.steps.append(
                StepResult(
                    step.name, "checked" if unchanged_check and outputs == previous else "done", seconds, str(log)
                )
            )
            reporter.step_done(step, seconds)
    return result


def _step_failed(step: PlannedStep, exc: EnvbuilderError, log: Path) -> StepFailed:
    tail = getattr(exc, "tail", "") or ""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    findings = diagnose.scan(text + "\n" + exc.message)
    hint = exc.hint
    if findings:
        hint = "; ".join(f"{f.cause} Fix: {f.fix}" for f in findings[:2])
    return StepFailed(step.name, exc.message, log=log, tail=tail, hint=hint, diagnoses=[f.to_json() for f in findings])
