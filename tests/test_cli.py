"""The CLI as users run it (a child process): outputs, exit codes, and bad input that writes nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from helpers import STEPS, fatbin_container, fatbin_entry, make_elf, run_cli

VALID = (
    "name: bad\nsummary: x\nsource: {git: 'https://github.com/a/b', commit: %s}\npython: '3.12'\ntorch: {cu130: {torch: '>=2.11'}}\n"
    % ("a" * 40)
)


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("envbuilder ")
    assert "plan" in run_cli("--help").stdout


def test_list_and_show():
    listing = json.loads(run_cli("list", "--json").stdout)
    assert any(r["name"] == "canary" and r["origin"] == "built-in" for r in listing)
    shown = json.loads(run_cli("show", "canary", "--json").stdout)
    assert shown["extensions"][0]["import"] == "envbuilder_canary"
    assert "canary" in run_cli("show", "canary").stdout


def test_plan_json_is_the_whole_plan(cuda, tmp_path):
    result = run_cli("plan", "canary", "--arch", "12.0", "--json", "--prefix", str(tmp_path / "env"))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["torch_cuda_arch_list"] == "12.0"
    assert plan["toolkit"]["root"] == str(cuda.root)
    assert [s["name"] for s in plan["steps"]] == STEPS
    assert all(len(s["key"]) == 16 for s in plan["steps"])
    assert not (tmp_path / "env").exists()  # planning writes nothing


def test_plan_text(cuda):
    result = run_cli("plan", "canary", "--arch", "12.0")
    assert result.returncode == 0 and "TORCH_CUDA_ARCH_LIST=12.0" in result.stdout


def fake_nvcc(root: Path, release: str) -> Path:
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(
        f'#!/bin/sh\ncase "$1" in --version) echo "Cuda compilation tools, release {release}, V{release}.1";; --list-gpu-code) echo sm_90;; esac\n'
    )
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    (root / "lib64").mkdir()
    (root / "lib64" / "libcudart.so").write_bytes(b"")
    return root


def recipes_dir(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "r").mkdir(exist_ok=True)
    (tmp_path / "r" / f"{name}.yaml").write_text(text)
    return tmp_path / "r"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["canry", "--arch", "12.0"], "did you mean 'canary'"),
        (["canary", "--arch", "12.5"], "unknown CUDA arch '12.5'"),
        (["canary", "--arch", "sm_xx"], "is not a CUDA arch"),
        (["canary", "--arch", "6.0"], "last toolkit that compiles it is 12.9"),
        (["canary", "--arch", "12.0", "--python", "2.9"], "no Python 2.9 found"),
        (["canary", "--arch", "12.0", "--jobs", "0"], "must be at least 1"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "build"])
def test_bad_input_exit_2_and_nothing_written(tmp_path, cuda, command, args, message):
    prefix = tmp_path / "env"
    result = run_cli(command, *args, "--prefix", str(prefix), env={"ENVBUILDER_HOME": str(tmp_path / "home")})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") <= 4  # short: the error and a hint
    assert not prefix.exists() and not (tmp_path / "home").exists()


def test_nvcc_older_than_the_arch_needs(tmp_path):
    old = fake_nvcc(tmp_path / "cuda-12.6", "12.6")
    result = run_cli("build", "canary", "--arch", "12.0", "--cuda", str(old), "--prefix", str(tmp_path / "env"))
    assert result.returncode == 2
    assert "needs CUDA >= 12.8, but nvcc is 12.6.1" in result.stderr
    assert not (tmp_path / "env").exists()


def test_torch_cuda_major_differs_from_nvcc(tmp_path, cuda):
    d = recipes_dir(
        tmp_path,
        "old",
        "name: old\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu128: {torch: '==2.9.1'}}\n",
    )
    result = run_cli("plan", "old", "--arch", "12.0", "--recipes", str(d))
    assert result.returncode == 2
    assert "CUDA major versions differ" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: bad\nsummary: [oops\n", "bad.yaml:3: YAML syntax error"),
        (VALID.replace("summary: x", "summary: 42"), "bad.yaml:2: summary: expected a string, got the number 42"),
        (VALID.replace("summary: x", "sumary: x"), "bad.yaml:2: sumary: unknown key 'sumary'"),
        (
            VALID.replace("a" * 40, "abc123"),
            "bad.yaml:3: source.commit: expected a full 40-character commit hash, got 'abc123'",
        ),
    ],
)
def test_malformed_recipes(tmp_path, text, message):
    d = recipes_dir(tmp_path, "bad", text)
    result = run_cli("plan", "bad", "--arch", "12.0", "--recipes", str(d), "--json")
    assert result.returncode == 2
    assert message in result.stderr
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["file"].endswith("bad.yaml") and error["line"] is not None
    listing = json.loads(run_cli("list", "--recipes", str(d), "--json").stdout)
    assert next(r for r in listing if r["name"] == "bad")["error"]  # list survives a bad recipe


def test_inspect(tmp_path):
    so = tmp_path / "ext.so"
    so.write_bytes(make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, 86), fatbin_entry(1, 86)])}))
    result = run_cli("inspect", str(so), "--json")
    assert result.returncode == 0
    (data,) = json.loads(result.stdout)
    assert data["sass"] == ["sm_86"] and data["ptx"] == ["compute_86"]
    ok = run_cli("inspect", str(so), "--arch", "8.6")
    assert ok.returncode == 0 and "yes (SASS)" in ok.stdout
    jit = run_cli("inspect", str(so), "--arch", "12.0")
    assert jit.returncode == 0 and "via PTX JIT" in jit.stdout
    only_sass = tmp_path / "sass.so"
    only_sass.write_bytes(make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, 86)])}))
    missing = run_cli("inspect", str(only_sass), "--arch", "12.0")
    assert missing.returncode == 1 and "missing" in missing.stderr
    notelf = tmp_path / "model.pkl"
    notelf.write_text("<html>login</html>")
    bad = run_cli("inspect", str(notelf))
    assert bad.returncode == 2 and "not an ELF file" in bad.stderr


def test_diagnose(tmp_path):
    log = tmp_path / "build.log"
    log.write_text(
        'building...\n/tmp/x/cuda_rasterizer/rasterizer_impl.h(24): error: namespace "std" has no member "uintptr_t"\n'
        "nvcc fatal   : Unsupported gpu architecture 'compute_120'\n"
    )
    data = json.loads(run_cli("diagnose", str(log), "--json").stdout)
    assert {d["id"] for d in data} == {"cstdint-missing", "nvcc-unsupported-arch"}
    assert next(d for d in data if d["id"] == "cstdint-missing")["line"] == "2"
    text = run_cli("diagnose", str(log)).stdout
    assert "cause:" in text and "fix:" in text


def test_doctor_without_compile(cuda):
    result = run_cli("doctor", "--arch", "12.0", "--no-compile", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0
    assert any(v["ok"] and v["toolkit"]["root"] == str(cuda.root) for v in data["toolkits"])


def test_doctor_says_why_not(tmp_path):
    old = fake_nvcc(tmp_path / "cuda-12.6", "12.6")
    result = run_cli(
        "doctor",
        "--arch",
        "12.0",
        "--no-compile",
        "--json",
        env={"PATH": f"{old}/bin:/usr/bin:/bin", "CUDA_HOME": str(old)},
    )
    data = json.loads(result.stdout)
    verdict = next(v for v in data["toolkits"] if v["toolkit"]["root"] == str(old))
    assert not verdict["ok"] and "needs CUDA >= 12.8" in verdict["problems"][0]


@pytest.mark.compile
def test_doctor_compiles_the_canary(cuda):
    result = run_cli("doctor", "--arch", "12.0", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert data["canary"]["sass"] == ["sm_120"] and data["canary"]["runs_on"] == {"12.0": "sass"}
    assert data["can_build"] is True


def test_envbuilder_path_and_recipes_option_shadow_builtin(tmp_path):
    """A user folder named by ENVBUILDER_PATH (or --recipes) is searched before the built-in data."""
    d = recipes_dir(
        tmp_path, "canary", VALID.replace("name: bad", "name: canary").replace("summary: x", "summary: my own canary")
    )
    via_env = json.loads(run_cli("show", "canary", "--json", env={"ENVBUILDER_PATH": str(d)}).stdout)
    assert via_env["summary"] == "my own canary"
    via_option = json.loads(run_cli("show", "canary", "--json", "--recipes", str(d)).stdout)
    assert via_option["summary"] == "my own canary"
    listing = json.loads(run_cli("list", "--json", "--recipes", str(d)).stdout)
    assert next(r for r in listing if r["name"] == "canary")["origin"] == "--recipes"


# --- nested verbs, and the spellings from before them ------------------------------------------


def test_nested_verbs_and_their_older_spellings_agree(tmp_path):
    fixtures = Path(__file__).parent / "fixtures" / "exts"
    pairs = [
        (["patch", "scan", str(fixtures), "--json"], ["patch", "--scan", str(fixtures), "--json"]),
        (
            ["assets", "check", "4dgaussians", "--root", str(tmp_path), "--json"],
            ["assets", "4dgaussians", "--root", str(tmp_path), "--json"],
        ),
        (
            ["assets", "check", "4dgaussians", "--root", str(tmp_path), "--json"],
            ["assets", "--root", str(tmp_path), "4dgaussians", "--json"],
        ),
        (["toolkit", "list", "--json"], ["toolkit", "list", "--json"]),
    ]
    for new, old in pairs:
        a, b = run_cli(*new), run_cli(*old)
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (new, old, a.stderr, b.stderr)


def test_patch_verbs_and_the_mode_flags(tmp_path):
    root = tmp_path / "tree"
    (root / "cuda_rasterizer").mkdir(parents=True)
    (root / "cuda_rasterizer/rasterizer_impl.h").write_text("#pragma once\n#include <vector>\nuint32_t n;\n")
    d = tmp_path / "r"
    d.mkdir()
    (d / "dgr.yaml").write_text(
        "name: dgr\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu130: {torch: '>=2.11'}}\n"
        "extensions:\n  - {use: diff-gaussian-rasterization, path: .}\n"
    )
    common = ["dgr", "--recipes", str(d), "--source", str(root), "--gcc", "13.2", "--torch", "2.14.1", "--json"]
    new = json.loads(run_cli("patch", "check", *common).stdout)
    old = json.loads(run_cli("patch", *common).stdout)
    assert new == old and new["mode"] == "check" and new["results"][0]["status"] == "apply"
    assert json.loads(run_cli("patch", "apply", *common).stdout)["mode"] == "apply"
    assert json.loads(run_cli("patch", *common, "--revert").stdout)["mode"] == "revert"
    both = run_cli("patch", *common, "--apply", "--revert")
    assert both.returncode == 2 and "choose one of --check, --apply, --revert" in both.stderr
    missing = run_cli("patch", "apply", "dgr", "--recipes", str(d))
    assert missing.returncode == 2 and "--source" in missing.stderr


def test_commands_a_user_is_told_to_type_name_the_real_recipe(tmp_path):
    """The assets table used to say `envbuilder assets fetch RECIPE`."""
    d = tmp_path / "r"
    d.mkdir()
    (d / "freebie.yaml").write_text(
        "name: freebie\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu130: {torch: '>=2.11'}}\n"
        "assets:\n  - {name: blob, path: data/blob.bin, kind: file, gated: false, source: s, url: 'https://example.invalid/b'}\n"
    )
    args = ["freebie", "--recipes", str(d), "--root", str(tmp_path)]
    (blob,) = json.loads(run_cli("assets", "check", *args, "--json").stdout)["assets"]
    assert "envbuilder assets fetch freebie" in blob["detail"]
    assert "RECIPE" not in run_cli("assets", *args).stdout
