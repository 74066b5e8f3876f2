"""envbuilder run RECIPE -- CMD… | shell RECIPE: a command, or a shell, inside a built env, with
its variables (the venv and CUDA first on PATH, VIRTUAL_ENV, CUDA_HOME, TORCH_CUDA_ARCH_LIST and
the recipe's own), as `uv run` and `pixi run` do. The command's exit code is passed through; when
it fails, what it printed on stderr goes through `diagnose` and any finding is shown with its fix.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from envbuilder.errors import EXIT_BAD_INPUT, InputError

KEEP = 4 << 20  # the stderr tail kept for diagnosis


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a command in a built env (exit code passed through)",
        description="envbuilder run RECIPE [--prefix DIR] -- CMD [ARG ...]",
    )
    p.add_argument("recipe")
    p.add_argument("--prefix", type=Path, help="the env (default: $ENVBUILDER_HOME/envs/<recipe>)")
    p.add_argument("--no-diagnose", action="store_true", help="do not look for known errors when the command fails")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command and its arguments")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("shell", help="an interactive shell in a built env ($SHELL, else /bin/sh)")
    p.add_argument("recipe")
    p.add_argument("--prefix", type=Path, help="the env (default: $ENVBUILDER_HOME/envs/<recipe>)")
    p.set_defaults(func=cmd_shell)


def env_of(args: argparse.Namespace) -> tuple[dict[str, str], Path]:
    """The variables of the env of args.recipe at args.prefix; refuses an env that is not ready."""
    from envbuilder.context import Layout, child_env
    from envbuilder.steps.manifest import read

    name = args.recipe
    layout = Layout.for_recipe(name, args.prefix)
    manifest = layout.existing_manifest()
    if manifest is None:
        state = "is being built or its build stopped" if layout.meta.is_dir() else "does not exist"
        raise InputError(
            f"the env of {name} at {layout.prefix} {state}: it has no {layout.manifest.name}",
            hint=f"build it: envbuilder build {name}" + (f" --prefix {args.prefix}" if args.prefix else ""),
        )
    planned: dict[str, str] = dict(read(manifest).get("build_env") or {})
    planned.pop("MAX_JOBS", None)
    cuda = [Path(planned["CUDA_HOME"]) / "bin"] if planned.get("CUDA_HOME") else []
    return child_env(layout.venv, planned, path_first=cuda), layout.prefix


def cmd_run(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise InputError("run: name the command after --", hint=f"envbuilder run {args.recipe} -- python train.py")
    env, _ = env_of(args)
    try:
        child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    except OSError as exc:
        raise InputError(
            f"cannot run {argv[0]}: {exc.strerror}", hint="is it installed in the env, or on PATH?"
        ) from None
    kept = _tee(child.stderr, sys.stderr.buffer)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        code = child.wait()
    kept.join()
    if code != 0 and not args.no_diagnose:
        _diagnose(kept.text())
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report it


def cmd_shell(args: argparse.Namespace) -> int:
    env, prefix = env_of(args)
    shell = os.environ.get("SHELL") or "/bin/sh"
    sys.stderr.write(f"envbuilder: a shell in {prefix} ({args.recipe}); `exit` to leave\n")
    try:
        return subprocess.call([shell], env={**env, "ENVBUILDER_ENV": str(prefix)})
    except OSError as exc:
        sys.stderr.write(f"envbuilder: cannot start {shell}: {exc.strerror}\n")
        return EXIT_BAD_INPUT


class _Tee(threading.Thread):
    """Copies a child's stream to ours as it comes, keeping the last KEEP bytes."""

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.source, self.sink, self.kept = source, sink, bytearray()

    def run(self) -> None:
        for chunk in iter(lambda: self.source.read1(65536), b""):  # type: ignore[attr-defined]
            self.sink.write(chunk)
            self.sink.flush()
            self.kept += chunk
            del self.kept[:-KEEP]

    def text(self) -> str:
        return self.kept.decode(errors="replace")


def _tee(source: IO[bytes] | None, sink: IO[bytes]) -> _Tee:
    assert source is not None
    tee = _Tee(source, sink)
    tee.start()
    return tee


def _diagnose(text: str) -> None:
    from envbuilder import diagnose, report

    findings = diagnose.scan(text)
    if findings:
        report.err.print("[yellow]envbuilder diagnose[/] found a known failure in what the command printed:")
        report.diagnoses(findings, report.err)
