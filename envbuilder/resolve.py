"""Resolve once, purely: recipe + host facts + options -> the frozen `Resolved` value every
step derives its inputs from (envbuilder/plan.py loops over the steps).

No I/O, no network, nothing imported from torch. Every choice records where it came from
(--option, recipe, host, default) so `envbuilder plan` can say why; every impossible
combination is refused here, before anything runs, with a message that says what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envbuilder.errors import CompatError, InputError, ToolNotFound
from envbuilder.host import Compiler, HostFacts, Interpreter, Toolkit, compat
from envbuilder.host.compat import Arch
from envbuilder.paths import default_prefix
from envbuilder.recipe import when
from envbuilder.recipe.model import ExtensionUse, GitSource, Recipe, SdistEnv, TorchVariant
from envbuilder.recipe.when import parse_specifier

if TYPE_CHECKING:
    from envbuilder.lock.model import Lock

GIB_PER_BUILD_JOB = 3.0  # nvcc on a rasterizer-sized .cu peaks near 2-3 GiB

Installer = Literal["auto", "uv", "pip"]


@dataclass(frozen=True, kw_only=True)
class Options:
    arch: str | None = None
    cuda: str | None = None
    python: str | None = None
    prefix: Path | None = None
    jobs: int | None = None
    mirror: Path | None = None
    system_site_packages: bool = False
    installer: Installer = "auto"
    source_digest: str | None = None  # content hash of a path source, computed by the caller
    plan_only: bool = False  # `plan` may name a --cuda this machine lacks (with a warning); `build` may not
    smoke: bool = True  # run the recipe's smoke training when a GPU is present
    stub_assets: bool = False  # let the smoke run use stand-ins for missing gated assets
    lock: Lock | None = None  # build --locked: exactly these wheels, commits and patches
    lock_file: Path | None = None  # where the lock was read from (its relative paths start there)


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """Everything decided about a build, once. Steps read this only in their `inputs()`."""

    recipe: Recipe
    options: Options
    prefix: Path
    archs: tuple[Arch, ...]
    toolkit: Toolkit
    compiler: Compiler
    interpreter: Interpreter
    torch: TorchVariant
    torch_requirements: tuple[str, ...]  # the torch family as installed: torch raised to the archs' floor
    requirements: tuple[str, ...]  # the recipe's (and its extensions' run-time needs), conditions decided
    no_build_isolation: tuple[str, ...]
    extensions: tuple[ExtensionUse, ...]
    jobs: int
    installer: Literal["uv", "pip"]
    build_env: dict[str, str]
    facts: when.Facts
    gpus: tuple[str, ...]  # names of this host's GPUs
    provenance: dict[str, str]
    warnings: tuple[str, ...] = ()
    sdist_env: SdistEnv = ()  # normalized name -> the variables its sdist's build needs

    @property
    def torch_cuda_arch_list(self) -> str:
        return compat.torch_arch_list(self.archs)


def resolve(recipe: Recipe, host: HostFacts, options: Options) -> Resolved:
    prov: dict[str, str] = {}
    warnings: list[str] = []
    if options.lock is not None:
        options = _locked_options(recipe, options, prov)
    archs = choose_archs(options, host, prov)
    toolkit, variant = choose_toolkit(recipe, archs, options, host, prov)
    torch_spec = _torch_constraint(variant, archs)
    compiler = choose_compiler(toolkit, host, prov)
    interpreter = choose_interpreter(recipe, options, host, prov)
    _check_git(recipe, host)
    facts = when.facts(
        cuda=toolkit.version,
        python=interpreter.version,
        gcc=compiler.version,
        archs=[a.version for a in archs],
        torch=_pinned(torch_spec),
    )
    chosen = [r for r in recipe.requirements if r.when is None or r.when.evaluate(facts) is not False]
    extensions = tuple(e for e in recipe.extensions if e.when is None or e.when.evaluate(facts) is not False)
    # an extension's run-time needs join the recipe's (its wheel installs with --no-deps)
    requirements = [r.text for r in chosen if not r.no_build_isolation]
    requirements += [r for e in extensions for r in e.extension.requires]
    jobs = _jobs(options, host, prov)
    if options.lock is not None:
        warnings += _check_lock_toolchain(options.lock, toolkit, interpreter, compiler)
    prov["prefix"] = "--prefix" if options.prefix else "default ($ENVBUILDER_HOME/envs/<recipe>)"
    return Resolved(
        recipe=recipe,
        options=options,
        prefix=(options.prefix or default_prefix(recipe.name)).absolute(),
        archs=archs,
        toolkit=toolkit,
        compiler=compiler,
        interpreter=interpreter,
        torch=variant,
        torch_requirements=(f"torch{torch_spec}", *(f"{n}{s}" for n, s in variant.packages if n != "torch")),
        requirements=tuple(dict.fromkeys(requirements)),
        no_build_isolation=tuple(r.text for r in chosen if r.no_build_isolation),
        sdist_env=tuple((_requirement_name(r.text), r.sdist_env) for r in chosen if r.sdist_env),
        extensions=extensions,
        jobs=jobs,
        installer=_installer(options, host, prov),
        build_env=_build_env(recipe, archs, toolkit, compiler, host, jobs),
        facts=facts,
        gpus=tuple(g.name for g in host.gpus),
        provenance=prov,
        warnings=tuple(warnings + _warnings(recipe, toolkit, host)),
    )


def _locked_options(recipe: Recipe, options: Options, prov: dict[str, str]) -> Options:
    """build --locked: the lock decides arch, CUDA and Python unless an option says otherwise,
    and it must be a lock of this recipe as it is now (else its commits and patches are not)."""
    import dataclasses

    assert options.lock is not None
    part = options.lock.envbuilder
    where = options.lock_file or "the lock"
    if part is None:
        raise InputError(
            f"{where} has no [tool.envbuilder] part: it is not a lock envbuilder made", hint="envbuilder lock RECIPE"
        )
    if part.recipe and part.recipe != recipe.name:
        raise InputError(f"{where} is a lock of recipe {part.recipe}, not {recipe.name}")
    if part.recipe_sha256 and part.recipe_sha256 != recipe.sha256:
        raise InputError(
            f"recipe {recipe.name} changed since {where} was made (sha256 {part.recipe_sha256[:12]} then, {recipe.sha256[:12]} now)",
            hint=f"lock it again (envbuilder lock {recipe.name} --output {where}) and review the diff, or build from the recipe as it was",
        )
    locked_archs = ";".join(part.archs) or None
    if locked_archs and options.arch and compat.parse_arch_list(options.arch) != compat.parse_arch_list(locked_archs):
        raise InputError(
            f"--arch {options.arch} differs from the lock's archs {locked_archs}",
            hint="drop --arch, or lock again for it",
        )
    if locked_archs and not options.arch:
        prov["arch"] = "the lock"
    toolchain, target = part.toolchain, part.target
    python = (toolchain.python if toolchain else None) or (target.python if target else None)
    return dataclasses.replace(
        options,
        arch=options.arch or locked_archs,
        python=options.python or python,
        cuda=options.cuda or (toolchain.cuda if toolchain else None),
    )


def _check_lock_toolchain(lock: Lock, toolkit: Toolkit, interpreter: Interpreter, compiler: Compiler) -> list[str]:
    """CUDA and Python must be the lock's (exit 2, before anything is written). A gcc of another
    major is only a warning: it matters only to extensions that must compile here, whose keys then
    differ from the lock's (prebuilt wheels named by the lock's keys are still used)."""
    from envbuilder.lock.expect import toolchain_problems

    problems = toolchain_problems(lock, cuda=toolkit.version, python=interpreter.version)
    if problems:
        raise problems[0]
    gcc = toolchain_problems(lock, gcc=compiler.version)
    return [f"{gcc[0].message}: extensions compiled here get keys other than the lock's"] if gcc else []


def _check_git(recipe: Recipe, host: HostFacts) -> None:
    own = any(e.extension.source for e in recipe.extensions)
    if (isinstance(recipe.source, GitSource) or own) and "git" not in host.tools:
        raise ToolNotFound("git is not on PATH and the recipe's source is a git repository", hint="install git")


def _build_env(
    recipe: Recipe, archs: tuple[Arch, ...], toolkit: Toolkit, compiler: Compiler, host: HostFacts, jobs: int
) -> dict[str, str]:
    """The variables extension builds see: toolkit, archs, jobs, the chosen compiler, the recipe's own."""
    env = {"CUDA_HOME": str(toolkit.root), "TORCH_CUDA_ARCH_LIST": compat.torch_arch_list(archs), "MAX_JOBS": str(jobs)}
    if compiler is not host.compilers[0] or compiler.name != "g++":
        env.update(CC=str(compiler.path).replace("g++", "gcc"), CXX=str(compiler.path))
        env["NVCC_PREPEND_FLAGS"] = f"-ccbin {compiler.path}"
    env.update(dict(recipe.env))
    return env


