"""pylock.<name>.toml reading and writing: valid by PEP 751 (checked with packaging.pylock, the
validator pip uses), deterministic, and every malformed file fails with LockFileError naming the
file, the key path and the line (fuzzed with hypothesis)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.pylock import Pylock

from envbuilder.errors import EXIT_BAD_INPUT, InputError
from envbuilder.lock.errors import LockFileError
from envbuilder.lock.model import (
    Artifact,
    EnvbuilderPart,
    ExtensionRef,
    Lock,
    LockedPackage,
    PatchRef,
    Resolution,
    Source,
    Submodule,
    Toolchain,
    TorchExpectation,
)
from envbuilder.lock.target import Target
from envbuilder.lock.tomlfile import dumps, loads, lock_filename, read_lock, write_lock

SHA_A = "a" * 64
SHA_B = "b" * 64


def sample_lock() -> Lock:
    torch = LockedPackage(
        "torch",
        "2.9.1+cu128",
        Artifact(
            "wheel",
            "torch-2.9.1+cu128-cp312-cp312-manylinux_2_28_x86_64.whl",
            SHA_A,
            900_000_000,
            url="https://download-r2.example/whl/cu128/torch-2.9.1%2Bcu128-cp312-cp312-manylinux_2_28_x86_64.whl",
        ),
        index="https://download.example/whl/cu128",
    )
    chumpy = LockedPackage(
        "chumpy",
        "0.70",
        Artifact("sdist", "chumpy-0.70.tar.gz", SHA_B, 50608, url="https://files.example/chumpy-0.70.tar.gz"),
        index="https://pypi.org/simple",
    )
    part = EnvbuilderPart(
        envbuilder="0.4.0",
        recipe="cap4d",
        variant="cu128",
        recipe_sha256="c" * 64,
        target=Target("3.12", "x86_64-manylinux_2_28"),
        toolchain=Toolchain("12.8", 12, "3.12"),
        archs=("9.0", "12.0"),
        torch=TorchExpectation("2.9.1+cu128", cuda="12.8", variant="cu128", packages={"torchvision": "0.24.1+cu128"}),
        no_build_isolation=("chumpy",),
        sdist_env={"chumpy": {"CPLUS_INCLUDE_PATH": "{site}/cmeel.prefix/include/eigen3"}},
        resolution=Resolution(resolver_version="0.13.9", indexes=("https://pypi.org/simple",), requirements=("x",)),
        source=Source(
            git="https://github.com/o/r",
            commit="1" * 40,
            submodules=(Submodule("third/glm", "https://github.com/g/glm", "2" * 40, fallback=True, pinned="3" * 40),),
        ),
        extension_sources={"gsplat": Source(git="https://github.com/o/gsplat", commit="4" * 40)},
        patches=(PatchRef(".", "cstdint", "d" * 64), PatchRef(".", "cxx-standard", "f" * 64, tree="gsplat")),
        extensions=(ExtensionRef("gsplat", "e" * 64),),
    )
    return Lock((torch, chumpy), envbuilder=part, requires_python="==3.12.*")


def test_round_trip_is_exact_and_valid_pep751(tmp_path):
    lock = sample_lock()
    path = write_lock(lock, tmp_path / "pylock.cap4d.toml")
    assert read_lock(path) == lock
    import tomllib

    data = tomllib.loads(path.read_text())
    pylock = Pylock.from_dict(data)  # the validator pip vendors
    assert str(pylock.lock_version) == "1.0" and pylock.created_by == "envbuilder"
    by_name = {p.name: p for p in pylock.packages}
    assert str(by_name["torch"].version) == "2.9.1+cu128"
    assert by_name["torch"].wheels[0].hashes["sha256"] == SHA_A and by_name["torch"].wheels[0].size == 900_000_000
    assert by_name["torch"].index == "https://download.example/whl/cu128"
    assert by_name["chumpy"].sdist.size == 50608
    assert [p.name for p in pylock.packages] == ["chumpy", "torch"]  # sorted: diffs stay small


def test_writing_is_deterministic_and_atomic(tmp_path):
    lock = sample_lock()
    assert dumps(lock) == dumps(
        Lock(tuple(reversed(lock.packages)), envbuilder=lock.envbuilder, requires_python="==3.12.*")
    )
    path = tmp_path / "pylock.x.toml"
    write_lock(lock, path)
    assert [p.name for p in tmp_path.iterdir()] == ["pylock.x.toml"]  # no temporary left behind


def test_tool_part_is_disposable_for_installers():
    """[tool.envbuilder] must not change what pip/uv install: the packages are the same with or without it."""
    import tomllib

    with_part = Pylock.from_dict(tomllib.loads(dumps(sample_lock())))
    bare = Pylock.from_dict(tomllib.loads(dumps(Lock(sample_lock().packages, requires_python="==3.12.*"))))
    assert with_part.packages == bare.packages and with_part.tool is not None and bare.tool is None


def test_file_names():
    assert lock_filename("canary") == "pylock.canary.toml"
    assert lock_filename("cap4d", "cu128") == "pylock.cap4d-cu128.toml"
    with pytest.raises(LockFileError):
        lock_filename("a/b")


@pytest.mark.parametrize(
    ("edit", "key", "line_text"),
    [
        (
            lambda d: d["packages"][1]["wheels"][0]["hashes"].pop("sha256"),
            "packages[1].wheels[0].hashes",
            "[packages.wheels.hashes]",
        ),
        (lambda d: d["packages"][1]["wheels"][0].pop("size"), "packages[1].wheels[0].size", "[[packages.wheels]]"),
        (lambda d: d["packages"][0].pop("version"), "packages[0].version", "[[packages]]"),
        (lambda d: d["packages"][0]["sdist"].update(size="big"), "packages[0].sdist.size", "size = "),
        (
            lambda d: d["tool"]["envbuilder"]["source"].update(commit="main"),
            "tool.envbuilder.source.commit",
            "commit = ",
        ),
        (lambda d: d["tool"]["envbuilder"].update(schema=7), "tool.envbuilder.schema", "schema = "),
        (lambda d: d.update({"lock-version": "2.0"}), "lock-version", "lock-version"),
        (lambda d: d["packages"].append(copy.deepcopy(d["packages"][0])), "packages[2].name", None),
    ],
)
def test_malformed_lock_names_file_key_and_line(tmp_path, edit, key, line_text):
    import tomllib

    data = tomllib.loads(dumps(sample_lock()))
    edit(data)
    path = tmp_path / "pylock.bad.toml"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(LockFileError) as caught:
        read_lock(path)
    err = caught.value
    assert isinstance(err, InputError) and err.exit_code == EXIT_BAD_INPUT
    assert str(path) in err.message
    assert err.key is not None and err.key.startswith(key.split(".")[0])
    assert key in err.message or (err.key and key.startswith(err.key)), err.message
    if line_text is not None:
        assert err.line is not None
        assert line_text in path.read_text().splitlines()[err.line - 1] or err.key in ("packages[1].wheels[0].hashes",)


def test_toml_syntax_error_has_line(tmp_path):
    path = tmp_path / "pylock.bad.toml"
    path.write_text('lock-version = "1.0"\ncreated-by = "x"\npackages = [\n  {name = }\n]\n')
    with pytest.raises(LockFileError) as caught:
        read_lock(path)
    assert caught.value.line == 4 and "not valid TOML" in caught.value.message


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(LockFileError, match="cannot read"):
        read_lock(tmp_path / "missing.toml")
    bad = tmp_path / "pylock.bin.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LockFileError, match="UTF-8"):
        read_lock(bad)


def test_foreign_multi_wheel_lock_is_refused_clearly():
    text = """lock-version = "1.0"
