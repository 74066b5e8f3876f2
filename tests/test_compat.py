"""The compatibility rules (research/blackwell.md §1-2) as plain data checks."""

from __future__ import annotations

import pytest
from packaging.version import Version

from envbuilder.errors import InputError
from envbuilder.host import compat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.0", "12.0"),
        ("120", "12.0"),
        ("sm_120", "12.0"),
        ("compute_120", "12.0"),
        ("12.0a", "12.0a"),
        ("12.0+PTX", "12.0+PTX"),
        ("sm_90a", "9.0a"),
        ("8.6", "8.6"),
        ("12.1f", "12.1f"),
    ],
)
def test_parse_arch(text, expected):
    assert str(compat.parse_arch(text)) == expected


@pytest.mark.parametrize("text", ["12.5", "13.0", "sm_125", "7.7"])
def test_unknown_arch_is_input_error(text):
    with pytest.raises(InputError, match="unknown CUDA arch") as info:
        compat.parse_arch(text)
    assert "12.0" in info.value.hint


@pytest.mark.parametrize("text", ["blackwell", "", "12", "12.0b", "8.6f"])
def test_malformed_arch(text):
    with pytest.raises(InputError):
        compat.parse_arch_list(text)


def test_arch_list_sorted_and_deduplicated():
    archs = compat.parse_arch_list("12.0; 9.0,12.0 8.6")
    assert compat.torch_arch_list(archs) == "8.6;9.0;12.0"


def test_sm120_needs_cuda_12_8():
    archs = compat.parse_arch_list("12.0")
    assert compat.cuda_problems(archs, Version("12.8")) == []
    (problem,) = compat.cuda_problems(archs, Version("12.6.3"))
    assert "needs CUDA >= 12.8" in problem.message and "--cuda 12.8" in problem.hint


def test_family_targets_need_12_9():
    assert compat.cuda_problems(compat.parse_arch_list("12.0f"), Version("12.8"))
    assert not compat.cuda_problems(compat.parse_arch_list("12.0f"), Version("12.9"))


def test_cuda13_drops_pre_turing():
    (problem,) = compat.cuda_problems(compat.parse_arch_list("6.0"), Version("13.0"))
    assert "last toolkit that compiles it is 12.9" in problem.message
    assert not compat.cuda_problems(compat.parse_arch_list("6.0"), Version("12.9"))
    assert not compat.cuda_problems(compat.parse_arch_list("7.5"), Version("13.0"))


@pytest.mark.parametrize(
    ("cuda", "gcc_max"),
    [("11.8", 11), ("12.1", 12), ("12.6", 13), ("12.8", 14), ("12.9.1", 14), ("13.0", 15), ("13.2", 15)],
)
def test_gcc_limits(cuda, gcc_max):
    assert compat.gcc_max(Version(cuda)) == gcc_max
    assert compat.gcc_problem(Version(f"{gcc_max}.1"), Version(cuda)) is None
    assert "too new" in compat.gcc_problem(Version(f"{gcc_max + 1}.1"), Version(cuda)).message


def test_torch_cuda_major_must_match():
    assert compat.torch_cuda_problem(Version("13.0"), Version("13.2")) is None
    problem = compat.torch_cuda_problem(Version("13.0"), Version("12.8"))
    assert "differ" in problem.message


@pytest.mark.parametrize(
    ("torch", "std"),
    [("1.13.1", "c++14"), ("2.7.1", "c++17"), ("2.12.0", "c++17"), ("2.13.0", "c++20"), ("2.14.1+cu130", "c++20")],
)
def test_cxx_standard(torch, std):
    assert compat.cxx_standard(Version(torch)) == std


def test_torch_arch_rules():
    assert compat.torch_arch_problems(compat.parse_arch_list("12.0"), Version("2.7.1")) == []
    assert (
        "support starts with torch 2.7"
        in compat.torch_arch_problems(compat.parse_arch_list("12.0"), Version("2.6.0"))[0].message
    )
    assert "family" in compat.torch_arch_problems(compat.parse_arch_list("12.0f"), Version("2.14"))[0].message
