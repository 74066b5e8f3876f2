"""extensions: build each CUDA extension as a wheel for the planned archs, then install it.

Built with the env's own pip, no build isolation (the extension must see the env's torch),
TORCH_CUDA_ARCH_LIST from --arch, CUDA_HOME from the plan and MAX_JOBS sized from cores and RAM.
A wheel whose content key (key_inputs below) is in the cache is installed without compiling.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from envbuilder.compile import Schedule, run_all, schedule, with_threads
from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.host.compat import parse_arch_list
from envbuilder.paths import cache_dir
from envbuilder.recipe.model import Extension
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps
from envbuilder.steps.sources import extension_dir

if TYPE_CHECKING:
    from envbuilder import compilecache
    from envbuilder.cache import WheelCache
    from envbuilder.host.compat import Arch
    from envbuilder.installer import Installer
    from envbuilder.remote import Remote

NAME = "extensions"
DEPENDS: tuple[str, ...] = ("toolchain", "patches", "wheels")
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class Build:
    name: str
    path: str  # where its setup.py sits, in the method's tree or in its own
    extension: Extension

    def key(self) -> Data:
        return {
            "name": self.name,
            "path": self.path,
            "import": self.extension.import_name,
            "spec_sha256": self.extension.sha256,
        }


@dataclass(frozen=True)
class Inputs:
    extensions: tuple[Build, ...]
    build_env: dict[str, str]  # CUDA_HOME, TORCH_CUDA_ARCH_LIST, MAX_JOBS, compiler, the recipe's env
    # build --locked: the lock's content keys, and the toolchain they were computed with; a wheel
    # built elsewhere under that key (a bundle, a shared cache) is used when only the toolchain differs
    locked: tuple[tuple[str, str], ...] = ()
    locked_toolchain: tuple[tuple[str, str], ...] = ()  # nvcc, gcc, abi

    def key(self) -> Data:
        data: Data = {"extensions": [b.key() for b in self.extensions], "build_env": self.build_env}
        if self.locked or self.locked_toolchain:
            data["locked"] = {"keys": dict(self.locked), "toolchain": dict(self.locked_toolchain)}
        return data

    @property
    def schedule(self) -> Schedule:
        """How the extensions compile (see envbuilder/compile.py); decided by the plan's numbers."""
        archs = len(parse_arch_list(self.build_env["TORCH_CUDA_ARCH_LIST"]))
        return schedule(int(self.build_env["MAX_JOBS"]), len(self.extensions), archs)


class Outputs(TypedDict):
    # per extension: name, import, wheel, wheel_sha256, so_files, build_seconds, cache_key, cache
    # (hit | cached | already cached | not cached: why), locked_key when the build was locked
    extensions: list[dict[str, Any]]
    cpath: list[str]
    build_env: dict[str, str]


def inputs(r: Resolved) -> tuple[str, Inputs]:
    names = ", ".join(e.name for e in r.extensions) or "nothing"
    given = Inputs(tuple(Build(e.name, e.path, e.extension) for e in r.extensions), r.build_env, *_locked(r))
    how = given.schedule
    plan = f" ({how.describe(len(r.extensions))})" if how.concurrent > 1 or how.nvcc_threads > 1 else ""
    return f"build {names} for {r.torch_cuda_arch_list} with {r.jobs} jobs{plan}", given


def _locked(r: Resolved) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    part = r.options.lock.envbuilder if r.options.lock else None
    if part is None:
        return (), ()
    tools = part.toolchain
    facts = {"nvcc": tools.nvcc, "gcc": tools.gcc, "abi": tools.abi} if tools else {}
    return tuple((e.name, e.key) for e in part.extensions), tuple((k, v) for k, v in facts.items() if v)