created-by = "uv"
[[packages]]
name = "six"
version = "1.17.0"
wheels = [{url = "https://x/six-1.17.0-py2.py3-none-any.whl", size = 1, hashes = {sha256 = "%s"}},
          {url = "https://x/six-1.17.0-py3-none-any.whl", size = 1, hashes = {sha256 = "%s"}}]
""" % (SHA_A, SHA_B)
    with pytest.raises(LockFileError, match="one file per package") as caught:
        loads(text, file="pylock.uv.toml")
    assert caught.value.line == 6


# --- fuzzing: nothing but LockFileError ---------------------------------------------------------------

toml_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
    st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def mutated_locks(draw: st.DrawFn) -> dict[str, Any]:
    import tomllib

    data = tomllib.loads(dumps(sample_lock()))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(toml_values)
        else:
            parent[path[-1]] = draw(toml_values)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_locks())
def test_fuzz_structurally_mutated_locks(data):
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. heterogeneous arrays in old tomli-w)
    try:
        loads(text, file="pylock.fuzz.toml")
    except LockFileError as exc:
        assert exc.message.startswith("pylock.fuzz.toml")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_random_text(text):
    with contextlib.suppress(LockFileError):
        loads(text, file="pylock.fuzz.toml")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_byte_edits_of_a_valid_lock(data):
    text = dumps(sample_lock())
    pos = data.draw(st.integers(0, len(text) - 1))
    cut = data.draw(st.integers(0, 20))
    insert = data.draw(st.text(max_size=10))
    with contextlib.suppress(LockFileError):
        loads(text[:pos] + insert + text[pos + cut :], file="pylock.fuzz.toml")
