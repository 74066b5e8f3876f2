"""The patch engine on small trees written here: each kind, idempotency, atomicity, revert, and
every bad input (missing target, drift, wrong match count, binary file, escaping path, bad YAML)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from envbuilder import patching
from envbuilder.errors import RecipeError
from envbuilder.patching import PatchContext, PatchError
from envbuilder.recipe.catalog import Catalog, DataRoot
from envbuilder.recipe.model import PatchUse
from envbuilder.recipe.when import parse_condition

from helpers import run_cli

GCC13 = PatchContext(
    facts={
        "cuda": Version("13.0"),
        "gcc": Version("13.3"),
        "torch": Version("2.14.1"),
        "python": Version("3.12"),
        "arch": [Version("12.0")],
    },
    cxx_standard="c++20",
)
GCC12 = PatchContext(facts={**GCC13.facts, "gcc": Version("12.2")}, cxx_standard="c++20")

HEADER = """\
/*
 * A leading comment block, where upstream headers keep their licence text
 */

#ifndef ARENA_H_INCLUDED
#define ARENA_H_INCLUDED

#include <iostream>
#include <vector>
#include "local.h"
#ifdef _WIN32
#include <windows.h>
#endif

namespace arena {
uint32_t* counts;
}
#endif
"""


def builtin(name: str) -> PatchUse:
    return PatchUse(patch=Catalog.default().patch(name))


def use(name: str, files: tuple[str, ...] = (), when=None) -> PatchUse:
    return PatchUse(patch=Catalog.default().patch(name), files=files, when=when)


def tree(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "src"
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- include -----------------------------------------------------------------------------------


def test_include_goes_after_the_last_top_level_include(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": HEADER})
    (outcome,) = patching.apply(root, [builtin("cstdint")], GCC13)
    assert outcome.status == "applied"
    lines = (root / "cuda_rasterizer/rasterizer_impl.h").read_text().splitlines()
    assert lines[10] == "#include <cstdint>"  # after "local.h", not inside the #ifdef _WIN32 block
    assert lines[9] == '#include "local.h"' and lines[11] == "#ifdef _WIN32"


@pytest.mark.parametrize(
    ("text", "expected_line"),
    [
        ("#pragma once\n\nstruct A { uint32_t x; };\n", 1),  # no include: after the guard
        ("// only a comment\n/* block\n comment */\nint f(uint32_t);\n", 3),
        ("int f(uint32_t);\n", 0),
        ("#include <vector>", 1),  # no newline at the end of the file
    ],
)
def test_include_placement_without_includes(tmp_path, text, expected_line):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": text})
    patching.apply(root, [builtin("cstdint")], GCC13)
    lines = (root / "cuda_rasterizer/rasterizer_impl.h").read_text().splitlines()
    assert lines[expected_line] == "#include <cstdint>"


def test_include_keeps_crlf_and_other_bytes(tmp_path):
    text = "#include <vector>\r\n// caf\xe9 in latin-1\r\nuint32_t x;\r\n".encode("latin-1")
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": text})
    patching.apply(root, [builtin("cstdint")], GCC13)
    data = (root / "cuda_rasterizer/rasterizer_impl.h").read_bytes()
    assert data == b"#include <vector>\r\n#include <cstdint>\r\n// caf\xe9 in latin-1\r\nuint32_t x;\r\n"


def test_header_already_included_or_equivalent(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": "#include <stdint.h>\nuint32_t x;\n"})
    before = snapshot(root)
    (outcome,) = patching.compute(root, [builtin("cstdint")], GCC13)
    assert outcome.status == "already applied" and not outcome.changes
    patching.apply(root, [builtin("cstdint")], GCC13)
    assert snapshot(root) == before  # nothing touched, no record needed


def test_when_false_skips(tmp_path):
    root = tree(tmp_path, {"simple_knn.cu": "float m = FLT_MAX;\n"})
    old_cuda = PatchContext(facts={**GCC13.facts, "cuda": Version("12.4")}, cxx_standard="c++17")
    (outcome,) = patching.compute(root, [builtin("cfloat")], old_cuda)
    assert outcome.status == "skipped" and "cuda >=12.5" in outcome.reason
    gcc12 = PatchUse(patch=Catalog.default().patch("cstdint"), when=parse_condition({"gcc": ">=13"}))
    (outcome,) = patching.compute(root, [gcc12], GCC12)
    assert outcome.status == "skipped" and "gcc >=13" in outcome.reason


def test_unknown_fact_applies_and_says_so(tmp_path):
    root = tree(tmp_path, {"setup.py": "flags = ['-std=c++14']\n"})
    context = PatchContext(facts={**GCC13.facts, "torch": None}, cxx_standard="c++17")
    (outcome,) = patching.compute(root, [builtin("cxx-standard")], context)
    assert outcome.status == "apply" and "torch is not known" in outcome.reason


# --- idempotency, record, revert -----------------------------------------------------------------


def test_apply_twice_is_already_applied_and_revert_restores_bytes(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": HEADER})
    pristine = (root / "cuda_rasterizer/rasterizer_impl.h").read_bytes()
    patching.apply(root, [builtin("cstdint")], GCC13)
    patched = snapshot(root)
    record = json.loads((root / patching.RECORD).read_text())
    assert record["state"] == "applied" and record["patches"][0]["name"] == "cstdint"
    (again,) = patching.apply(root, [builtin("cstdint")], GCC13)
    assert again.status == "already applied" and snapshot(root) == patched
    assert patching.revert(root) == ["cuda_rasterizer/rasterizer_impl.h"]
    assert (root / "cuda_rasterizer/rasterizer_impl.h").read_bytes() == pristine
    assert not (root / patching.RECORD).exists() and not (root / patching.BACKUPS).exists()
    assert patching.revert(root) == []  # nothing left to revert


def test_revert_keeps_a_file_edited_after_patching(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": HEADER})
    patching.apply(root, [builtin("cstdint")], GCC13)
    target = root / "cuda_rasterizer/rasterizer_impl.h"
    target.write_text(target.read_text() + "// my own edit\n")
    with pytest.raises(PatchError, match="changed after envbuilder patched it"):
        patching.revert(root)
    assert target.read_text().endswith("// my own edit\n")


def test_a_different_patch_set_replaces_the_old_one(tmp_path):
    root = tree(
        tmp_path,
        {"cuda_rasterizer/rasterizer_impl.h": HEADER, "simple_knn.cu": "#include <vector>\nfloat m = FLT_MAX;\n"},
    )
    patching.apply(root, [builtin("cstdint"), builtin("cfloat")], GCC13)
    patching.apply(root, [builtin("cfloat")], GCC13)  # cstdint dropped from the recipe
    assert "#include <cstdint>" not in (root / "cuda_rasterizer/rasterizer_impl.h").read_text()
    assert "#include <cfloat>" in (root / "simple_knn.cu").read_text()


def test_kill_during_apply_is_undone_by_the_next_run(tmp_path):
    """A record left in state 'applying' (a kill -9 between writes) is reverted, then reapplied."""
    root = tree(
        tmp_path,
        {"cuda_rasterizer/rasterizer_impl.h": HEADER, "simple_knn.cu": "#include <vector>\nfloat m = FLT_MAX;\n"},
    )
    uses = [builtin("cstdint"), builtin("cfloat")]
    patching.apply(root, uses, GCC13)
    expected = snapshot(root)
    record = json.loads((root / patching.RECORD).read_text())
    record["state"] = "applying"
    (root / patching.RECORD).write_text(json.dumps(record))
    (root / "simple_knn.cu").write_bytes(
        (root / patching.BACKUPS / "orig" / "simple_knn.cu").read_bytes()
    )  # only one file written
    patching.apply(root, uses, GCC13)
    assert snapshot(root) == expected


# --- atomicity and bad input ----------------------------------------------------------------------


def test_failure_in_a_set_touches_nothing(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": HEADER})
    before = snapshot(root)
    with pytest.raises(PatchError, match=r"patch cfloat: no file matches 'simple_knn.cu'") as info:
        patching.apply(root, [builtin("cstdint"), builtin("cfloat")], GCC13)
    assert "differs from what the recipe expects" in info.value.hint
    assert snapshot(root) == before


def test_write_failure_restores_written_files(tmp_path, monkeypatch):
    root = tree(
        tmp_path,
        {"cuda_rasterizer/rasterizer_impl.h": HEADER, "simple_knn.cu": "#include <vector>\nfloat m = FLT_MAX;\n"},
    )
    before = snapshot(root)
    real = patching.write_atomic
    calls = {"n": 0}

    def flaky(path: Path, data: bytes) -> None:
        if path.name == "simple_knn.cu" and path.parent.name != "orig":
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(patching, "write_atomic", flaky)
    with pytest.raises(OSError, match="No space left"):
        patching.apply(root, [builtin("cstdint"), builtin("cfloat")], GCC13)
    assert snapshot(root) == before


def test_binary_file_is_refused(tmp_path):
    root = tree(tmp_path, {"simple_knn.cu": b"\x7fELF\x00\x00binary"})
    with pytest.raises(PatchError, match="simple_knn.cu is a binary file"):
        patching.compute(root, [builtin("cfloat")], GCC13)


def test_symlink_escaping_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside.cu"
    outside.write_text("float m = FLT_MAX;\n")
    root = tree(tmp_path, {"keep.txt": "x"})
    (root / "simple_knn.cu").symlink_to(outside)
    with pytest.raises(PatchError, match="leads outside the source root"):
        patching.compute(root, [builtin("cfloat")], GCC13)


def test_cxx_standard_kinds(tmp_path):
    root = tree(
        tmp_path,
        {
            "setup.py": "# forces -std=c++14, see below\nnvcc = ['-O3', '-std=c++14']\ncxx = ['-std=gnu++11']\nwin = ['/std:c++17']\n",
            "CMakeLists.txt": "set(CMAKE_CXX_STANDARD 14)\nset(CMAKE_CUDA_STANDARD 17)\n",
        },
    )
    patching.apply(
        root,
        [use("cxx-standard", ("setup.py", "CMakeLists.txt"))],
        PatchContext(facts=GCC13.facts, cxx_standard="c++17"),
    )
    assert (
        (root / "setup.py").read_text()
        == "# forces -std=c++14, see below\nnvcc = ['-O3', '-std=c++17']\ncxx = ['-std=gnu++17']\nwin = ['/std:c++17']\n"
    )
    assert (root / "CMakeLists.txt").read_text() == "set(CMAKE_CXX_STANDARD 17)\nset(CMAKE_CUDA_STANDARD 17)\n"
    (again,) = patching.compute(
        root,
        [use("cxx-standard", ("setup.py", "CMakeLists.txt"))],
        PatchContext(facts=GCC13.facts, cxx_standard="c++17"),
    )
    assert again.status == "already applied"


def test_cxx_standard_drifted(tmp_path):
    root = tree(tmp_path, {"setup.py": "flags = ['-O3']\n"})
    with pytest.raises(PatchError, match="expected a forced C\\+\\+ standard .* found none"):
        patching.compute(root, [builtin("cxx-standard")], GCC13)


def test_cxx_standard_without_torch(tmp_path):
    root = tree(tmp_path, {"setup.py": "flags = ['-std=c++14']\n"})
    with pytest.raises(PatchError, match="cannot tell which C\\+\\+ standard"):
        patching.compute(root, [builtin("cxx-standard")], PatchContext(facts=GCC13.facts, cxx_standard=None))


# --- replace and diff, through user patch files -----------------------------------------------------


def user_patches(tmp_path: Path, files: dict[str, str]) -> Catalog:
    d = tmp_path / "data" / "patches"
    d.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "recipes").mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return Catalog([DataRoot.of(tmp_path / "data", "test"), *Catalog.default().roots])


REPLACE = """\
name: np-float
summary: numpy aliases removed in 1.24
fixes: numpy-alias
kind: replace
files: [feat.py]
find: "np.float)"
replace: "float)"
count: 2
"""


def test_replace_counts(tmp_path):
    c = user_patches(tmp_path, {"np-float.yaml": REPLACE})
    u = PatchUse(patch=c.patch("np-float"))
    root = tree(tmp_path, {"feat.py": "a = x.astype(np.float)\nb = y.astype(np.float)\n"})
    patching.apply(root, [u], GCC13)
    assert (root / "feat.py").read_text() == "a = x.astype(float)\nb = y.astype(float)\n"
    assert patching.compute(root, [u], GCC13)[0].status == "already applied"
    three = tree(tmp_path / "3", {"feat.py": "np.float)\nnp.float)\nnp.float)\n"})
    with pytest.raises(PatchError, match=r"expected 2 match\(es\) of 'np.float\)', found 3 \(lines 1, 2, 3\)"):
        patching.compute(three, [u], GCC13)
    none = tree(tmp_path / "0", {"feat.py": "nothing here\n"})
    with pytest.raises(PatchError, match="found 0"):
        patching.compute(none, [u], GCC13)


def test_an_insertion_that_keeps_its_anchor_is_applied_once(tmp_path):
    """A replace patch that inserts code around its find text (the shipped chumpy-aliases-before-smpl
    keeps `from utils.smplx import smplx`) finds that text again once applied: the check text,
    not the count, says it is in, so neither `patch check` nor a second apply adds it twice."""
    u = builtin("chumpy-aliases-before-smpl")
    root = tree(tmp_path, {"utils/human_models.py": "import numpy as np\nfrom utils.smplx import smplx\n"})
    patching.apply(root, [u], GCC13)
    patched = (root / "utils/human_models.py").read_text()
    assert patched.count("from utils.smplx import smplx") == 1 and patched.count("getargspec =") == 1
    assert patching.compute(root, [u], GCC13)[0].status == "already applied"
    patching.apply(root, [u], GCC13)
    assert (root / "utils/human_models.py").read_text() == patched


def test_regex_replace(tmp_path):
    c = user_patches(
        tmp_path,
        {
            "load.yaml": """\
            name: load
            summary: trusted checkpoints need weights_only=False on torch >= 2.6
            fixes: weights-only-load
            kind: replace
            files: [train.py]
            find: 'torch\\.load\\((\\w+)\\)'
            replace: 'torch.load(\\1, weights_only=False)'
            regex: true
            check: weights_only=False
            when: {torch: ">=2.6"}
            """
        },
    )
    u = PatchUse(patch=c.patch("load"))
    root = tree(tmp_path, {"train.py": "ckpt = torch.load(path)\n"})
    patching.apply(root, [u], GCC13)
    assert (root / "train.py").read_text() == "ckpt = torch.load(path, weights_only=False)\n"
    assert patching.compute(root, [u], GCC13)[0].status == "already applied"


DIFF = """\
--- a/kernel.cu
+++ b/kernel.cu
@@ -1,3 +1,4 @@
 #include <vector>
