"""Install a lock into an env, the same way with pip and with uv:

1. every file is verified first (downloaded into the cache if needed, then its size and sha256
   compared with the lock); a mismatch raises ArtifactMismatch naming the package, the expected
   and the actual value, before anything touches the env. The message is envbuilder's and the
   same for both installers (pip 26.3 does not even check `size`: measured, it installed a file
   whose size differed from the lock; uv 0.13.9 refuses it);
2. a copy of the lock whose files point at the verified local copies (`path`, url kept) goes to
   `pip --python ENV install -r pylock.install.toml` (envbuilder's pip >= 26.1) or
   `uv pip install --python ENV -r pylock.install.toml` (uv >= 0.12); the no-build-isolation
   sdists (chumpy) follow in a second call with --no-build-isolation, built against the env;
3. should an installer still refuse a file (it changed between 1 and 2), its message is turned
   into the same ArtifactMismatch.

Both installers run with no pip/uv configuration of the machine (PIP_CONFIG_FILE=/dev/null,
--no-config): only the lock decides what is installed. Indexes are given only so that the
isolated build of an sdist can fetch its build backend (PEP 751 does not lock build deps).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from envbuilder import proc
from envbuilder.errors import CommandFailed, InputError
from envbuilder.lock.download import DownloadCache
from envbuilder.lock.errors import ArtifactMismatch, InstallFailed
from envbuilder.lock.indexes import IndexConfig
from envbuilder.lock.model import Lock
from envbuilder.lock.tomlfile import write_lock
from envbuilder.lock.tools import Tools, clean_env

INSTALLERS = ("pip", "uv")


@dataclass(frozen=True)
class Installed:
    installer: str
    packages: dict[str, str]  # normalized name -> version, everything in the env

    def pins(self) -> set[str]:
        return {f"{n}=={v}" for n, v in self.packages.items()}


def verify_files(lock: Lock, *, lock_dir: Path | None = None, cache: DownloadCache | None = None) -> dict[str, Path]:
    """package name -> a local file with exactly the locked bytes. Raises on the first mismatch."""
    cache = cache or DownloadCache()
    files = {}
    for p in lock.packages:
        a = p.artifact
        local = None
        if a.path:
            local = Path(a.path) if Path(a.path).is_absolute() or lock_dir is None else lock_dir / a.path
        files[p.name] = cache.verified(a.url, local, a.sha256, a.size, package=p.name, filename=a.filename)
    return files


def install_lock(
    lock: Lock,
    python: Path,
    *,
    installer: str,
    tools: Tools,
    lock_dir: Path | None = None,
    cache: DownloadCache | None = None,
    indexes: IndexConfig | None = None,
    log: Path | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Installed:
    """Install every package of `lock` into the env whose interpreter is `python`."""
    if installer not in INSTALLERS:
        raise InputError(f"installer {installer!r}: choose pip or uv")
    note = on_note or (lambda _t: None)
    files = verify_files(lock, lock_dir=lock_dir, cache=cache)
    note(f"verified {len(files)} files (sha256 and size)")
    late = set(lock.envbuilder.no_build_isolation) if lock.envbuilder else set()
    sdist_env = dict(lock.envbuilder.sdist_env) if lock.envbuilder else {}
    # an sdist whose build needs variables goes last, after what they point at (a headers wheel)
    late |= {p.name for p in lock.packages if p.name in sdist_env and p.artifact.kind == "sdist"}
    if _has_build_tools(lock, python):
        # every sdist builds against the env's setuptools (locked, or the base's at the locked
        # version): no build isolation, so nothing is fetched for it (offline machines)
        late |= {p.name for p in lock.packages if p.artifact.kind == "sdist"}
    first = lock.without(sorted(late))
    second = lock.only(sorted(late))
    with tempfile.TemporaryDirectory(prefix="envbuilder-install-") as tmp:
        for part, options in ((first, []), (second, ["--no-build-isolation"])):
            if not part.packages:
                continue
            local = _pointing_at(part, files)
            lockfile = write_lock(local, Path(tmp) / ("pylock.late.toml" if options else "pylock.install.toml"))
            note(
                f"{installer}: installing {len(part.packages)} packages"
                + (" without build isolation" if options else "")
            )
            extra = _sdist_variables(part, sdist_env, python) if options else {}
            for name, value in extra.items():
                note(f"building with {name}={value}")
            run_installer(
                installer, tools, python, lockfile, options=options, indexes=indexes, log=log, extra_env=extra
            )
    return Installed(installer, installed_packages(python))


def _sdist_variables(lock: Lock, sdist_env: dict[str, Mapping[str, str]], python: Path) -> dict[str, str]:
    """The recipe's sdist_env of the sdists in `lock`, with {site} the env's site-packages. Two
    sdists that set one variable get both values, joined as a search path."""
    wanted = [sdist_env[p.name] for p in lock.packages if p.name in sdist_env and p.artifact.kind == "sdist"]
    if not wanted:
        return {}
    site = proc.capture([str(python), "-c", SITE_SCRIPT], timeout=120).strip().splitlines()[-1]
    out: dict[str, str] = {}
    for env in wanted:
        for name, template in env.items():
            value = template.format(site=site)
            out[name] = value if name not in out or out[name] == value else f"{out[name]}{os.pathsep}{value}"
    return out


SITE_SCRIPT = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def _has_build_tools(lock: Lock, python: Path) -> bool:
    """setuptools and wheel will be in the env: in the lock, or there already (a base seen through
    --system-site-packages, whose copies the wheels step leaves out of what it installs)."""
    if not any(p.artifact.kind == "sdist" for p in lock.packages):
        return False
    present = installed_packages(python)
    return all(lock.package(name) or name in present for name in ("setuptools", "wheel"))


def _pointing_at(lock: Lock, files: dict[str, Path]) -> Lock:
    # absolute: the installers resolve a relative path against the lock file's own folder (a temp dir)
    packages = tuple(
        replace(p, artifact=replace(p.artifact, path=str(files[p.name].absolute()))) for p in lock.packages
    )
    # envbuilder's own part is not needed by the installer; keep the file minimal
    return replace(lock, packages=packages, envbuilder=None)


def run_installer(
    installer: str,
    tools: Tools,
    python: Path,
    lockfile: Path,
    *,
    options: Sequence[str] = (),
    indexes: IndexConfig | None = None,
    log: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """One pip or uv install of a pylock file, as is (no verification of ours: tests use it to
    show that the installers refuse a mismatch too). Their hash and size errors become ours."""
    index_args: list[str] = []
    if installer == "pip":
        if indexes:
            index_args = ["--index-url", indexes.default, *[a for e in indexes.extra for a in ("--extra-index-url", e)]]
        argv = [
            *tools.pip,
            "--python",
            str(python),
            "install",
            "--no-input",
            *index_args,
            *options,
            "-r",
            str(lockfile),
        ]
        env = clean_env({"PIP_CONFIG_FILE": "/dev/null"})
    else:
        if indexes:
            index_args = ["--default-index", indexes.default, *[a for e in indexes.extra for a in ("--index", e)]]
        argv = [
            tools.uv, "pip", "install", "--no-config", "--preview-features", "pylock",
            "--python", str(python), *index_args, *options, "-r", str(lockfile),
        ]  # fmt: skip
        env = clean_env()
    env = {**env, **(extra_env or {})}
    try:
        if log is not None:
            proc.run(argv, log=log, env=env, timeout=3600)
        else:
            proc.capture(argv, env=env, timeout=3600, merge_stderr=True)
    except CommandFailed as exc:
        tail = exc.tail or ""
        mismatch = installer_mismatch(installer, tail)
        if mismatch:
            raise mismatch from None
        raise InstallFailed(
            f"{installer} could not install {lockfile.name} into {python}: {_last_error(tail)}",
            installer=installer,
            tail=tail,
            hint=f"full output: {log}" if log else None,
        ) from None


_PIP_HASH = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9._-]+)==\S+ from (?P<src>\S+).*?:\s*\n\s*Expected sha256 (?P<exp>[0-9a-f]{64})\s*\n\s*Got\s+(?P<got>[0-9a-f]{64})",
    re.M,
)
_UV_HASH = re.compile(
    r"Hash mismatch for `(?P<name>[^`=]+)(?:==[^`]*)?`\s*Expected:\s*sha256:(?P<exp>[0-9a-f]{64})\s*Computed:\s*sha256:(?P<got>[0-9a-f]{64})",
    re.S,
)
_UV_SIZE = re.compile(r"Archive `(?P<src>[^`]+)` has size (?P<got>\d+), but the lockfile records (?P<exp>\d+)")


def installer_mismatch(installer: str, output: str) -> ArtifactMismatch | None:
    """pip's "THESE PACKAGES DO NOT MATCH THE HASHES" and uv's "Hash mismatch" / "has size"
    messages, as envbuilder's ArtifactMismatch (package, expected, actual)."""
    if installer == "pip" and (m := _PIP_HASH.search(output)):
        src = m.group("src")
        return ArtifactMismatch(
            m.group("name"), src.rsplit("/", 1)[-1], "sha256", m.group("exp"), m.group("got"), source="pip"
        )
    if installer == "uv" and (m := _UV_HASH.search(output)):
        return ArtifactMismatch(m.group("name"), m.group("name"), "sha256", m.group("exp"), m.group("got"), source="uv")
    if installer == "uv" and (m := _UV_SIZE.search(output)):
        filename = m.group("src").rsplit("/", 1)[-1]
        name = re.split(r"-\d", filename, maxsplit=1)[0]
        return ArtifactMismatch(name, filename, "size", m.group("exp"), m.group("got"), source="uv")
    return None


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [
        line for line in lines if line.lower().startswith(("error", "\u00d7", "cause"))
    ]  # uv marks errors with a cross
    return (errors or lines or ["(no output)"])[-1][:300]


LIST_SCRIPT = (
    "import json, importlib.metadata as m, re\n"
    "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version "
    "for d in m.distributions() if d.metadata['Name']}))"
)


def installed_packages(python: Path) -> dict[str, str]:
    """normalized name -> version of every distribution the env's Python sees."""
    out = proc.capture([str(python), "-c", LIST_SCRIPT], timeout=120)
    found: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return dict(sorted(found.items()))
