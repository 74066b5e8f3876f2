"""Smoke runs: a method's shortest training and render in its built env, on envbuilder's synthetic
data, with checks on what they produce (files exist, frames neither constant nor NaN, loss fell,
PSNR above the recipe's floor and above blank frames).

A step that needs an asset which is missing or broken is "blocked" and says which; with
stub_assets=True stand-ins are written where the structure is known, and every result of such a
run is marked stub-driven. Steps after a blocked or failed one are skipped (they need its output).
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envbuilder import assets, datasets, proc
from envbuilder.context import Layout, child_env
from envbuilder.errors import CommandFailed, InputError, SmokeError, Verdict, exit_code_for
from envbuilder.fsutil import write_json
from envbuilder.paths import probes_dir
from envbuilder.recipe.model import Recipe, Smoke, SmokeFile, SmokeStep


@dataclass
class StepOutcome:
    name: str
    status: Literal["ok", "failed", "blocked", "skipped"]
    seconds: float = 0.0
    detail: str = ""
    blocked_by: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "detail": self.detail,
            "blocked_by": self.blocked_by,
            "metrics": self.metrics,
            "log": self.log,
        }


@dataclass
class SmokeResult:
    recipe: str
    stub_driven: bool
    stubs: list[str]
    steps: list[StepOutcome]
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if any(s.status == "failed" for s in self.steps):
            return "failed"
        if self.stub_driven or any(s.status in ("blocked", "skipped") for s in self.steps):
            return "blocked"  # not proven: stand-ins are no evidence that the real models work
        return "ok"

    @property
    def exit_code(self) -> int:
        return exit_code_for([self.verdict])

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "ok": self.exit_code == 0,
            "stub_driven": self.stub_driven,
            "stubs": self.stubs,
            "data": self.data,
            "steps": [s.to_json() for s in self.steps],
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }


Note = Callable[[str], None]


def run(
    recipe: Recipe,
    prefix: Path,
    *,
    stub_assets: bool = False,
    note: Note | None = None,
    on_line: Note | None = None,
    env: dict[str, str] | None = None,
) -> SmokeResult:
    """Run the recipe's smoke steps in the env at prefix (which must be built). `note` gets short
    progress messages, `on_line` every output line of the running command."""
    note = note or (lambda _: None)
    layout = Layout(prefix, recipe.name)
    if recipe.smoke is None:
        raise InputError(f"recipe {recipe.name} has no smoke section")
    if not layout.python.exists():
        raise InputError(f"no built env at {prefix}", hint=f"envbuilder build {recipe.name} first")
    root = layout.source_tree
    smoke = recipe.smoke
    layout.logs.mkdir(parents=True, exist_ok=True)
    statuses = assets.check(recipe, root)
    stubs: list[str] = []
    if stub_assets and any(s.status != "ok" for s in statuses):
        written, _ = assets.stub(recipe, root, layout.python)
        stubs = written
        statuses = assets.check(recipe, root)
    stubs = sorted({*stubs, *(s.asset.name for s in statuses if s.stub)})
    bad = {s.asset.name: f"{s.status} at {s.path}" for s in statuses if s.status != "ok"}
    out = layout.smoke / "out"
    places = {"python": str(layout.python), "src": str(root), "prefix": str(layout.prefix), "out": str(out), "data": ""}
    result = SmokeResult(recipe.name, stub_driven=bool(stubs), stubs=stubs, steps=[])
    if smoke.data:
        data_dir = layout.smoke / "data"
        result.data = _generate(smoke.data, data_dir, layout.python, note)
        places["data"] = str(data_dir)
    _write_files(smoke, root)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base_env = child_env(layout.venv, env)
    stopped = ""
    for step in smoke.steps:
        if stopped:
            result.steps.append(StepOutcome(step.name, "skipped", detail=f"needs the output of {stopped}"))
            continue
        blocked = [f"{name} ({bad[name]})" for name in step.needs if name in bad]
        if blocked:
            result.steps.append(
                StepOutcome(step.name, "blocked", detail="missing or invalid assets", blocked_by=blocked)
            )
            note(f"{step.name}: blocked on {', '.join(blocked)}")
            stopped = step.name
            continue
        outcome = _run_step(step, root, places, base_env, layout, note, on_line)
        result.steps.append(outcome)
        if outcome.status != "ok":
            stopped = step.name
    write_json(layout.smoke / "result.json", result.to_json(), indent=1)
    return result


def _fill(text: str, places: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: places[m.group(1)], text)


def _generate(name: str, data_dir: Path, python: Path, note: Note) -> dict[str, Any]:
    """Write the synthetic data set once; a marker written last says it is complete."""
    script = datasets.script(name)
    if script is None:
        raise SmokeError(f"the smoke run is not possible yet: {datasets.not_written_yet(name)}")
    marker = data_dir / ".envbuilder-data.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(data_dir, ignore_errors=True)
    note(f"writing the synthetic {name} data set")
    out = proc.capture([str(python), str(script), str(data_dir)], timeout=600)
    facts: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    marker.write_text(json.dumps({"generator": name, **facts}))
    return facts


def _write_files(smoke: Smoke, root: Path) -> None:
    for item in smoke.files:
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_file_text(item, root))


def _file_text(item: SmokeFile, root: Path) -> str:
    if item.text is not None:
        return item.text
    assert item.copy_of is not None
    source = root / item.copy_of
    if not source.is_file():
        raise SmokeError(f"smoke file {item.path}: {item.copy_of} is not in the source tree")
    text = source.read_text()
    for old, new in item.replace:
        count = text.count(old)
        if count != 1:
            raise SmokeError(
                f"smoke file {item.path}: expected {old!r} once in {item.copy_of}, found it {count} times",
                hint="the upstream file changed; update the recipe's smoke.files",
            )
        text = text.replace(old, new)
    return text


def _run_step(
    step: SmokeStep,
    root: Path,
    places: dict[str, str],
    base_env: dict[str, str],
    layout: Layout,
    note: Note,
    on_line: Note | None,
) -> StepOutcome:
    argv = [_fill(a, places) for a in step.run]
    env = {**base_env, **{k: _fill(v, places) for k, v in step.env}}
    cwd = root / step.cwd
    log = layout.logs / f"smoke-{step.name}.log"
    log.write_text(f"# smoke step {step.name}\n")
    note(f"{step.name}: {' '.join(argv[1:4])} …")
    started = time.monotonic()
    try:
        proc.run(argv, log=log, env=env, cwd=cwd, timeout=step.timeout, track=layout.child, on_line=on_line)
    except CommandFailed as exc:
        seconds = time.monotonic() - started
        note(f"{step.name}: failed after {seconds:.0f} s")
        return StepOutcome(step.name, "failed", seconds, exc.message.splitlines()[0], log=str(log))
    seconds = time.monotonic() - started
    # patterns may be absolute ({out}/...) or relative to cwd, which Path.glob cannot both take
    missing = [p for p in step.outputs if not glob.glob(_fill(p, places), root_dir=cwd)]  # noqa: PTH207
    if missing:
        return StepOutcome(step.name, "failed", seconds, f"expected output missing: {', '.join(missing)}", log=str(log))
    text = log.read_text(errors="replace")
    metrics: dict[str, Any] = {}
    for name, pattern in step.measure:
        found = [float(v) for v in re.findall(pattern, text) if _is_number(v)]
        metrics[name] = found[-1] if found else None
    problems: list[str] = []
    if step.loss:
        values = [float(v) for v in re.findall(step.loss, text) if _is_number(v)]
        metrics.update(
            loss_first=values[0] if values else None, loss_last=values[-1] if values else None, loss_values=len(values)
        )
        if len(values) < 2 or not values[-1] < values[0]:
            problems.append(f"the loss did not fall ({values[:1]} -> {values[-1:]})")
    if step.images:
        argv = [str(layout.python), str(probes_dir() / "images.py"), str(cwd / _fill(step.images, places))]
        if step.ground_truth:
            argv.append(str(cwd / _fill(step.ground_truth, places)))
        try:
            check = json.loads(proc.capture(argv, timeout=600).strip().splitlines()[-1])
        except (CommandFailed, ValueError, IndexError) as exc:
            return StepOutcome(step.name, "failed", seconds, f"could not check the frames: {exc}", log=str(log))
        metrics.update(check)
        if not check["ok"]:
            problems.append(f"frames: {check['frames']}, constant {check['constant']}, NaN {check['nan']}")
        if step.psnr_floor is not None:
            floor = max(step.psnr_floor, check.get("psnr_blank_white", 0) + 1, check.get("psnr_blank_black", 0) + 1)
            if check.get("psnr", 0) < floor:
                problems.append(
                    f"PSNR {check.get('psnr', 0):.2f} dB is below {floor:.2f} dB (floor, or a blank frame + 1 dB)"
                )
    status: Literal["failed", "ok"] = "failed" if problems else "ok"
    note(f"{step.name}: {status} in {seconds:.0f} s" + (f" ({'; '.join(problems)})" if problems else ""))
    return StepOutcome(step.name, status, seconds, "; ".join(problems), metrics=metrics, log=str(log))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
