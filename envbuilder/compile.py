"""Compiling extension wheels: how many at once, and with how many jobs each.

One job budget (MAX_JOBS, sized from cores and memory by the plan) is shared by every extension
that must compile. Extensions have few .cu files each (a rasterizer 4-5, simple-knn 2), so on a
big machine one build cannot use the budget: independent extensions build concurrently, and for
several archs nvcc compiles them in parallel threads (--threads). Measured on an H200, 16 cores,
"9.0;12.0", the 4DGaussians rasterizer and simple-knn: one after the other with pip wheel
88 + 83 = 171 s; both at once, each with nvcc --threads 2: 72 s. On 2 cores nothing is gained and
memory is short: builds stay serial there. Neither choice changes a wheel's content key (MAX_JOBS
and --threads change how fast, not what is compiled).
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

MIN_JOBS_TO_SPREAD = 8  # below this, concurrency and nvcc threads only compete for cores and memory
JOBS_PER_BUILD = 4  # enough for the largest extension's .cu files to compile at once
MAX_NVCC_THREADS = 2

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Schedule:
    concurrent: int  # extensions compiling at the same time
    jobs_each: int  # MAX_JOBS of each build
    nvcc_threads: int  # nvcc --threads (archs compiled in parallel within one nvcc)

    def describe(self, count: int) -> str:
        if count == 0:
            return "nothing to compile"
        how = f"{self.jobs_each} jobs" + (f", nvcc --threads {self.nvcc_threads}" if self.nvcc_threads > 1 else "")
        if self.concurrent > 1:
            return f"{min(self.concurrent, count)} at once, {how} each"
        return ("one after the other, " if count > 1 else "") + how


def schedule(jobs: int, count: int, archs: int) -> Schedule:
    """The split of `jobs` among `count` extensions to compile for `archs` archs."""
    if jobs < MIN_JOBS_TO_SPREAD or count == 0:
        return Schedule(1, jobs, 1)
    threads = min(archs, MAX_NVCC_THREADS)
    concurrent = max(1, min(count, jobs // (JOBS_PER_BUILD * threads)))
    return Schedule(concurrent, max(1, jobs // (concurrent * threads)), threads)


def with_threads(env: dict[str, str], threads: int) -> dict[str, str]:
    """env with nvcc's --threads added to NVCC_APPEND_FLAGS (nvcc reads it itself: torch never sees
    the flag, so its "any flag with 'arch' in it drops -gencode" rule cannot bite). A --threads the
    user set there is theirs to keep."""
    flags = shlex.split(env.get("NVCC_APPEND_FLAGS", ""))
    if threads <= 1 or "--threads" in flags or "-t" in flags:
        return env
    return {**env, "NVCC_APPEND_FLAGS": shlex.join([*flags, "--threads", str(threads)])}


def run_all(items: Sequence[T], work: Callable[[T], R], concurrent: int) -> list[R]:
    """work(item) for every item, `concurrent` at a time, results in the items' order. The first
    failure stops what has not started and is raised once the running ones have ended."""
    if concurrent <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    stop = threading.Event()

    def guarded(item: T) -> R:
        if stop.is_set():
            raise _Skipped
        return work(item)

    with ThreadPoolExecutor(max_workers=min(concurrent, len(items)), thread_name_prefix="envbuilder-build") as pool:
        futures = [pool.submit(guarded, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() for f in done):
            stop.set()
            for f in futures:
                f.cancel()
        wait(futures)
    errors = [
        f.exception()
        for f in futures
        if not f.cancelled() and f.exception() and not isinstance(f.exception(), _Skipped)
    ]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


class _Skipped(Exception):
    """A build not started because another one failed."""
