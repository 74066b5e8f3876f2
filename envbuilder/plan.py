"""recipe + host facts + options -> Plan. Pure: no I/O, no network, nothing imported from torch.

`make_plan` resolves toolchain, Python, torch and arch once (envbuilder/resolve.py), then asks
each step of the one step list (envbuilder/steps/) for its inputs. A step's key hashes its inputs
and the keys of the steps it depends on, so a changed source re-builds the extensions but keeps
the venv and its torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuilder import __version__
from envbuilder.host import Compiler, HostFacts, Interpreter, Toolkit
from envbuilder.host.compat import Arch
from envbuilder.recipe.model import ExtensionUse, Recipe, TorchVariant
from envbuilder.resolve import Options, Resolved, resolve
from envbuilder.steps import STEPS, key_of


@dataclass(frozen=True)
class PlannedStep:
    name: str
    summary: str
    given: Any  # the step module's Inputs: all that its run() may know
    key: str
    depends: tuple[str, ...] = ()

    @property
    def inputs(self) -> dict[str, Any]:
        """The inputs as data: what the key hashes, and what `plan --json` and the lock show."""
        data: dict[str, Any] = self.given.key()
        return data

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "summary": self.summary,
            "key": self.key,
            "depends": list(self.depends),
            "inputs": self.inputs,
        }


@dataclass(frozen=True)
class Plan:
    resolved: Resolved
    steps: tuple[PlannedStep, ...]

    def step(self, name: str) -> PlannedStep:
        return next(s for s in self.steps if s.name == name)

    # what the resolved build says, under the names readers of a plan use
    @property
    def recipe(self) -> Recipe:
        return self.resolved.recipe

    @property
    def prefix(self) -> Path:
        return self.resolved.prefix

    @property
    def archs(self) -> tuple[Arch, ...]:
        return self.resolved.archs

    @property
    def toolkit(self) -> Toolkit:
        return self.resolved.toolkit

    @property
    def compiler(self) -> Compiler:
        return self.resolved.compiler

    @property
    def interpreter(self) -> Interpreter:
        return self.resolved.interpreter

    @property
    def torch(self) -> TorchVariant:
        return self.resolved.torch

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.resolved.requirements

    @property
    def extensions(self) -> tuple[ExtensionUse, ...]:
        return self.resolved.extensions

    @property
    def jobs(self) -> int:
        return self.resolved.jobs

    @property
    def installer(self) -> str:
        return self.resolved.installer

    @property
    def build_env(self) -> dict[str, str]:
        return self.resolved.build_env

    @property
    def provenance(self) -> dict[str, str]:
        return self.resolved.provenance

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.resolved.warnings

    @property
    def torch_cuda_arch_list(self) -> str:
        return self.resolved.torch_cuda_arch_list

    def to_json(self) -> dict[str, object]:
        r = self.resolved
        return {
            "envbuilder": __version__,
            "recipe": {"name": r.recipe.name, "file": str(r.recipe.file), "sha256": r.recipe.sha256},
            "prefix": str(r.prefix),
            "archs": [str(a) for a in r.archs],
            "torch_cuda_arch_list": r.torch_cuda_arch_list,
            "toolkit": r.toolkit.to_json(),
            "compiler": r.compiler.to_json(),
            "python": r.interpreter.to_json(),
            "torch": r.torch.to_json(),
            "requirements": list(r.requirements),
            "extensions": [{"name": e.name, "path": e.path, "import": e.extension.import_name} for e in r.extensions],
            "jobs": r.jobs,
            "installer": r.installer,
            "system_site_packages": r.options.system_site_packages,
            "mirror": str(r.options.mirror) if r.options.mirror else None,
            "build_env": r.build_env,
            "provenance": r.provenance,
            "warnings": list(r.warnings),
            "steps": [s.to_json() for s in self.steps],
        }


def make_plan(recipe: Recipe, host: HostFacts, options: Options) -> Plan:
    resolved = resolve(recipe, host, options)
    keys: dict[str, str] = {}
    planned = []
    for step in STEPS:
        summary, inputs = step.inputs(resolved)
        keys[step.NAME] = key_of(step.NAME, inputs, [keys[d] for d in step.DEPENDS])
        planned.append(PlannedStep(step.NAME, summary, inputs, keys[step.NAME], step.DEPENDS))
    return Plan(resolved, tuple(planned))


__all__ = ["Options", "Plan", "PlannedStep", "make_plan"]
