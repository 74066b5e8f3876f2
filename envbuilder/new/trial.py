"""`envbuilder new … --try`: build the draft recipe's sources, patches and extensions for this
host's arch (no smoke run) and say, per extension: compiled, SASS present, imports — or the
failure, with what diagnose finds in its log and the patch envbuilder has for it.

It is an ordinary build (envbuilder.plan.make_plan + envbuilder.execute.execute, smoke off) into
a prefix of its own. One thing differs: the extensions step builds and verifies each extension
on its own, so that one that fails does not hide how the others fare. A trial with a failure
fails that step (the env's state never claims it built), and the next --try rebuilds only what
the wheel cache does not hold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder import diagnose
from envbuilder.context import Data, StepContext
from envbuilder.errors import EnvbuilderError, StepFailed
from envbuilder.paths import home
from envbuilder.recipe.catalog import Catalog


@dataclass
class ExtensionTrial:
    name: str
    compiled: bool = False
    cache: str | None = None  # hit: the wheel cache already had it
    seconds: float | None = None
    sass: dict[str, str | None] = field(default_factory=dict)  # arch -> sass | ptx | None, over its .so files
    imports: bool | None = None
    probe: Any = None
    error: str | None = None
    step: str | None = None  # extensions (compile) | verify (SASS, import, probe)
    findings: list[dict[str, object]] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)  # envbuilder patches for what diagnose found
    log: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.compiled
            and self.error is None
            and bool(self.sass)
            and all(v == "sass" for v in self.sass.values())
            and bool(self.imports)
        )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclass
class Trial:
    recipe: str
    prefix: str
    archs: list[str]
    extensions: list[ExtensionTrial]
    failed_step: str | None = None  # a step before the extensions failed (sources, venv, patches …)
    error: str | None = None
    hint: str | None = None
    findings: list[dict[str, object]] = field(default_factory=list)
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_step is None and all(e.ok for e in self.extensions)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "prefix": self.prefix,
            "archs": self.archs,
            "ok": self.ok,
            "failed_step": self.failed_step,
            "error": self.error,
            "hint": self.hint,
            "findings": self.findings,
            "log": self.log,
            "extensions": [e.to_json() for e in self.extensions],
        }


def _patches_for(catalog: Catalog) -> dict[str, list[str]]:
    """diagnose signature id -> the patches that fix it."""
    out: dict[str, list[str]] = {}
    for name in catalog.patch_names():
        try:
            patch = catalog.patch(name)
        except EnvbuilderError:
            continue
        out.setdefault(patch.fixes, []).append(name)
    return out


def _findings(text: str, fixes: dict[str, list[str]]) -> tuple[list[dict[str, object]], list[str]]:
    # gcc quotes names with U+2018/U+2019 under a UTF-8 locale; the catalogue's patterns use ASCII quotes
    found = diagnose.scan(text.replace("\u2018", "'").replace("\u2019", "'"))
    patches = [p for f in found for p in fixes.get(f.signature.id, [])]
    return [f.to_json() for f in found], list(dict.fromkeys(patches))


def _since(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


class _EachExtension:
    """The extensions step's runner for a trial: each extension compiled, then verified (SASS for
    the archs, import, probe on a GPU) on its own; failures recorded, the step failed at the end."""

    def __init__(
        self,
        trials: dict[str, ExtensionTrial],
        archs: list[str],
        gpus: tuple[str, ...],
        fixes: dict[str, list[str]],
        probes: dict[str, str | None],
    ) -> None:
        self.trials, self.archs, self.gpus, self.fixes, self.probes = trials, archs, gpus, fixes, probes

    def __call__(self, ctx: StepContext, inputs: Any, deps: Any) -> Data:
        from envbuilder.steps import extensions, verify
        from envbuilder.steps.protocol import Deps

        built: list[dict[str, Any]] = []
        cpath: list[str] = []
        for b in inputs.extensions:
            trial = self.trials[b.name]
            trial.log = str(ctx.log)
            mark = _size(ctx.log)
            try:
                out = extensions.run(ctx, dataclasses.replace(inputs, extensions=(b,)), deps)
            except EnvbuilderError as exc:
                trial.step, trial.error = "extensions", exc.message
                own_log = ctx.log.with_name(f"{ctx.log.stem}.{b.name}.log")  # a build of its own may log apart
                text = (
                    _since(ctx.log, mark)
                    + "\n"
                    + _since(own_log, 0)
                    + "\n"
                    + exc.message
                    + "\n"
                    + getattr(exc, "tail", "")
                )
                trial.findings, trial.patches = _findings(text, self.fixes)
                ctx.note(f"{b.name}: did not build ({exc.message.splitlines()[0][:200]})")
                continue
            (one,) = out["extensions"]
            cpath = list(out["cpath"])
            trial.compiled, trial.cache, trial.seconds = True, one["cache"], one["build_seconds"]
            mark = _size(ctx.log)
            probe = self.probes.get(b.name)
            checks = verify.Inputs(tuple(self.archs), (b.extension.import_name,), (probe,) if probe else (), self.gpus)
            verify_deps = Deps(
                "verify", {**{n: deps[n] for n in deps}, "extensions": {**out, "extensions": [one]}}, deps.step_keys
            )
            platlib = Path(deps["venv"]["platlib"])
            binaries, _ = verify.check_binaries(platlib, [one], self.archs)
            for arch in self.archs:
                seen = [bin_["runs_on"].get(arch) for bin_ in binaries if bin_["sass"] or bin_["ptx"]]
                trial.sass[arch] = (
                    "sass"
                    if seen and all(s == "sass" for s in seen)
                    else ("ptx" if seen and all(s for s in seen) else None)
                )
            try:
                result = verify.run(ctx, checks, verify_deps)
                trial.imports = True
                trial.probe = result["probes"].get(probe) if probe else None
            except EnvbuilderError as exc:
                trial.step, trial.error = "verify", exc.message
                # verify checks the binaries, then the import, then the probe: what failed tells how far it got
                if "does not import" in exc.message:
                    trial.imports = False
                elif "probe" in exc.message:
                    trial.imports = True
                trial.findings, trial.patches = _findings(_since(ctx.log, mark) + "\n" + exc.message, self.fixes)
                continue
            built.append(one)
        failed = [n for n, t in self.trials.items() if t.error]
        if failed:
            raise EnvbuilderError(
                f"{len(failed)} of {len(self.trials)} extensions failed the trial: {', '.join(failed)}",
                hint="see the per-extension report; the others were built and verified",
            )
        return {"extensions": built, "cpath": cpath, "build_env": inputs.build_env}


def run(
    recipes: Path,
    name: str,
    *,
    arch: str | None = None,
    mirror: Path | None = None,
    prefix: Path | None = None,
    reporter: Any = None,
) -> Trial:
    """Build the recipe `name` from the folder `recipes` (what `new` wrote) with smoke off."""
    from envbuilder.execute import execute
    from envbuilder.host import discover
    from envbuilder.plan import Options, make_plan

    catalog = Catalog.default([recipes])
    recipe = catalog.recipe(name)
    host = discover()
    options = Options(arch=arch, prefix=prefix or home() / "try" / name, mirror=mirror, smoke=False)
    plan = make_plan(recipe, host, options)
    archs = [str(a) for a in plan.archs]
    trials = {e.name: ExtensionTrial(e.name) for e in plan.extensions}
    runner = _EachExtension(
        trials, archs, plan.resolved.gpus, _patches_for(catalog), {e.name: e.extension.probe for e in plan.extensions}
    )
    trial = Trial(recipe=name, prefix=str(plan.prefix), archs=archs, extensions=list(trials.values()))
    try:
        execute(plan, reporter, runners={"extensions": runner})
    except StepFailed as exc:
        if exc.step != "extensions":
            trial.failed_step, trial.error, trial.hint, trial.findings = exc.step, exc.message, exc.hint, exc.diagnoses
            trial.log = str(exc.log) if exc.log else None
    return trial
