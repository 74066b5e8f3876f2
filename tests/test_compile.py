"""How extensions compile: the schedule under one job budget, nvcc threads, and the runner that
builds several at once (real threads, real timing-free checks)."""

from __future__ import annotations

import threading
import time

import pytest

from envbuilder.compile import Schedule, run_all, schedule, with_threads


def test_small_machines_build_one_after_the_other_with_every_job():
    assert schedule(2, 3, 2) == Schedule(1, 2, 1)  # 2 cores: serial, as measured best
    assert schedule(7, 2, 2) == Schedule(1, 7, 1)


def test_a_big_machine_spreads_the_budget():
    assert schedule(16, 2, 2) == Schedule(2, 4, 2)  # the H200 case: both at once, --threads 2
    assert schedule(16, 1, 2) == Schedule(1, 8, 2)  # one extension: all of it, two archs in parallel
    assert schedule(16, 3, 1) == Schedule(3, 5, 1)  # one arch: no threads
    s = schedule(64, 2, 2)
    assert s.concurrent * s.jobs_each * s.nvcc_threads <= 64


def test_the_plan_says_which_it_chose():
    assert schedule(16, 2, 2).describe(2) == "2 at once, 4 jobs, nvcc --threads 2 each"
    assert schedule(2, 2, 2).describe(2) == "one after the other, 2 jobs"


def test_threads_go_to_nvcc_append_flags_and_a_users_own_wins():
    assert with_threads({"NVCC_APPEND_FLAGS": "-lineinfo"}, 2)["NVCC_APPEND_FLAGS"] == "-lineinfo --threads 2"
    mine = {"NVCC_APPEND_FLAGS": "--threads 4"}
    assert with_threads(mine, 2) == mine
    assert with_threads({}, 1) == {}


def test_run_all_runs_at_once_and_keeps_the_order():
    running, peak, lock = [0], [0], threading.Lock()

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return n * 10

    assert run_all([3, 1, 2], work, 3) == [30, 10, 20]
    assert peak[0] == 3
    peak[0] = 0
    assert run_all([3, 1, 2], work, 1) == [30, 10, 20] and peak[0] == 1


def test_the_first_failure_is_raised_and_stops_what_has_not_started():
    started = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise RuntimeError("compile of 0 failed")
        time.sleep(0.3)
        return n

    with pytest.raises(RuntimeError, match="compile of 0 failed"):
        run_all([0, 1, 2, 3, 4], work, 2)
    assert 4 not in started