@dataclass
class _Job:
    build: Build
    source: Path
    env: dict[str, str]
    key: str  # the key this build would store its wheel under
    key_data: Data
    locked_key: str | None  # the lock's, when this build matches it
    log: Path
    source_ref: dict[str, str | None]  # the repository it comes from: url, commit, path (cache metadata)
    wheel: Path | None = None
    cache: str = ""
    seconds: float = 0.0

    @property
    def candidates(self) -> tuple[str, ...]:
        """Keys whose wheel will do: the lock's (built where the lock was made) first."""
        return tuple(dict.fromkeys(k for k in (self.locked_key, self.key) if k))


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import cache, compilecache, installer

    tool = installer.for_env(deps["venv"]["installer"], ctx)
    ctx.layout.wheels.mkdir(parents=True, exist_ok=True)
    cuda_home = Path(inputs.build_env["CUDA_HOME"])
    env = ctx.env(inputs.build_env, path_first=[cuda_home / "bin"])
    keyed = dict(env)  # torch's own nvidia headers, added below, follow from torch and the toolkit (both keyed)
    extra_includes = _wheel_cuda_includes(cuda_home, deps["venv"])
    if extra_includes:
        env["CPATH"] = os.pathsep.join([*extra_includes, *filter(None, [env.get("CPATH")])])
        ctx.note(
            f"the toolkit lacks the CUDA math-library headers; using torch's nvidia wheels: {', '.join(extra_includes)}"
        )
    archs = parse_arch_list(inputs.build_env["TORCH_CUDA_ARCH_LIST"])
    store = cache.WheelCache(cache_dir() / "wheels")
    share = _shared_cache(ctx)
    jobs = [_job(ctx, inputs, deps, b, env, keyed) for b in inputs.extensions]
    rebuild = bool(os.environ.get(REBUILD_VAR))
    if rebuild:
        ctx.note("--rebuild-extensions: compiling, whatever a cache holds")
    else:  # caches first, so that the job budget is split among only the builds that compile
        run_all(jobs, lambda job: _fetch(ctx, store, share, job, archs), FETCHES_AT_ONCE)
    todo = [j for j in jobs if j.wheel is None]
    how = schedule(int(inputs.build_env["MAX_JOBS"]), len(todo), len(archs))
    if todo:
        names = ", ".join(j.build.name for j in todo)
        ctx.note(f"{names}: in no cache; compiling {how.describe(len(todo))}")
    with compilecache.Session(env, ctx.layout.prefix, ctx.note) as compiling:
        run_all(todo, lambda job: _obtain(ctx, tool, store, job, how, archs, compiling, rebuild), how.concurrent)
    if share is not None and os.environ.get(PUSH_VAR):
        for job in todo:
            _publish(ctx, share, store, job)
    built = [_install(ctx, tool, job) for job in jobs]
    return Outputs(extensions=built, cpath=extra_includes, build_env=inputs.build_env)


def _shared_cache(ctx: StepContext) -> Remote | None:
    """`build --cache REMOTE` / $ENVBUILDER_CACHE_REMOTE; unreachable or refusing it only means compiling."""
    from envbuilder import remote

    try:
        return remote.from_environment()
    except EnvbuilderError as exc:
        ctx.note(f"warning: the shared cache is not used: {exc.message}")
        return None


