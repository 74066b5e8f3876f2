"""Smoke runs: a method's shortest training and render in its built env, on envbuilder's synthetic
data, with checks on what they produce (files exist, frames neither constant nor NaN, loss fell,
PSNR above the recipe's floor and above blank frames).

A step that needs an asset which is missing or broken is "blocked" and says which; with
stub_assets=True stand-ins are written where the structure is known, and every result of such a
run is marked stub-driven (its outcome says so, and its verdict is never ok). Stand-ins for files
in the user's home (torch's hub cache) go to the env's own stand-in home, and the steps then run
with HOME pointing there. Steps after a blocked or failed one are skipped (they need its output).
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
from envbuilder.assets.validators import sha
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

    @property
    def outcome(self) -> str:
        """For reports: pass | fail | blocked, qualified "stub-driven" when it ran on stand-ins."""
        if any(s.status == "failed" for s in self.steps):
            word = "fail"
        elif any(s.status in ("blocked", "skipped") for s in self.steps):
            word = "blocked"
        else:
            word = "pass"
        return f"stub-driven {word}" if self.stub_driven else word

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "ok": self.exit_code == 0,
            "outcome": self.outcome,
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
    home = layout.smoke / "home"  # stand-ins for files under ~ live here, never in ~
    statuses = assets.check(recipe, root, home)
    stubs: list[str] = []
    if stub_assets and any(s.status != "ok" for s in statuses):
        note("writing stand-ins for the missing models (made-up values: a stub-driven run)")
        written, _ = assets.stub(recipe, root, layout.python, home)
        stubs = written
        statuses = assets.check(recipe, root, home)
    stubs = sorted({*stubs, *(s.asset.name for s in statuses if s.stub)})
    bad = {s.asset.name: f"{s.status} at {s.path}" for s in statuses if s.status != "ok"}
    out = layout.smoke / "out"
    places = {
        "python": str(layout.python),
        "src": str(root),
        "prefix": str(layout.prefix),
        "out": str(out),
        "data": "",
        "probes": str(probes_dir()),
    }
    result = SmokeResult(recipe.name, stub_driven=bool(stubs), stubs=stubs, steps=[])
    if smoke.data:
        data_dir = layout.smoke / "data"
        given = {s.asset.name: s.path for s in statuses if s.status == "ok"}
        result.data = _generate(smoke.data, data_dir, layout.python, note, given)
        places["data"] = str(data_dir)
    _write_files(smoke, root)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base_env = {**child_env(layout.venv, env), **_stand_in_home(statuses, root, home)}
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
        elif step.rewrites:
            assets.record_rewrite(recipe, root, list(step.rewrites), by=f"smoke step {step.name}", home=home)
    write_json(layout.smoke / "result.json", result.to_json(), indent=1)
    return result


def _fill(text: str, places: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: places[m.group(1)], text)


def _stand_in_home(statuses: list[assets.AssetStatus], root: Path, home: Path) -> dict[str, str]:
    """When a home asset is a stand-in, the steps run with HOME at the env's stand-in home; the
    home assets that are real are linked in, so that they are still found there."""
    if not any(s.stub and home in s.path.parents for s in statuses):
        return {}
    for s in statuses:
        if assets.in_home(s.asset) and s.status == "ok" and home not in s.path.parents:
            link = assets.destination(s.asset, root, home)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(s.path)
    # torch finds its hub under $TORCH_HOME or $XDG_CACHE_HOME before ~/.cache: those go too
    return {"HOME": str(home), "TORCH_HOME": str(home / ".cache" / "torch"), "XDG_CACHE_HOME": str(home / ".cache")}


def _generate(name: str, data_dir: Path, python: Path, note: Note, given: dict[str, Path]) -> dict[str, Any]:
    """Write the synthetic data set once; a marker written last says it is complete. A data set
    built on the method's models records their checksums and is written again when they change
    (a stand-in replaced by the licensed model)."""
    script = datasets.script(name)
    if script is None:
        raise SmokeError(f"the smoke run is not possible yet: {datasets.not_written_yet(name)}")
    marker = data_dir / ".envbuilder-data.json"
    facts: dict[str, Any]
    if marker.exists():
        facts = dict(json.loads(marker.read_text()))
        inputs = facts.get("input_sha256", {})
        if all(Path(p).is_file() and sha(Path(p), "sha256") == digest for p, digest in inputs.items()):
            return facts
        note(f"the models the {name} data set was made from changed: writing it again")
    shutil.rmtree(data_dir, ignore_errors=True)
    note(f"writing the synthetic {name} data set")
    argv = [str(python), str(script), str(data_dir)]
    if datasets.reads_assets(name):
        argv += [f"--asset={asset}={path}" for asset, path in sorted(given.items())]
    out = proc.capture(argv, timeout=1200)
    facts = json.loads(out.strip().splitlines()[-1])
    digests = {str(p): sha(Path(p), "sha256") for p in facts.get("inputs", [])}
    write_json(marker, {"generator": name, **facts, "input_sha256": digests})
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
    cwd = root / _fill(step.cwd, places)  # an absolute {data}/... replaces the root
    cwd.mkdir(parents=True, exist_ok=True)
    _remove_stale_outputs(step, places, cwd, layout.prefix)
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


def _remove_stale_outputs(step: SmokeStep, places: dict[str, str], cwd: Path, prefix: Path) -> None:
    """A file left by an earlier run must not pass for this run's output (outputs written next to
    the data set, as Disco4D's logs/ are, survive between runs): delete what the step declares,
    inside the env only."""
    for pattern in step.outputs:
        for found in glob.glob(_fill(pattern, places), root_dir=cwd):  # noqa: PTH207
            path = (cwd / found).resolve()
            if prefix.resolve() in path.parents and path.is_file():
                path.unlink()
    if step.images:
        folder = (cwd / _fill(step.images, places)).resolve()
        if prefix.resolve() in folder.parents and folder.is_dir():
            for png in folder.glob("*.png"):
                png.unlink()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