def _warnings(recipe: Recipe, toolkit: Toolkit, host: HostFacts) -> list[str]:
    warnings = []
    if "not installed" in toolkit.found_by:
        warnings.append(
            f"CUDA {toolkit.release} is not installed here: this plan assumes it at {toolkit.root}; "
            f"`build` needs it (install it, or point CUDA_HOME at it)"
        )
    if host.glibc and Version(host.glibc) >= Version("2.41") and toolkit.version < Version("13.0"):
        warnings.append(
            f"glibc {host.glibc} with CUDA {toolkit.release}: CUDA 12.8/12.9 headers clash with glibc >= 2.41 "
            "('exception specification is incompatible ... cospi'); CUDA 13 does not"
        )
    gated = [a.name for a in recipe.assets if a.gated]
    if gated:
        warnings.append(
            f"{recipe.name} needs {len(gated)} licensed file(s) no build can download ({', '.join(gated)}); "
            f"the smoke run waits for them: see `envbuilder assets {recipe.name}`"
        )
    return warnings


def _pinned(spec_text: str) -> Version | None:
    for s in SpecifierSet(spec_text):
        if s.operator in ("==", "===") and "*" not in s.version:
            return Version(s.version)
    return None


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
    if not host.toolkits and not (options.plan_only and options.cuda):
        raise ToolNotFound(
            "no CUDA toolkit found (looked at $CUDA_HOME, nvcc on PATH, /usr/local/cuda*, /opt/cuda*)",
            hint="install CUDA >= 12.8 (13.0 recommended for Blackwell) or set CUDA_HOME to one",
        )
    if options.cuda:
        toolkit = _toolkit_named(options.cuda, archs, options, host, prov)
    else:
        toolkit = _toolkit_that_fits(recipe, archs, host, prov)
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