def _job(ctx: StepContext, inputs: Inputs, deps: Deps, b: Build, env: dict[str, str], keyed: dict[str, str]) -> _Job:
    """What building b needs: where, with what, under which key. `keyed` is the env its key reads:
    as `envbuilder lock` sees it, before the extras a build adds (torch's nvidia headers)."""
    from envbuilder import cache

    source = extension_dir(deps["sources"], b.name, b.path)
    if not ((source / "setup.py").is_file() or (source / "pyproject.toml").is_file()):
        raise InputError(f"extension {b.name}: no setup.py or pyproject.toml in {source}")
    shutil.rmtree(source / "build", ignore_errors=True)  # objects from another arch list must not be reused
    build_env = {**env, **dict(b.extension.build_env)}
    key_env = {**keyed, **dict(b.extension.build_env)}
    torch, prefix = deps["wheels"]["torch"], ctx.layout.prefix
    key_data = content_key_inputs(b, source, key_env, inputs.build_env, deps["toolchain"], torch, prefix)
    key = cache.wheel_key(key_data)
    locked = dict(inputs.locked).get(b.name)
    matches = None
    if locked:
        facts = dict(inputs.locked_toolchain)
        own = deps["toolchain"]
        as_locked = {**own, "nvcc": facts.get("nvcc", own["nvcc"]), "gcc": facts.get("gcc", own["gcc"])}
        as_locked["python"] = {**own["python"], "abi": facts.get("abi", own["python"]["abi"])}
        again = cache.wheel_key(content_key_inputs(b, source, key_env, inputs.build_env, as_locked, torch, prefix))
        matches = locked if again == locked else None
        if matches is None:
            ctx.note(
                f"warning: {b.name}: its sources, patches, torch or build settings differ from the lock's (key {again[:12]} here, {locked[:12]} locked)"
            )
        elif locked != key:
            ctx.note(
                f"{b.name}: the lock's key {locked[:12]} names a build with another toolchain; this host's is {key[:12]}"
            )
    log = ctx.log.with_name(f"{ctx.log.stem}.{b.name}.log")
    tree = deps["sources"].get("extensions", {}).get(b.name) or deps["sources"]
    ref = {"url": tree.get("git"), "commit": tree.get("commit"), "path": b.path}
    return _Job(b, source, build_env, key, key_data, matches, log, ref)


FETCHES_AT_ONCE = 4  # downloads from a shared cache overlap; local lookups are instant anyway


def _fetch(ctx: StepContext, store: WheelCache, share: Remote | None, job: _Job, archs: tuple[Arch, ...]) -> None:
    """The job's wheel from the local cache, else the shared one (under the key's claim: a wheel
    another build is compiling right now is waited for, not compiled twice)."""
    with store.claim(job.key) as claim:
        if claim.waited:
            ctx.note(f"{job.build.name}: waited {claim.seconds:.0f} s for another build of key {job.key[:12]}")
        if not _from_cache(ctx, store, job, archs) and share is not None:
            _from_share(ctx, store, share, job, archs)


def _obtain(
    ctx: StepContext,
    tool: Installer,
    store: WheelCache,
    job: _Job,
    how: Schedule,
    archs: tuple[Arch, ...],
    compiling: compilecache.Session,
    rebuild: bool,
) -> None:
    """Compile the job's wheel, under the key's claim, so two builds on one machine that need the
    same missing extension compile it once (the second finds it in the cache when the claim ends)."""
    with store.claim(job.key) as claim:
        if claim.waited:
            ctx.note(f"{job.build.name}: waited {claim.seconds:.0f} s for another build of key {job.key[:12]}")
        if not rebuild and _from_cache(ctx, store, job, archs):  # compiled by another build meanwhile
            return
        _compile(ctx, tool, store, job, how, archs, compiling.variables())


PUSH_VAR = "ENVBUILDER_CACHE_PUSH"  # set by build --cache REMOTE --push
REBUILD_VAR = "ENVBUILDER_REBUILD_EXTENSIONS"  # set by build --rebuild-extensions


def _from_cache(ctx: StepContext, store: WheelCache, job: _Job, archs: tuple[Arch, ...]) -> bool:
    """The lock's wheel first (built where the lock was made), then this host's."""
    for key in job.candidates:
        cached, why = store.lookup(key, archs, recipe=ctx.layout.recipe)
        if cached is not None:
            job.wheel = ctx.layout.wheels / cached.name
            shutil.copyfile(cached, job.wheel)
            job.cache, job.key = "hit", key
            ctx.note(f"{job.build.name}: cached wheel {cached.name} (key {key[:12]}), no compile")
            return True
        if why != "not cached":
            ctx.note(f"{job.build.name}: {why}")
    return False


