"""recipe + host facts + options -> Plan. Pure: no I/O, no network, nothing imported from torch.

Every choice records where it came from (--option, recipe, host, default) so `envbuilder plan`
can say why; every impossible combination is refused here, before anything runs, with a message
that says what to change.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from envbuilder import __version__, datasets
from envbuilder.errors import CompatError, InputError, ToolNotFound
from envbuilder.host import Compiler, HostFacts, Interpreter, Toolkit, compat
from envbuilder.host.compat import Arch
from envbuilder.paths import default_prefix
from envbuilder.recipe.when import parse_specifier
from envbuilder.recipe.model import ExtensionUse, GitSource, PathSource, Recipe, TorchVariant

# Steps that run on every build: what they look at changes outside envbuilder (asset files).
VOLATILE = frozenset({"assets"})

# Which earlier steps each step builds on. A step's key hashes its own inputs and the keys of
# these, so a changed source re-builds the extensions but keeps the venv and its torch.
DEPENDS: dict[str, tuple[str, ...]] = {
    "toolchain": (),
    "sources": (),
    "venv": ("toolchain",),
    "wheels": ("venv",),
    "patches": ("sources", "wheels"),  # conditions and the C++ standard need the installed torch
    "extensions": ("toolchain", "patches", "wheels"),
    "verify": ("extensions",),
    "assets": ("sources",),
    "smoke": ("verify", "assets"),
    "manifest": ("toolchain", "sources", "venv", "wheels", "patches", "extensions", "verify", "assets", "smoke"),
}
GIB_PER_BUILD_JOB = 3.0  # nvcc on a rasterizer-sized .cu peaks near 2-3 GiB


@dataclass(frozen=True, kw_only=True)
class Options:
    arch: str | None = None
    cuda: str | None = None
    python: str | None = None
    prefix: Path | None = None
    jobs: int | None = None
    mirror: Path | None = None
    system_site_packages: bool = False
    installer: str = "auto"  # auto | uv | pip
    source_digest: str | None = None  # content hash of a path source, computed by the caller
    plan_only: bool = False  # `plan` may name a --cuda this machine lacks (with a warning); `build` may not
    smoke: bool = True  # run the recipe's smoke training when a GPU is present
    stub_assets: bool = False  # let the smoke run use stand-ins for missing gated assets


@dataclass(frozen=True)
class PlannedStep:
    name: str
    summary: str
    inputs: dict[str, object]
    key: str
    depends: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "summary": self.summary,
            "key": self.key,
            "depends": list(self.depends),
            "inputs": self.inputs,
        }


@dataclass(frozen=True, kw_only=True)
class Plan:
    recipe: Recipe
    prefix: Path
    archs: tuple[Arch, ...]
    toolkit: Toolkit
    compiler: Compiler
    interpreter: Interpreter
    torch: TorchVariant
    requirements: tuple[str, ...]
    extensions: tuple[ExtensionUse, ...]
    jobs: int
    installer: str
    system_site_packages: bool
    mirror: Path | None
    build_env: dict[str, str]
    provenance: dict[str, str]
    warnings: tuple[str, ...] = ()
    steps: tuple[PlannedStep, ...] = field(default=())

    @property
    def torch_cuda_arch_list(self) -> str:
        return compat.torch_arch_list(self.archs)

    def step(self, name: str) -> PlannedStep:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, object]:
        return {
            "envbuilder": __version__,
            "recipe": {"name": self.recipe.name, "file": str(self.recipe.file), "sha256": self.recipe.sha256},
            "prefix": str(self.prefix),
            "archs": [str(a) for a in self.archs],
            "torch_cuda_arch_list": self.torch_cuda_arch_list,
            "toolkit": self.toolkit.to_json(),
            "compiler": self.compiler.to_json(),
            "python": self.interpreter.to_json(),
            "torch": self.torch.to_json(),
            "requirements": list(self.requirements),
            "extensions": [{"name": e.name, "path": e.path, "import": e.extension.import_name} for e in self.extensions],
            "jobs": self.jobs,
            "installer": self.installer,
            "system_site_packages": self.system_site_packages,
            "mirror": str(self.mirror) if self.mirror else None,
            "build_env": self.build_env,
            "provenance": self.provenance,
            "warnings": list(self.warnings),
            "steps": [s.to_json() for s in self.steps],
        }


def _sha256_json(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def choose_archs(options: Options, host: HostFacts, prov: dict[str, str]) -> tuple[Arch, ...]:
    if options.arch:
        prov["arch"] = "--arch"
        return compat.parse_arch_list(options.arch)
    if host.gpus:
        prov["arch"] = "host GPUs (nvidia-smi)"
        return compat.parse_arch_list(";".join(sorted({g.compute_capability for g in host.gpus})))
    raise InputError(
        f"no --arch given and no GPU to read it from ({host.gpu_note or 'no GPU'})",
        hint="pass the arch of the GPU that will run the code: --arch 12.0 for an RTX 50xx, 9.0 for an H100",
    )


def _variant_for(recipe: Recipe, toolkit: Toolkit) -> TorchVariant | None:
    """The torch build with the toolkit's CUDA major, preferring the newest minor <= nvcc's."""
    same_major = [v for v in recipe.torch if v.cuda.major == toolkit.version.major]
    if not same_major:
        return None
    not_newer = [v for v in same_major if v.cuda <= toolkit.release]
    return max(not_newer, key=lambda v: v.cuda) if not_newer else min(same_major, key=lambda v: v.cuda)


def choose_toolkit(
    recipe: Recipe, archs: tuple[Arch, ...], options: Options, host: HostFacts, prov: dict[str, str]
) -> tuple[Toolkit, TorchVariant]:
    found = ", ".join(f"{t.version} ({t.root})" for t in host.toolkits) or "none"
    if not host.toolkits and not (options.plan_only and options.cuda):
        raise ToolNotFound(
            "no CUDA toolkit found (looked at $CUDA_HOME, nvcc on PATH, /usr/local/cuda*, /opt/cuda*)",
            hint="install CUDA >= 12.8 (13.0 recommended for Blackwell) or set CUDA_HOME to one",
        )
    if options.cuda:
        prov["cuda"] = "--cuda"
        wanted = options.cuda
        if "/" in wanted:
            real = Path(wanted).resolve()
            candidates = [t for t in host.toolkits if t.root == real]
        else:
            try:
                spec = parse_specifier(wanted)
            except (InvalidVersion, ValueError):
                raise InputError(f"--cuda {wanted!r} is not a CUDA version", hint="e.g. --cuda 12.8") from None
            candidates = [t for t in host.toolkits if spec.contains(t.version, prereleases=True)]
        if not candidates and options.plan_only and re.fullmatch(r"\d+\.\d+", wanted):
            candidates = [
                Toolkit(
                    root=Path(f"/usr/local/cuda-{wanted}"),
                    version=Version(f"{wanted}.0"),
                    found_by="--cuda (not installed here: planned as if at its default place)",
                )
            ]
            prov["cuda"] = f"--cuda {wanted}, not installed on this machine"
        if not candidates:
            raise InputError(
                f"no CUDA {wanted} toolkit on this machine (found: {found})",
                hint="install it, or pick one of those found with --cuda",
            )
        toolkit = candidates[0]
        problems = compat.cuda_problems(archs, toolkit.version)
        if problems:
            raise problems[0]
    else:
        prov["cuda"] = "host (newest toolkit that fits the archs and the recipe)"
        usable = [t for t in host.toolkits if not compat.cuda_problems(archs, t.version) and _variant_for(recipe, t)]
        if not usable:
            newest = host.toolkits[0]
            problems = compat.cuda_problems(archs, newest.version)
            if problems:
                raise CompatError(problems[0].message + f" (toolkits found: {found})", hint=problems[0].hint)
            toolkit = newest  # fits the archs but not the recipe: reported just below
        else:
            toolkit = usable[0]
    if toolkit.problems:
        raise CompatError(
            f"CUDA toolkit {toolkit.root} is incomplete: {toolkit.problems[0]}",
            hint=f"add the link: ln -s libcudart.so.{toolkit.version.major} {toolkit.root}/lib/libcudart.so",
        )
    variant = _variant_for(recipe, toolkit)
    if variant is None:
        offered = ", ".join(f"{v.tag} (CUDA {v.cuda})" for v in recipe.torch)
        problem = compat.torch_cuda_problem(recipe.torch[0].cuda, toolkit.version, f"recipe {recipe.name}'s torch")
        raise CompatError(
            f"recipe {recipe.name} offers torch builds for {offered}; nvcc is CUDA {toolkit.version}, and torch "
            "refuses to build extensions when the CUDA major versions differ",
            hint=(problem.hint if problem else None) or "pick a matching --cuda",
        )
    prov["torch"] = f"recipe ({variant.tag} matches CUDA {toolkit.release})"
    return toolkit, variant


def choose_compiler(toolkit: Toolkit, host: HostFacts, prov: dict[str, str]) -> Compiler:
    if not host.compilers:
        raise ToolNotFound("no C++ compiler found (g++ or $CXX)", hint="install g++ (Debian/Ubuntu: apt install g++)")
    default = host.compilers[0]
    problem = compat.gcc_problem(default.version, toolkit.version)
    if problem is None:
        prov["compiler"] = "$CXX" if default.name != "g++" else "host (g++ on PATH)"
        return default
    fitting = [c for c in host.compilers if compat.gcc_problem(c.version, toolkit.version) is None]
    if not fitting:
        raise problem
    choice = max(fitting, key=lambda c: c.version)
    prov["compiler"] = f"host ({default.name} {default.version} is too new for CUDA {toolkit.release})"
    return choice


def choose_interpreter(recipe: Recipe, options: Options, host: HostFacts, prov: dict[str, str]) -> Interpreter:
    candidates = list(host.interpreters)
    if options.python:
        prov["python"] = "--python"
        if "/" in options.python:
            real = Path(options.python).resolve()
            candidates = [i for i in candidates if i.path.resolve() == real]
            if not candidates:
                raise InputError(f"--python {options.python}: not a Python interpreter this machine can run")
        else:
            try:
                wanted = parse_specifier(options.python)
            except (InvalidVersion, ValueError):
                raise InputError(
                    f"--python {options.python!r} is not a version or a path", hint="e.g. --python 3.12"
                ) from None
            candidates = [i for i in candidates if wanted.contains(i.version, prereleases=True)]
            if not candidates:
                raise InputError(
                    f"no Python {options.python} found (found: {_versions(host)})",
                    hint=f"install it (pyenv install {options.python} / uv python install {options.python}) or pass --python PATH",
                )
    else:
        prov["python"] = "host (the Python running envbuilder when the recipe allows it, else the newest)"
    fitting = [i for i in candidates if recipe.python.contains(i.version, prereleases=True)]
    if not fitting:
        raise CompatError(
            f"recipe {recipe.name} needs Python {recipe.python}; "
            + (f"--python {options.python} does not fit" if options.python else f"found: {_versions(host)}"),
            hint=f"install a Python that matches {recipe.python} (pyenv or uv python install) and pass --python",
        )
    running = [i for i in fitting if i.found_by == "running envbuilder"]
    return running[0] if running and not options.python else max(fitting, key=lambda i: i.version)


def _versions(host: HostFacts) -> str:
    return ", ".join(sorted({str(i.version) for i in host.interpreters}, key=Version)) or "none"


def _jobs(options: Options, host: HostFacts, prov: dict[str, str]) -> int:
    if options.jobs is not None:
        if options.jobs < 1:
            raise InputError(f"--jobs {options.jobs}: must be at least 1")
        prov["jobs"] = "--jobs"
        return options.jobs
    prov["jobs"] = f"host ({host.cpu_count} cores, {host.memory_gib:.0f} GiB at {GIB_PER_BUILD_JOB:g} GiB per nvcc job)"
    return max(1, min(host.cpu_count, int(host.memory_gib // GIB_PER_BUILD_JOB)))


def _installer(options: Options, host: HostFacts, prov: dict[str, str]) -> str:
    if options.installer not in ("auto", "uv", "pip"):
        raise InputError(f"--installer {options.installer!r}: choose auto, uv or pip")
    if options.installer == "uv" and "uv" not in host.tools:
        raise ToolNotFound("--installer uv: uv is not on PATH", hint="pip install uv, or use --installer pip")
    if options.installer != "auto":
        prov["installer"] = "--installer"
        return options.installer
    prov["installer"] = "host (uv when on PATH, else pip)"
    return "uv" if "uv" in host.tools else "pip"


def _torch_constraint(variant: TorchVariant, archs: tuple[Arch, ...]) -> str:
    """The torch specifier to install: the recipe's, raised to the first release that knows the archs."""
    spec = variant.torch_spec
    for arch in archs:
        if arch.suffix == "f":
            raise compat.torch_arch_problems((arch,), Version("999"))[0]
    minimum = max((Version(a.info.min_torch) for a in archs if a.info.min_torch), default=None)
    if minimum is None:
        return str(spec)
    releases = [v for v in compat.TORCH_RELEASES if spec.contains(v, prereleases=True)]
    if releases and all(v < minimum for v in releases):
        raise CompatError(
            f"recipe pins torch {spec} for {variant.tag}, but arch {', '.join(str(a) for a in archs)} "
            f"needs torch >= {minimum}",
            hint=f"raise the recipe's torch pin to >= {minimum}",
        )
    if releases and all(v >= minimum for v in releases):
        return str(spec)
    return str(SpecifierSet(f"{spec},>={minimum}" if str(spec) else f">={minimum}"))


