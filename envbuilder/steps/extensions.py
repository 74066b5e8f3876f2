"""extensions: build each CUDA extension as a wheel for the planned archs, then install it.

Built with the env's own pip, no build isolation (the extension must see the env's torch),
TORCH_CUDA_ARCH_LIST from --arch, CUDA_HOME from the plan and MAX_JOBS sized from cores and RAM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from envbuilder import cache, installer
from envbuilder.context import Context, Data
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.paths import cache_dir
from envbuilder.steps.sources import extension_dir


def run(ctx: Context, inputs: Data) -> Data:
    tool = installer.for_context(ctx)
    ctx.layout.wheels.mkdir(parents=True, exist_ok=True)
    env = ctx.build_env()
    extra_includes = _wheel_cuda_includes(ctx)
    if extra_includes:
        env["CPATH"] = os.pathsep.join([*extra_includes, *filter(None, [env.get("CPATH")])])
        ctx.note(
            f"the toolkit lacks the CUDA math-library headers; using torch's nvidia wheels: {', '.join(extra_includes)}"
        )
    built = []
    store = cache.WheelCache(cache_dir() / "wheels")
    uses = {e.name: e for e in ctx.plan.extensions}
    for ext in inputs["extensions"]:
        use = uses[ext["name"]]
        source = extension_dir(ctx.outputs["sources"], use)
        if not ((source / "setup.py").is_file() or (source / "pyproject.toml").is_file()):
            raise InputError(f"extension {ext['name']}: no setup.py or pyproject.toml in {source}")
        shutil.rmtree(source / "build", ignore_errors=True)  # objects from another arch list must not be reused
        build_env = {**env, **dict(use.extension.build_env)}
        key_inputs = _key_inputs(ctx, ext["name"], use.extension.sha256, source, build_env)
        key = cache.wheel_key(key_inputs)
        started = time.monotonic()
        cached, why = store.lookup(key, ctx.plan.archs)
        if cached is not None:
            wheel = ctx.layout.wheels / cached.name
            shutil.copyfile(cached, wheel)
            cache_status = "hit"
            ctx.note(f"{ext['name']}: cached wheel {cached.name} (key {key[:12]}), no compile")
        else:
            if why != "not cached":
                ctx.note(f"{ext['name']}: {why}")
            ctx.note(f"compiling {ext['name']} for {env['TORCH_CUDA_ARCH_LIST']} ({env['MAX_JOBS']} jobs)")
            wheel = _build(ctx, tool, ext["name"], source, build_env)
            cache_status = store.store(key, wheel, key_inputs, ctx.plan.archs)
            if cache_status not in ("cached", "already cached"):
                ctx.note(f"warning: {ext['name']}: {cache_status}")
        seconds = round(time.monotonic() - started, 1)
        tool.install([str(wheel)], options=["--no-deps", "--force-reinstall"])
        with zipfile.ZipFile(wheel) as zf:
            so_files = sorted(n for n in zf.namelist() if n.endswith(".so") or ".so." in n)
        built.append(
            {
                "name": ext["name"],
                "import": ext["import"],
                "wheel": str(wheel),
                "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "so_files": so_files,
                "build_seconds": seconds,
                "cache_key": key,
                "cache": cache_status,
            }
        )
        if cache_status != "hit":
            ctx.note(f"built {wheel.name} in {seconds:.0f} s")
    return {"extensions": built, "cpath": extra_includes}


def _key_inputs(ctx: Context, name: str, spec_sha256: str, source: Path, build_env: dict[str, str]) -> Data:
    """Everything that changes the bytes of a built extension (MAX_JOBS does not)."""
    toolchain = ctx.outputs["toolchain"]
    torch = ctx.outputs["wheels"]["torch"]
    relevant = {k: v for k, v in build_env.items() if k in _KEY_ENV or k in dict(ctx.plan.recipe.env)}
    # the env's own paths (CPATH to its torch's nvidia headers) must not keep other envs from sharing
    relevant = {k: v.replace(str(ctx.layout.prefix), "<prefix>") for k, v in relevant.items()}
    return {
        "extension": name,
        "spec": spec_sha256,
        "source": cache.tree_digest(source),
        "archs": build_env["TORCH_CUDA_ARCH_LIST"],
        "torch": [torch["version"], torch["cuda"]],
        "python": toolchain["python"]["abi"],
        "nvcc": toolchain["nvcc"],
        "gcc": toolchain["gcc"],
        "env": relevant,
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


def _build(ctx: Context, tool: installer.Installer, name: str, source: Path, env: dict[str, str]) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"envbuilder-{name}-") as out, _arch_free_path(source) as build_from:
        tool.build_wheel(build_from, Path(out), env)
        wheels = sorted(Path(out).glob("*.whl"))
        if len(wheels) != 1:
            raise EnvbuilderError(f"extension {name}: expected one wheel, the build made {len(wheels)}")
        wheel = ctx.layout.wheels / wheels[0].name
        shutil.move(str(wheels[0]), wheel)
    return wheel


def _wheel_cuda_includes(ctx: Context) -> list[str]:
    """A toolkit assembled from PyPI wheels (nvcc, crt, cudart, cccl) has no cusparse.h, cublas_v2.h
    … which ATen/cuda/CUDAContext.h includes. torch's own nvidia-* wheels ship them in
    site-packages/nvidia/<pkg>/include: put those on CPATH, which nvcc's host preprocessing and g++
    search after the toolkit's own -I directories."""
    if (ctx.plan.toolkit.root / "include" / "cusparse.h").exists():
        return []
    sites = [ctx.outputs["venv"]["platlib"], *ctx.outputs["venv"].get("inherited_site_packages", [])]
    found = []
    for site in sites:
        for include in sorted(Path(site).glob("nvidia/*/include")):
            if include.is_dir() and str(include) not in found:
                found.append(str(include))
    return found


class _arch_free_path:
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
