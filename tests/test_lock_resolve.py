"""Locks against a real PEP 503 index on 127.0.0.1 (tests/pyindex.py), resolved by envbuilder's
own uv and installed by its own pip and uv into real venvs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pyindex import PyIndex, build_setup_py_sdist

from envbuilder.lock.diff import diff_locks
from envbuilder.lock.download import DownloadCache
from envbuilder.lock.errors import ArtifactMismatch, FreezeError, InstallFailed, ResolutionFailed
from envbuilder.lock.freeze import INSTALLED_LOCK, freeze_env, lock_from_pip_report, record_installed
from envbuilder.lock.indexes import IndexConfig
from envbuilder.lock.install import SITE_SCRIPT, install_lock, installed_packages, run_installer
from envbuilder.lock.model import Artifact, EnvbuilderPart, Lock, LockedPackage
from envbuilder.lock.resolve import Request, resolve
from envbuilder.lock.target import Target
from envbuilder.lock.tomlfile import read_lock, write_lock
from envbuilder.lock.tools import ensure_tools

pytestmark = pytest.mark.network  # envbuilder's pip and uv come from the package registry, once per session

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = Target(PY, "x86_64-manylinux_2_28")


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    # session-wide, so made before the per-test cache variable is set: placed there explicitly
    return ensure_tools(root=tmp_path_factory.getbasetemp() / "envbuilder-cache" / "tools")


@pytest.fixture
def index(tmp_path):
    with PyIndex(tmp_path / "index") as served:
        yield served


def lock_of(index, tools, *reqs, **kwargs):
    request = Request(requirements=tuple(reqs), target=TARGET, **kwargs.pop("request", {}))
    return resolve(request, tools=tools, indexes=IndexConfig(default=index.url), **kwargs)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def test_lock_keeps_10_when_11_is_published(index, tools, tmp_path):
    wheel = index.publish("pkg", "1.0", requires=["dep>=1"])
    index.publish("dep", "1.0")
    lock = lock_of(index, tools, "pkg")
    assert lock.pins == {"pkg": "1.0", "dep": "1.0"}
    pkg = lock.package("pkg")
    assert pkg.artifact.sha256 == sha(wheel) and pkg.artifact.size == wheel.stat().st_size
    assert pkg.artifact.url == index.file_url(wheel.name) and pkg.index == index.url
    path = write_lock(lock, tmp_path / "pylock.t.toml")

    index.publish("pkg", "1.1", requires=["dep>=1"])
    fresh = lock_of(index, tools, "pkg")
    assert fresh.pins["pkg"] == "1.1"
    kept = lock_of(index, tools, "pkg", previous=read_lock(path))
    assert kept.pins["pkg"] == "1.0"
    assert [c.line() for c in diff_locks(read_lock(path), fresh)] == ["pkg: 1.0 -> 1.1"]
    assert diff_locks(read_lock(path), kept) == []


@pytest.mark.parametrize("requirement", ["pkg", "pkg==1.0"])
def test_relock_keeps_a_version_an_earlier_index_holds_only_for_another_python(tools, tmp_path, requirement):
    """This machine's shape: a mirror listed first (extra-index-url) holds scipy 1.13.1 for cp311
    only, PyPI (the default index) has the cp312 wheel the lock chose. Given an existing lock, uv
    took its preferred version from the first index listing it and found no wheel for the target:
    a pinned requirement failed ("no wheels with a matching Python ABI tag"), an unpinned one
    silently moved to the newest release. `other` is on PyPI only (uv then lists its file twice)."""
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    other = "cp310" if here == "cp39" else "cp39"
    with PyIndex(tmp_path / "mirror") as mirror, PyIndex(tmp_path / "pypi", json_api=True) as pypi:
        mirror.publish("pkg", "1.0", tag=f"{other}-{other}-manylinux_2_17_x86_64.manylinux2014_x86_64")
        wheel = pypi.publish("pkg", "1.0", tag=f"{here}-{here}-manylinux_2_17_x86_64.manylinux2014_x86_64")
        pypi.publish("other", "1.0")
        indexes = IndexConfig(default=pypi.url, extra=(mirror.url,))
        request = Request(requirements=(requirement, "other"), target=TARGET)
        lock = resolve(request, tools=tools, indexes=indexes)
        assert lock.package("pkg").artifact.url == pypi.file_url(wheel.name)
        assert all(p.artifact.upload_time is not None for p in lock.packages)  # PyPI's JSON API gives it
        path = write_lock(lock, tmp_path / "pylock.t.toml")

        pypi.publish("pkg", "1.1", tag="py3-none-any")
        kept = resolve(request, tools=tools, indexes=indexes, previous=read_lock(path))
        assert kept.pins == {"pkg": "1.0", "other": "1.0"}
        assert kept.packages == lock.packages  # the same files, indexes and upload times
        if requirement == "pkg":
            moved = resolve(request, tools=tools, indexes=indexes, previous=read_lock(path), upgrade=["pkg"])
            assert moved.pins == {"pkg": "1.1", "other": "1.0"}


def test_upgrade_package_moves_only_that_one(index, tools):
    for name in ("pkg", "other"):
        index.publish(name, "1.0")
    old = lock_of(index, tools, "pkg", "other")
    for name in ("pkg", "other"):
        index.publish(name, "1.1")
    new = lock_of(index, tools, "pkg", "other", previous=old, upgrade=["pkg"])
    assert new.pins == {"pkg": "1.1", "other": "1.0"}
    assert [c.line() for c in diff_locks(old, new)] == ["pkg: 1.0 -> 1.1"]


def test_each_artifact_is_downloaded_once(index, tools):
    index.publish("pkg", "1.0")
    cache = DownloadCache()
    lock_of(index, tools, "pkg", cache=cache)
    assert cache.fetched_urls == [index.file_url("pkg-1.0-py3-none-any.whl")] or cache.fetched_urls == []
    again = DownloadCache()
    lock_of(index, tools, "pkg", cache=again)
    assert again.fetched_urls == []  # the second lock hashes nothing again: the cache has the bytes


def test_hashes_are_the_bytes_not_the_index_page(tmp_path, tools):
    with PyIndex(tmp_path / "liar", lie_about_hashes=True) as liar:
        wheel = liar.publish("pkg", "1.0")
        lock = lock_of(liar, tools, "pkg")
    page = (tmp_path / "liar" / "simple" / "pkg" / "index.html").read_text()
    assert sha(wheel) not in page  # the page's hash is wrong...
    assert lock.package("pkg").artifact.sha256 == sha(wheel)  # ...the lock's is the file's


def test_torch_index_serves_the_torch_family_only(index, tools, tmp_path):
    with PyIndex(tmp_path / "torch-index") as torch_index:
        torch_index.publish("torch", "2.9.1+cu128", requires=["numpy"])
        torch_index.publish("numpy", "9.9")  # an index copy of an unrelated package: never used
        index.publish("torch", "2.9.1")  # the default index's build of the same release
        index.publish("numpy", "2.0")
        lock = lock_of(index, tools, "numpy", request={"torch": ("torch==2.9.1",), "torch_index": torch_index.url})
        assert lock.pins == {"torch": "2.9.1+cu128", "numpy": "2.0"}
        assert lock.package("torch").index == torch_index.url
        assert lock.package("numpy").index == index.url
        assert lock.envbuilder.resolution.torch_index == torch_index.url


def test_sdist_only_requirement_is_locked_as_its_sdist(index, tools, tmp_path):
    sdist = index.publish("oldlib", "0.70", sdist_only=True, requires=["dep"])
    index.publish("dep", "1.0")
    index.publish("pip", "99.0")  # its metadata is prepared with pip present, as in the env (chumpy imports pip)
    lock = lock_of(index, tools, request={"no_build_isolation": ("oldlib==0.70",)})
    old = lock.package("oldlib")
    assert old.artifact.kind == "sdist" and old.artifact.sha256 == sha(sdist)
    assert lock.envbuilder.no_build_isolation == ("oldlib",)
    assert lock.pins == {"oldlib": "0.70", "dep": "1.0"}
    # and one that is not marked: found by uv's answer, pinned as an sdist too
    index.publish("plainsdist", "1.0", sdist_only=True)
    lock2 = lock_of(index, tools, "plainsdist", "dep")
    assert lock2.package("plainsdist").artifact.kind == "sdist" and lock2.package("dep").artifact.kind == "wheel"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_sdist_builds_against_the_setuptools_the_env_has(index, tools, tmp_path, installer):
    """On a base (seen through --system-site-packages) that has setuptools and wheel, the lock installs
    without them; a setup.py sdist then builds against the env's copies. Isolated, the installer would
    look for setuptools on the index, which has none, as an offline machine has none (seen on the
    device: python-speech-features 0.6 in TalkingGaussian's bundle)."""
    sdist = build_setup_py_sdist(tmp_path / "files", "speechlib", "0.6")
    index.add_file(sdist, "speechlib")
    python = venv(tmp_path / "env")
    subprocess.run([*tools.pip, "--python", str(python), "install", "-q", "setuptools", "wheel"], check=True)
    artifact = Artifact(
        kind="sdist", filename=sdist.name, sha256=sha(sdist), size=sdist.stat().st_size, url=index.file_url(sdist.name)
    )
    lock = Lock((LockedPackage("speechlib", "0.6", artifact, index=index.url),))
    install_lock(lock, python, installer=installer, tools=tools, indexes=IndexConfig(default=index.url))
    assert installed_packages(python)["speechlib"] == "0.6"
    assert not [r for r in index.requests if "/simple/setuptools" in r]  # nothing was looked up for the build


NEEDS_HEADERS = """
import os, sys
found = os.environ.get("HDRS_DIR", "")
if not os.path.isfile(os.path.join(found, "__init__.py")):
    sys.exit(f"needshdrs: no headers at HDRS_DIR={found!r}")  # as g++ says 'Eigen/Core: No such file'
"""


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_sdist_builds_with_its_sdist_env_after_the_wheel_it_points_at(index, tools, tmp_path, installer):
    """pysdf finds Eigen only through CPLUS_INCLUDE_PATH, at cmeel-eigen's headers in the env: the
    lock's sdist-env is set, with {site} the env's site-packages, and the sdist builds after the
    wheel that holds them. Without the variable the same install fails."""
    index.publish("hdrs", "1.0")  # site-packages/hdrs/ stands for cmeel.prefix/include/eigen3
    sdist = build_setup_py_sdist(tmp_path / "files", "needshdrs", "0.1", before_setup=NEEDS_HEADERS)
    index.add_file(sdist, "needshdrs")
    artifact = Artifact(
        kind="sdist", filename=sdist.name, sha256=sha(sdist), size=sdist.stat().st_size, url=index.file_url(sdist.name)
    )
    hdrs = lock_of(index, tools, "hdrs").package("hdrs")
    packages = (LockedPackage("needshdrs", "0.1", artifact, index=index.url), hdrs)
    with_env = EnvbuilderPart(sdist_env={"needshdrs": {"HDRS_DIR": "{site}/hdrs"}})
    python = venv(tmp_path / "env")
    subprocess.run([*tools.pip, "--python", str(python), "install", "-q", "setuptools", "wheel"], check=True)
    plain = venv(tmp_path / "plain")
    subprocess.run([*tools.pip, "--python", str(plain), "install", "-q", "setuptools", "wheel"], check=True)
    with pytest.raises(InstallFailed) as caught:
        install_lock(Lock(packages), plain, installer=installer, tools=tools, indexes=IndexConfig(default=index.url))
    assert "needshdrs" in caught.value.message + (caught.value.tail or "")
    notes: list[str] = []
    lock = Lock(packages, envbuilder=with_env)
    install_lock(
        lock, python, installer=installer, tools=tools, indexes=IndexConfig(default=index.url), on_note=notes.append
    )
    assert installed_packages(python)["needshdrs"] == "0.1"
    site = subprocess.run([str(python), "-c", SITE_SCRIPT], capture_output=True, text=True, check=True).stdout.strip()
    assert f"building with HDRS_DIR={site}/hdrs" in notes


def test_unsatisfiable_requirement_is_our_error(index, tools):
    index.publish("pkg", "1.0")
    with pytest.raises(ResolutionFailed) as caught:
        lock_of(index, tools, "pkg>=2")
    assert "pkg" in caught.value.message


def test_pip_and_uv_install_the_same_set(index, tools, tmp_path):
    index.publish("pkg", "1.0", requires=["dep"])
    index.publish("dep", "1.0")
    index.publish("oldlib", "0.70", sdist_only=True)
    lock = lock_of(index, tools, "pkg", "oldlib")
    by_pip = install_lock(lock, venv(tmp_path / "a"), installer="pip", tools=tools)
    by_uv = install_lock(lock, venv(tmp_path / "b"), installer="uv", tools=tools)
    assert by_pip.pins() == by_uv.pins() == {f"{n}=={v}" for n, v in lock.pins.items()}


def test_file_changed_on_the_index_is_refused_by_name(index, tools, tmp_path):
    index.publish("pkg", "1.0")
    lock = lock_of(index, tools, "pkg")
    changed = index.replace("pkg", "1.0")
    python = venv(tmp_path / "env")
    with pytest.raises(ArtifactMismatch) as caught:  # elsewhere: a machine with an empty cache
        install_lock(lock, python, installer="uv", tools=tools, cache=DownloadCache(tmp_path / "other-cache"))
    err = caught.value
    assert err.package == "pkg" and err.what == "sha256"
    assert err.expected == lock.package("pkg").artifact.sha256 and err.actual == sha(changed)
    assert "pkg" in err.message and err.expected in err.message and err.actual in err.message
    assert "pkg" not in installed_packages(python)  # nothing was installed
    # where the locked bytes are still cached, the lock installs exactly them
    install_lock(lock, python, installer="pip", tools=tools)
    assert installed_packages(python)["pkg"] == "1.0"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installers_themselves_refuse_a_hash_mismatch(index, tools, tmp_path, installer):
    """Without envbuilder's check in front, pip and uv refuse too; their words become ours."""
    wheel = index.publish("pkg", "1.0")
    bad = "0" * 64
    lock = Lock(
        (
            replace(
                lock_of(index, tools, "pkg").package("pkg"),
                artifact=Artifact("wheel", wheel.name, bad, wheel.stat().st_size, path=str(wheel)),
            ),
        )
    )
    lockfile = write_lock(lock, tmp_path / "pylock.bad.toml")
    with pytest.raises(ArtifactMismatch) as caught:
        run_installer(installer, tools, venv(tmp_path / "env"), lockfile)
    assert (caught.value.package, caught.value.expected, caught.value.actual) == ("pkg", bad, sha(wheel))


def test_size_mismatch_is_caught_before_either_installer(index, tools, tmp_path):
    wheel = index.publish("pkg", "1.0")
    good = lock_of(index, tools, "pkg")
    wrong = replace(
        good, packages=(replace(good.package("pkg"), artifact=replace(good.package("pkg").artifact, size=12)),)
    )
    for installer in ("pip", "uv"):
        with pytest.raises(ArtifactMismatch) as caught:
            install_lock(wrong, venv(tmp_path / installer), installer=installer, tools=tools)
        assert (caught.value.what, caught.value.expected, caught.value.actual) == (
            "size",
            "12",
            str(wheel.stat().st_size),
        )
    # uv checks sizes itself as well (pip 26.3 does not: that is why envbuilder checks first)
    lockfile = write_lock(
        replace(
            wrong, packages=(replace(wrong.packages[0], artifact=replace(wrong.packages[0].artifact, path=str(wheel))),)
        ),
        tmp_path / "pylock.size.toml",
    )
    with pytest.raises(ArtifactMismatch) as caught:
        run_installer("uv", tools, venv(tmp_path / "uv-direct"), lockfile)
    assert caught.value.what == "size"


def test_freeze_a_built_env_without_resolving(index, tools, tmp_path):
    index.publish("pkg", "1.0", requires=["dep"])
    index.publish("dep", "1.0")
    lock = lock_of(index, tools, "pkg")
    prefix = tmp_path / "env"
    python = venv(prefix / "venv")
    install_lock(lock, python, installer="pip", tools=tools)
    record_installed(lock, prefix)
    (prefix / "envbuilder.lock.json").write_text(
        json.dumps(
            {
                "recipe": {"name": "demo", "sha256": "f" * 64},
                "archs": ["12.0"],
                "toolchain": {"nvcc": "13.0.88", "gcc": "12.2.0", "python": {"version": PY + ".1"}},
            }
        )
    )
    index.publish("pkg", "1.1", requires=["dep"])  # a resolution now would move: the freeze must not
    frozen = freeze_env(prefix)
    assert frozen.packages == lock.packages
    assert frozen.envbuilder.recipe == "demo" and frozen.envbuilder.toolchain.cuda == "13.0"
    assert frozen.envbuilder.toolchain.gcc_major == 12 and frozen.envbuilder.archs == ("12.0",)
    # changed by hand after the build: refused, naming what changed
    extra = index.publish("handmade", "3.0")
    subprocess.run([*tools.pip, "--python", str(python), "install", "--no-deps", "-q", str(extra)], check=True)
    with pytest.raises(FreezeError, match="handmade==3.0"):
        freeze_env(prefix)
    (prefix / INSTALLED_LOCK).unlink()
    with pytest.raises(FreezeError, match="without a record"):
        freeze_env(prefix)


def test_freeze_from_a_pip_report(index, tools, tmp_path):
    index.publish("pkg", "1.0", requires=["dep"])
    index.publish("dep", "1.0")
    report = tmp_path / "report.json"
    subprocess.run(
        [
            *tools.pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--index-url",
            index.url,
            "pkg",
        ],
        check=True,
        env={"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    from_report = lock_from_pip_report(json.loads(report.read_text()), indexes=(index.url,), part=EnvbuilderPart())
    resolved = lock_of(index, tools, "pkg")
    assert [(p.name, p.version, p.artifact.sha256, p.index) for p in from_report.packages] == [
        (p.name, p.version, p.artifact.sha256, p.index) for p in resolved.packages
    ]