def _from_share(ctx: StepContext, store: WheelCache, share: Remote, job: _Job, archs: tuple[Arch, ...]) -> bool:
    from envbuilder import remote

    for key in job.candidates:
        started = time.monotonic()
        try:
            wheel, reason = remote.restore(share, store, key, archs, recipe=ctx.layout.recipe)
        except EnvbuilderError as exc:
            ctx.note(f"warning: {job.build.name}: shared cache {share.url}: {exc.message}; compiling instead")
            return False
        if wheel is not None:
            job.wheel = ctx.layout.wheels / wheel.name
            shutil.copyfile(wheel, job.wheel)
            job.cache, job.key = "shared", key
            job.seconds = round(time.monotonic() - started, 1)
            ctx.note(f"{job.build.name}: {reason} ({job.seconds:.1f} s), no compile")
            return True
        ctx.note(f"{job.build.name}: {share.url}: {reason}")
    return False


def _publish(ctx: StepContext, share: Remote, store: WheelCache, job: _Job) -> None:
    if job.cache not in ("cached", "already cached") or job.wheel is None:
        return
    try:
        done = share.publish(
            job.key, job.wheel, {"inputs": job.key_data, "recipe": ctx.layout.recipe, "source": job.source_ref}
        )
        ctx.note(f"{job.build.name}: {done.status} to {share.url} as {done.tag}")
    except EnvbuilderError as exc:
        ctx.note(f"warning: {job.build.name}: not pushed to {share.url}: {exc.message}")


def _compile(
    ctx: StepContext,
    tool: Installer,
    store: WheelCache,
    job: _Job,
    how: Schedule,
    archs: tuple[Arch, ...],
    extra: dict[str, str],
) -> None:
    started = time.monotonic()
    env = with_threads({**job.env, **extra, "MAX_JOBS": str(how.jobs_each)}, how.nvcc_threads)
    if how.concurrent > 1:
        ctx.note(f"compiling {job.build.name} (log {job.log})")
    else:
        ctx.note(f"compiling {job.build.name} for {env['TORCH_CUDA_ARCH_LIST']} ({how.describe(1)})")
    job.wheel = _build(ctx, tool, job.build.name, job.source, env, job.log if how.concurrent > 1 else None)
    job.cache = store.store(
        job.key, job.wheel, job.key_data, archs, metadata={"recipe": ctx.layout.recipe, "source": job.source_ref}
    )
    if job.cache not in ("cached", "already cached"):
        ctx.note(f"warning: {job.build.name}: {job.cache}")
    job.seconds = round(time.monotonic() - started, 1)
    ctx.note(f"built {job.wheel.name} in {job.seconds:.0f} s")


def _install(ctx: StepContext, tool: Installer, job: _Job) -> dict[str, Any]:
    assert job.wheel is not None
    tool.install([str(job.wheel)], options=["--no-deps", "--force-reinstall"])
    with zipfile.ZipFile(job.wheel) as zf:
        so_files = sorted(n for n in zf.namelist() if n.endswith(".so") or ".so." in n)
    return {
        "name": job.build.name,
        "import": job.build.extension.import_name,
        "wheel": str(job.wheel),
        "wheel_sha256": hashlib.sha256(job.wheel.read_bytes()).hexdigest(),
        "so_files": so_files,
        "build_seconds": job.seconds,
        "cache_key": job.key,
        "cache": job.cache,
        **({"locked_key": job.locked_key} if job.locked_key else {}),
    }


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return all(Path(e["wheel"]).is_file() for e in outputs.get("extensions", []))


def content_key_inputs(
    build: Build, source: Path, env: dict[str, str], planned: dict[str, str], toolchain: Data, torch: Data, prefix: Path
) -> Data:
    """What a built extension's content key hashes, from the env its build sees (env), the
    planned build variables, the toolchain and torch facts, and the patched tree at source.
    `envbuilder lock` calls it too: a lock records the key before anything compiles."""
    relevant = _relevant_env(env, planned, prefix)
    return key_inputs(build.name, build.extension.sha256, source, toolchain, torch, relevant)