def _found(host: HostFacts) -> str:
    return ", ".join(f"{t.version} ({t.root})" for t in host.toolkits) or "none"


def _toolkit_named(
    wanted: str, archs: tuple[Arch, ...], options: Options, host: HostFacts, prov: dict[str, str]
) -> Toolkit:
    """--cuda 13.0 (a release or a specifier) or --cuda /path/to/cuda."""
    prov["cuda"] = "--cuda"
    if "/" in wanted:
        real = Path(wanted).resolve()
        candidates = [t for t in host.toolkits if t.root == real]
    else:
        try:
            specifier = parse_specifier(wanted)
        except (InvalidVersion, ValueError):
            raise InputError(f"--cuda {wanted!r} is not a CUDA version", hint="e.g. --cuda 12.8") from None
        candidates = [t for t in host.toolkits if specifier.contains(t.version, prereleases=True)]
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
            f"no CUDA {wanted} toolkit on this machine (found: {_found(host)})",
            hint="install it, or pick one of those found with --cuda",
        )
    problems = compat.cuda_problems(archs, candidates[0].version)
    if problems:
        raise problems[0]
    return candidates[0]


def _toolkit_that_fits(recipe: Recipe, archs: tuple[Arch, ...], host: HostFacts, prov: dict[str, str]) -> Toolkit:
    """The newest toolkit that can build the archs and has a torch build in the recipe."""
    prov["cuda"] = "host (newest toolkit that fits the archs and the recipe)"
    usable = [t for t in host.toolkits if not compat.cuda_problems(archs, t.version) and _variant_for(recipe, t)]
    if usable:
        return usable[0]
    newest = host.toolkits[0]
    problems = compat.cuda_problems(archs, newest.version)
    if problems:
        raise CompatError(problems[0].message + f" (toolkits found: {_found(host)})", hint=problems[0].hint)
    return newest  # fits the archs but not the recipe: choose_toolkit reports it


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


def _installer(options: Options, host: HostFacts, prov: dict[str, str]) -> Literal["uv", "pip"]:
    if options.installer not in ("auto", "uv", "pip"):
        raise InputError(f"--installer {options.installer!r}: choose auto, uv or pip")
    # --installer uv needs no uv on PATH: envbuilder brings its own (envbuilder/lock/tools.py)
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


def _requirement_name(text: str) -> str:
    return canonicalize_name(Requirement(text).name)
