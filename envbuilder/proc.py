"""The one way envbuilder runs programs: argv lists only, never a shell.

`capture` is for quick queries (versions, listings); `run` is for long steps: it streams the
child's output into a log file and to an optional line callback, and on Ctrl-C stops the whole
child process group before re-raising.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from envbuilder.errors import CommandFailed, ToolNotFound

TAIL_LINES = 40


def which(program: str, path: str | None = None) -> str:
    """Resolve argv[0] against the PATH the child will see; a clear error when missing."""
    if os.sep in program:
        if os.access(program, os.X_OK):
            return program
        raise ToolNotFound(f"program not found or not executable: {program}")
    found = shutil.which(program, path=path)
    if not found:
        raise ToolNotFound(f"'{program}' was not found on PATH", hint=f"install {program} or add it to PATH")
    return found


def quote(argv: Sequence[str]) -> str:
    return shlex.join(str(a) for a in argv)


def capture(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    merge_stderr: bool = False,
    stdin: str | None = None,
) -> str:
    """Run a short command and return its stdout (and stderr if merge_stderr); CommandFailed on
    failure. `stdin`: text to feed it (else it reads nothing)."""
    argv = [str(a) for a in argv]
    exe = which(argv[0], (env or os.environ).get("PATH"))
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            stdin=subprocess.DEVNULL if stdin is None else None,
            input=stdin,
            text=True,
            errors="replace",
            env=env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"timed out after {timeout:.0f} s: {quote(argv)}", argv=argv, returncode=-1) from None
    except OSError as exc:
        raise ToolNotFound(f"cannot run {quote(argv)}: {exc.strerror}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise CommandFailed(
            f"command failed (exit {proc.returncode}): {quote(argv)}\n{tail}",
            argv=argv,
            returncode=proc.returncode,
            tail=tail,
        )
    return proc.stdout


def run(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
    track: Path | None = None,
) -> None:
    """Run a long command, appending its merged stdout/stderr to `log`.

    The child leads a session of its own; `track` records it so that a later envbuilder can stop
    whatever is left of it if this process is killed (reap). Raises CommandFailed with the
    output's tail on a non-zero exit or on timeout.
    """
    argv = [str(a) for a in argv]
    exe = which(argv[0], (env or os.environ).get("PATH"))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8", errors="replace") as out:
        out.write(f"$ {quote(argv)}\n")
        if cwd:
            out.write(f"# cwd: {cwd}\n")
        out.flush()
        started = time.monotonic()
        try:
            child = subprocess.Popen(
                [exe, *argv[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,  # so Ctrl-C / timeout can stop the whole group
            )
        except OSError as exc:
            raise ToolNotFound(f"cannot run {quote(argv)}: {exc.strerror}") from None
        if track is not None:
            track.write_text(json.dumps({"session": child.pid, "start": _start_time(child.pid)}))
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _stop(child)

        watchdog = threading.Timer(timeout, on_timeout) if timeout else None
        if watchdog:
            watchdog.daemon = True
            watchdog.start()
        try:
            assert child.stdout is not None
            with child.stdout:
                for line in child.stdout:
                    out.write(line)
                    tail.append(line.rstrip("\n"))
                    if on_line:
                        on_line(line.rstrip("\n"))
            child.wait()
        except BaseException:
            _stop(child)
            out.write("\n# interrupted\n")
            raise
        finally:
            if watchdog:
                watchdog.cancel()
            if child.stdout and not child.stdout.closed:
                child.stdout.close()
        out.write(f"# exit {child.returncode} after {time.monotonic() - started:.1f} s\n")
        if track is not None:
            track.unlink(missing_ok=True)
    if timed_out.is_set():
        raise CommandFailed(
            f"timed out after {timeout:.0f} s: {quote(argv)}", argv=argv, returncode=-1, log=log, tail="\n".join(tail)
        )
    if child.returncode != 0:
        raise CommandFailed(
            f"command failed (exit {child.returncode}): {quote(argv)}",
            argv=argv,
            returncode=child.returncode,
            log=log,
            tail="\n".join(tail),
        )


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces and parens)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22 of stat: start time in clock ticks


def reap(track: Path) -> list[int]:
    """Kill what is left of a session recorded by run() for a process that died (kill -9):
    every process of that session that started no earlier than its leader. Returns their pids."""
    try:
        record = json.loads(track.read_text())
        session, start = int(record["session"]), int(record["start"] or 0)
    except (OSError, ValueError, KeyError, TypeError):
        track.unlink(missing_ok=True)
        return []
    victims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and int(fields[3]) == session and int(fields[19]) >= start:
            victims.append(int(entry.name))
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 10
    while (
        victims
        and time.monotonic() < deadline
        and any(Path(f"/proc/{p}").exists() and (_stat(p) or ["Z"])[0] != "Z" for p in victims)
    ):
        time.sleep(0.05)
    track.unlink(missing_ok=True)
    return victims


def _stop(child: subprocess.Popen[str]) -> None:
    """Terminate the child's process group, escalating to SIGKILL."""
    if child.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