+#include <cfloat>
 
 float m = FLT_MAX;
"""


def diff_catalog(tmp_path: Path, diff: str = DIFF, sha: str | None = None) -> Catalog:
    d = tmp_path / "data" / "patches"
    d.mkdir(parents=True, exist_ok=True)
    (d / "add-cfloat.diff").write_text(diff)
    digest = sha or hashlib.sha256(diff.encode()).hexdigest()
    return user_patches(
        tmp_path,
        {
            "add-cfloat.yaml": f"""\
            name: add-cfloat
            summary: the cfloat fix as a diff
            fixes: flt-max-undefined
            kind: diff
            diff: add-cfloat.diff
            sha256: {digest}
            strip: 1
            """
        },
    )


def test_diff_applies_detects_reapplication_and_drift(tmp_path):
    u = PatchUse(patch=diff_catalog(tmp_path).patch("add-cfloat"))
    root = tree(tmp_path, {"kernel.cu": "#include <vector>\n\nfloat m = FLT_MAX;\n"})
    patching.apply(root, [u], GCC13)
    assert (root / "kernel.cu").read_text() == "#include <vector>\n#include <cfloat>\n\nfloat m = FLT_MAX;\n"
    assert patching.compute(root, [u], GCC13)[0].status == "already applied"
    drifted = tree(tmp_path / "d", {"kernel.cu": "#include <map>\n\nfloat m = FLT_MAX;\n"})
    with pytest.raises(PatchError, match="hunk 1 does not apply \\(context drifted\\)"):
        patching.compute(drifted, [u], GCC13)


def test_diff_checksum_mismatch_is_a_load_error(tmp_path):
    with pytest.raises(RecipeError, match="the patch declares") as info:
        diff_catalog(tmp_path, sha="ab" * 32).patch("add-cfloat")
    assert info.value.file.endswith("add-cfloat.yaml") and info.value.line == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: bad\nsummary: x\nfixes: cstdint-missing\nkind: include\nfiles: [a.h]\n",
            "missing required key 'header'",
        ),
        ("name: bad\nsummary: x\nfixes: cstdint-missing\nkind: insert\nfiles: [a.h]\n", "unknown patch kind 'insert'"),
        (
            "name: bad\nsummary: x\nfixes: cstdint-mising\nkind: include\nheader: cstdint\nfiles: [a.h]\n",
            "did you mean 'cstdint-missing'",
        ),
        (
            "name: bad\nsummary: x\nfixes: cstdint-missing\nkind: include\nheader: cstdint\nfiles: [../a.h]\n",
            "escapes the source root",
        ),
        (
            "name: bad\nsummary: x\nfixes: cstdint-missing\nkind: include\nheader: cstdint\nfiles: [/etc/a.h]\n",
            "escapes the source root",
        ),
        (
            "name: bad\nsummary: x\nfixes: cstdint-missing\nkind: include\nheader: cstdint\nfiles: [a.h]\nwhen: {clang: '>=15'}\n",
            "unknown variable 'clang'",
        ),
        (
            "name: bad\nsummary: x\nfixes: numpy-alias\nkind: replace\nfiles: [a.py]\nfind: '('\nreplace: x\nregex: true\n",
            "not a valid regex",
        ),
        (
            "name: bad\nsummary: x\nfixes: numpy-alias\nkind: replace\nfiles: [a.py]\nfind: a\nreplace: b\ncount: 0\n",
            "whole number >= 1",
        ),
        (
            "name: bad\nsummary: x\nfixes: cxx17-required\nkind: cxx-standard\nfiles: [setup.py]\nstandard: c++15\n",
            "unknown standard",
        ),
        (
            "name: bad\nsummary: x\nfixes: cstdint-missing\nkind: include\nheader: cstdint\nfiles: [a.h]\nfind: x\n",
            "unknown key 'find'",
        ),
    ],
)
def test_patch_yaml_errors(tmp_path, text, message):
    c = user_patches(tmp_path, {"bad.yaml": text})
    with pytest.raises(RecipeError) as info:
        c.patch("bad")
    assert message in info.value.message + (info.value.hint or "")
    assert info.value.file.endswith("bad.yaml") and info.value.line


def test_every_builtin_patch_loads():
    c = Catalog.default()
    assert {"cstdint", "cfloat", "cxx-standard"} <= set(c.patch_names())
    for name in c.patch_names():
        c.patch(name)


# --- the CLI ------------------------------------------------------------------------------------------


def test_patch_cli_check_apply_revert(tmp_path):
    root = tree(tmp_path, {"cuda_rasterizer/rasterizer_impl.h": HEADER, "setup.py": "x = 1\n"})
    d = tmp_path / "r"
    d.mkdir()
    (d / "dgr.yaml").write_text(
        "name: dgr\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu130: {torch: '>=2.11'}}\n"
        "extensions:\n  - {use: diff-gaussian-rasterization, path: .}\n"
    )
    args = ["patch", "dgr", "--recipes", str(d), "--source", str(root), "--gcc", "13.2", "--torch", "2.14.1"]
    before = snapshot(root)
    check = json.loads(run_cli(*args, "--json", "--diff").stdout)
    assert check["results"][0]["status"] == "apply" and "+#include <cstdint>" in check["diff"]
    assert snapshot(root) == before  # --check writes nothing
    assert run_cli(*args, "--apply").returncode == 0
    assert json.loads(run_cli(*args, "--json").stdout)["results"][0]["status"] == "already applied"
    assert run_cli(*args, "--revert").returncode == 0
    assert snapshot(root) == before
    gcc12 = json.loads(run_cli(*args[:-4], "--gcc", "12.2", "--torch", "2.14.1", "--json").stdout)
    assert gcc12["results"][0]["status"] == "apply"  # cstdint is unconditional


def test_patch_cli_drift_is_exit_1_and_names_everything(tmp_path):
    root = tree(tmp_path, {"other.h": "x"})
    d = tmp_path / "r"
    d.mkdir()
    (d / "dgr.yaml").write_text(
        "name: dgr\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu130: {torch: '>=2.11'}}\n"
        "extensions:\n  - {use: diff-gaussian-rasterization, path: .}\n"
    )
    result = run_cli("patch", "dgr", "--recipes", str(d), "--source", str(root), "--gcc", "13.2", "--apply")
    assert result.returncode == 1
    assert "patch cstdint: no file matches 'cuda_rasterizer/rasterizer_impl.h'" in result.stderr


def test_scan_cli_on_the_fixtures():
    fixtures = Path(__file__).parent / "fixtures" / "exts"
    data = json.loads(run_cli("patch", "--scan", str(fixtures), "--json").stdout)
    found = {(h["kind"], h["file"]) for h in data["hits"]}
    assert found == {
        ("cfloat", "cfloat/csrc/rowmin.cu"),
        ("cstdint", "cstdint/csrc/detail/arena.h"),
        ("cstdint", "cstdint/csrc/count.cu"),  # uses uint32_t and includes only arena.h
        ("cxx-standard", "cxx14/setup.py"),
    }
    assert data["proposals"]["cxx-standard"] == ["cxx14/setup.py"]
    assert run_cli("patch").returncode == 2


def test_a_regex_match_fixed_upstream_is_left_alone(tmp_path):
    """The shipped torch-load-trusted on a train.py where upstream already passes weights_only=False
    on one call (CAP4D does): that call is kept as it is, the other one is patched."""
    u = builtin("torch-load-trusted")
    fixed_upstream = "a = torch.load(p, weights_only=False)\n"
    root = tree(tmp_path, {"train.py": fixed_upstream})
    assert patching.compute(root, [u], GCC13)[0].status == "already applied"
    both = tree(tmp_path / "both", {"train.py": fixed_upstream + "b = torch.load(q)\n"})
    patching.apply(both, [u], GCC13)
    assert (both / "train.py").read_text() == fixed_upstream + "b = torch.load(q, weights_only=False)\n"