def make_plan(recipe: Recipe, host: HostFacts, options: Options) -> Plan:
    prov: dict[str, str] = {}
    warnings: list[str] = []
    archs = choose_archs(options, host, prov)
    toolkit, variant = choose_toolkit(recipe, archs, options, host, prov)
    if "not installed" in toolkit.found_by:
        warnings.append(
            f"CUDA {toolkit.release} is not installed here: this plan assumes it at {toolkit.root}; "
            f"`build` needs it (install it, or point CUDA_HOME at it)"
        )
    torch_spec = _torch_constraint(variant, archs)
    compiler = choose_compiler(toolkit, host, prov)
    interpreter = choose_interpreter(recipe, options, host, prov)
    jobs = _jobs(options, host, prov)
    installer = _installer(options, host, prov)
    prefix = (options.prefix or default_prefix(recipe.name)).absolute()
    prov["prefix"] = "--prefix" if options.prefix else "default ($ENVBUILDER_HOME/envs/<recipe>)"
    if host.glibc and Version(host.glibc) >= Version("2.41") and toolkit.version < Version("13.0"):
        warnings.append(
            f"glibc {host.glibc} with CUDA {toolkit.release}: CUDA 12.8/12.9 headers clash with glibc >= 2.41 "
            "('exception specification is incompatible ... cospi'); CUDA 13 does not"
        )
    if (
        isinstance(recipe.source, GitSource) or any(e.extension.source for e in recipe.extensions)
    ) and "git" not in host.tools:
        raise ToolNotFound("git is not on PATH and the recipe's source is a git repository", hint="install git")

    gated = [a.name for a in recipe.assets if a.gated]
    if gated:
        warnings.append(
            f"{recipe.name} needs {len(gated)} licensed file(s) no build can download ({', '.join(gated)}); "
            f"the smoke run waits for them: see `envbuilder assets {recipe.name}`"
        )
    facts: dict[str, Version | list[Version] | None] = {
        "cuda": toolkit.version,
        "python": interpreter.version,
        "gcc": compiler.version,
        "arch": [a.version for a in archs],
        "torch": _pinned(torch_spec),
    }
    chosen = [r for r in recipe.requirements if r.when is None or r.when.evaluate(facts) is not False]
    no_isolation = [r.text for r in chosen if r.no_build_isolation]
    extensions = tuple(e for e in recipe.extensions if e.when is None or e.when.evaluate(facts) is not False)
    # an extension's run-time needs join the recipe's (its wheel installs with --no-deps)
    requirements = tuple(
        dict.fromkeys(
            [r.text for r in chosen if not r.no_build_isolation] + [r for e in extensions for r in e.extension.requires]
        )
    )

    build_env = {
        "CUDA_HOME": str(toolkit.root),
        "TORCH_CUDA_ARCH_LIST": compat.torch_arch_list(archs),
        "MAX_JOBS": str(jobs),
    }
    if compiler is not host.compilers[0] or compiler.name != "g++":
        build_env.update(CC=str(compiler.path).replace("g++", "gcc"), CXX=str(compiler.path))
        build_env["NVCC_PREPEND_FLAGS"] = f"-ccbin {compiler.path}"
    build_env.update(dict(recipe.env))

    torch_reqs = [f"torch{torch_spec}"] + [f"{n}{s}" for n, s in variant.packages if n != "torch"]
    source_inputs: dict[str, object]
    if isinstance(recipe.source, GitSource):
        source_inputs = {
            "git": recipe.source.url,
            "commit": recipe.source.commit,
            "submodules": recipe.source.submodules,
        }
        if recipe.source.fallbacks:
            source_inputs["fallbacks"] = [[f.path, f.commit] for f in recipe.source.fallbacks]
    else:
        source_inputs = {"path": str(recipe.source.path), "digest": options.source_digest}
    own_sources = {e.name: [e.extension.source.url, e.extension.source.commit] for e in extensions if e.extension.source}
    if own_sources:
        source_inputs["extensions"] = own_sources
    build_requires = sorted({r for e in extensions for r in e.extension.build_requires})
    ext_inputs = [
        {"name": e.name, "path": e.path, "import": e.extension.import_name, "spec_sha256": e.extension.sha256} for e in extensions
    ]
    inputs: list[tuple[str, str, dict[str, object]]] = [
        (
            "toolchain",
            f"CUDA {toolkit.version} at {toolkit.root}, {compiler.name} {compiler.version}, Python {interpreter.version}",
            {
                "cuda_home": str(toolkit.root),
                "cuda": str(toolkit.version),
                "compiler": str(compiler.path),
                "gcc": str(compiler.version),
                "python": str(interpreter.path),
            },
        ),
        (
            "sources",
            _source_summary(recipe, options),
            {**source_inputs, "mirror": str(options.mirror) if options.mirror else None},
        ),
        (
            "venv",
            f"{installer} venv with Python {interpreter.version}"
            + (" (+ system site-packages)" if options.system_site_packages else ""),
            {
                "python": str(interpreter.path),
                "python_version": str(interpreter.version),
                "installer": installer,
                "system_site_packages": options.system_site_packages,
            },
        ),
        (
            "wheels",
            f"{' '.join(torch_reqs)} ({variant.tag}, {variant.index or 'PyPI'})"
            + (f" + {len(requirements)} requirements" if requirements else "")
            + (f" + build tools {', '.join(build_requires)}" if build_requires else ""),
            {
                "torch": torch_reqs,
                "index": variant.index,
                "requirements": list(requirements),
                "no_build_isolation": no_isolation,
                "build_requires": build_requires,
                "cuda_major": toolkit.version.major,
            },
        ),
        ("patches", _patches_summary(recipe, extensions, facts), _patch_inputs(recipe, extensions, archs)),
        (
            "extensions",
            f"build {', '.join(e.name for e in extensions) or 'nothing'} for {compat.torch_arch_list(archs)} with {jobs} jobs",
            {"extensions": ext_inputs, "build_env": build_env},
        ),
        (
            "verify",
            f"every .so holds SASS (or JIT-able PTX) for {', '.join(str(a) for a in archs)}; modules import"
            + ("; probes run on the GPU" if host.gpus else "; no GPU here: kernel probes skipped"),
            {
                "archs": [str(a) for a in archs],
                "modules": [e.extension.import_name for e in extensions],
                "probes": [e.extension.probe for e in extensions if e.extension.probe],
                "gpus": [g.name for g in host.gpus],
            },
        ),
        (
            "assets",
            f"check {len(recipe.assets)} assets ({sum(a.gated for a in recipe.assets)} gated)"
            if recipe.assets
            else "no assets",
            {"assets": [[a.name, a.path, a.kind, a.sha256 or a.sha1] for a in recipe.assets]},
        ),
        ("smoke", _smoke_summary(recipe, options, host), _smoke_inputs(recipe, options, host)),
        (
            "manifest",
            f"write {prefix / 'envbuilder.lock.json'}",
            {"recipe_sha256": recipe.sha256, "envbuilder": __version__},
        ),
    ]
    steps = []
    keys: dict[str, str] = {}
    for name, summary, step_inputs in inputs:
        depends = DEPENDS[name]
        keys[name] = _sha256_json({"step": name, "inputs": step_inputs, "depends": [keys[d] for d in depends]})[:16]
        steps.append(PlannedStep(name, summary, step_inputs, keys[name], depends))
    return Plan(
        recipe=recipe,
        prefix=prefix,
        archs=archs,
        toolkit=toolkit,
        compiler=compiler,
        interpreter=interpreter,
        torch=variant,
        requirements=requirements,
        extensions=extensions,
        jobs=jobs,
        installer=installer,
        system_site_packages=options.system_site_packages,
        mirror=options.mirror,
        build_env=build_env,
        provenance=prov,
        warnings=tuple(warnings),
        steps=tuple(steps),
    )