def key_inputs(
    name: str, extension_sha256: str, source: Path, toolchain: Data, torch: Data, env: dict[str, str]
) -> Data:
    """The content key of a built extension: everything that changes its bytes (MAX_JOBS does
    not), computable from the patched source tree before anything compiles."""
    from envbuilder import cache

    return {
        "extension": name,
        "spec": extension_sha256,  # the extension.yaml's sha256 (named before extensions had their own name)
        "source": cache.tree_digest(source),
        "archs": env["TORCH_CUDA_ARCH_LIST"],
        "torch": [torch["version"], torch["cuda"]],
        "python": toolchain["python"]["abi"],
        "nvcc": toolchain["nvcc"],
        "gcc": toolchain["gcc"],
        "env": env,
    }


# Build variables that change what is compiled (paths to the toolkit are covered by the nvcc version).
_KEY_ENV = {
    "TORCH_CUDA_ARCH_LIST",
    "CC",
    "CXX",
    "NVCC_PREPEND_FLAGS",
    "NVCC_APPEND_FLAGS",
    "CPATH",
    "FORCE_CUDA",
    "IGNORE_TORCH_VER",
    "BUILD_NO_CUDA",
}
_NOT_KEY = {"CUDA_HOME", "MAX_JOBS"}


def _relevant_env(env: dict[str, str], planned: dict[str, str], prefix: Path) -> dict[str, str]:
    """The build variables that reach the key: the known ones and the recipe's own. The env's own
    paths (CPATH to its torch's nvidia headers) are normalised so other envs can share the wheel."""
    wanted = _KEY_ENV | (set(planned) - _NOT_KEY)
    return {k: v.replace(str(prefix), "<prefix>") for k, v in env.items() if k in wanted}


def _build(ctx: StepContext, tool: Installer, name: str, source: Path, env: dict[str, str], log: Path | None) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"envbuilder-{name}-") as out, ArchFreePath(source) as build_from:
        tool.build_wheel(build_from, Path(out), env, log=log, name=name if log else "")
        wheels = sorted(Path(out).glob("*.whl"))
        if len(wheels) != 1:
            raise EnvbuilderError(f"extension {name}: expected one wheel, the build made {len(wheels)}")
        wheel = ctx.layout.wheels / wheels[0].name
        shutil.move(str(wheels[0]), wheel)
    return wheel


def _wheel_cuda_includes(cuda_home: Path, venv: Data) -> list[str]:
    """A toolkit assembled from PyPI wheels (nvcc, crt, cudart, cccl) has no cusparse.h, cublas_v2.h
    … which ATen/cuda/CUDAContext.h includes. torch's own nvidia-* wheels ship them in
    site-packages/nvidia/<pkg>/include: put those on CPATH, which nvcc's host preprocessing and g++
    search after the toolkit's own -I directories."""
    if (cuda_home / "include" / "cusparse.h").exists():
        return []
    found = []
    for site in [venv["platlib"], *venv.get("inherited_site_packages", [])]:
        for include in sorted(Path(site).glob("nvidia/*/include")):
            if include.is_dir() and str(include) not in found:
                found.append(str(include))
    return found


class ArchFreePath:
    """torch drops every -gencode flag when any nvcc flag contains the text "arch" (bw §2), and
    upstream setup.py files pass -I<their absolute path>/third_party/glm. If the source path
    contains "arch", build through a symlink whose path does not (setup.py uses abspath, which
    keeps the symlink)."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.link: Path | None = None

    def __enter__(self) -> Path:
        if "arch" not in str(self.source).lower():
            return self.source
        digest = hashlib.sha256(str(self.source).encode()).hexdigest()[:12]
        base = Path(tempfile.gettempdir())
        if "arch" in str(base).lower():
            base = Path("/tmp")  # noqa: S108 - only the path's text matters here
        self.link = base / f"envbuilder-build-{digest}"
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.symlink_to(self.source, target_is_directory=True)
        return self.link

    def __exit__(self, *exc: object) -> None:
        if self.link is not None:
            self.link.unlink(missing_ok=True)