def _smoke_summary(recipe: Recipe, options: Options, host: HostFacts) -> str:
    if recipe.smoke is None:
        return "no smoke run in this recipe"
    what = " + ".join(s.name for s in recipe.smoke.steps)
    if why := datasets.not_written_yet(recipe.smoke.data):
        return f"not possible yet ({what}): {why}"
    if not options.smoke:
        return f"skipped (--no-smoke): {what}"
    if not host.gpus:
        return f"no GPU here: {what} waits for `envbuilder smoke` on a GPU machine"
    return f"{what} on {host.gpus[0].name}" + (" (stand-ins for missing assets)" if options.stub_assets else "")


def _smoke_inputs(recipe: Recipe, options: Options, host: HostFacts) -> dict[str, object]:
    if recipe.smoke is None:
        return {"enabled": False}
    return {
        "enabled": options.smoke and recipe.smoke is not None,
        "stub_assets": options.stub_assets,
        "gpus": [g.name for g in host.gpus],
        "recipe_sha256": recipe.sha256,  # the smoke section lives in the recipe
        "envbuilder": __version__,  # and the data generators and checks in envbuilder
    }


def _patch_inputs(recipe: Recipe, extensions: tuple[ExtensionUse, ...], archs: tuple[Arch, ...]) -> dict[str, object]:
    sets = [(".", recipe.patches)] + [(e.path, e.extension.patches) for e in extensions]
    by_arch = any(u.condition and "arch" in u.condition.variables() for _, uses in sets for u in uses)
    listed = [
        {
            "root": root,
            "patches": [
                {
                    "name": u.name,
                    "sha256": u.patch.sha256,
                    "files": list(u.targets),
                    "when": str(u.condition) if u.condition else None,
                }
                for u in uses
            ],
        }
        for root, uses in sets
        if uses
    ]
    # arch reaches the key only when a condition reads it (other facts come through the toolchain)
    return {"sets": listed, **({"archs": [str(a) for a in archs]} if by_arch else {})}


def _patches_summary(
    recipe: Recipe, extensions: tuple[ExtensionUse, ...], facts: dict[str, Version | list[Version] | None]
) -> str:
    parts = []
    for owner, uses in [(recipe.name, recipe.patches)] + [(e.name, e.extension.patches) for e in extensions]:
        for u in uses:
            decided = u.condition.evaluate(facts) if u.condition else True
            mark = (
                ""
                if decided
                else " (skipped: when " + str(u.condition) + ")"
                if decided is False
                else " (decided after torch install)"
            )
            parts.append(f"{owner}: {u.name}{mark}")
    return "; ".join(parts) or "none"


def _pinned(spec_text: str) -> Version | None:
    specs = list(SpecifierSet(spec_text))
    for s in specs:
        if s.operator in ("==", "===") and "*" not in s.version:
            return Version(s.version)
    return None


def _source_summary(recipe: Recipe, options: Options) -> str:
    source = recipe.source
    if isinstance(source, PathSource):
        return f"copy {source.path}"
    via = f" via mirror {options.mirror}" if options.mirror else ""
    return f"git {source.url} @ {source.commit[:12]}" + (" + submodules" if source.submodules else "") + via
