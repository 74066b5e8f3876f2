"""Test helpers: synthetic ELF/fatbin bytes, fake host facts, small git repos. All written here."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.version import Version

from envbuilder.host import Compiler, HostFacts, Interpreter, Toolkit
from envbuilder.steps import NAMES

FLAG_64BIT_LINUX = 0x11

# The build's steps in order, as users see them in `plan` and the manifest: the one step list.
STEPS = list(NAMES)


def fatbin_entry(
    kind: int,
    sm: int,
    *,
    flags: int = FLAG_64BIT_LINUX,
    payload: int = 32,
    header_size: int = 64,
    uncompressed: int = 0,
) -> bytes:
    header = struct.pack(
        "<HHIQIIHHIIIQQQ", kind, 0x0101, header_size, payload, 0, 0, 0, 0, sm, 0, 0, flags, 0, uncompressed
    )
    return header.ljust(header_size, b"\0") + bytes(payload)


def fatbin_container(entries: list[bytes]) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def make_elf(sections: dict[str, bytes]) -> bytes:
    """A minimal ELF64 little-endian shared object holding the given sections."""
    names = [*sections, ".shstrtab"]
    strtab = b"\0"
    name_offsets = {}
    for name in names:
        name_offsets[name] = len(strtab)
        strtab += name.encode() + b"\0"
    data = bytearray(64)
    offsets = {}
    for name, blob in [*sections.items(), (".shstrtab", strtab)]:
        data += bytes(-len(data) % 8)
        offsets[name] = len(data)
        data += blob
    data += bytes(-len(data) % 8)
    shoff = len(data)
    headers = bytes(64)  # the null section
    for name in names:
        blob = sections.get(name, strtab)
        sh_type = 3 if name == ".shstrtab" else 1
        headers += struct.pack("<IIQQQQIIQQ", name_offsets[name], sh_type, 0, 0, offsets[name], len(blob), 0, 0, 8, 0)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    shnum = len(names) + 1
    header = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, shnum, shnum - 1)
    data[:64] = header
    return bytes(data) + headers


def toolkit(
    version: str = "13.0.88", root: str = "/opt/fake-cuda", codes: tuple[int, ...] = (75, 80, 86, 89, 90, 100, 120)
) -> Toolkit:
    return Toolkit(root=Path(root), version=Version(version), found_by="test", sm_codes=codes)


def host(
    *,
    toolkits: list[Toolkit] | None = None,
    compilers: list[tuple[str, str]] | None = None,
    pythons: list[tuple[str, str, str]] | None = None,
    gpus: tuple = (),
    tools: dict[str, str] | None = None,
    glibc: str = "2.36",
) -> HostFacts:
    return HostFacts(
        toolkits=tuple(toolkits if toolkits is not None else [toolkit()]),
        compilers=tuple(
            Compiler(Path(f"/usr/bin/{n}"), Version(v), n)
            for n, v in (compilers if compilers is not None else [("g++", "12.2.0")])
        ),
        interpreters=tuple(
            Interpreter(Path(p), Version(v), by)
            for p, v, by in (pythons if pythons is not None else [("/usr/bin/python3.12", "3.12.1", "PATH")])
        ),
        gpus=gpus,
        gpu_note=None if gpus else "test host has no GPU",
        cpu_count=8,
        memory_gib=32.0,
        glibc=glibc,
        machine="Linux x86_64",
        tools=tools if tools is not None else {"git": "/usr/bin/git"},
    )


def git(*args: str | Path, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main", *map(str, args)],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A git repository with one commit of `files`; returns the commit hash."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", cwd=path)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "test", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def write_recipe(directory: Path, name: str, body: str) -> Path:
    path = directory / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "envbuilder", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def cuda_wheel(
    directory: Path,
    sms: tuple[int, ...] = (120,),
    *,
    name: str = "demo_ext-0.1-cp311-cp311-linux_x86_64.whl",
    payload: bytes = b"",
) -> Path:
    """A wheel holding a synthetic CUDA .so (an ELF with a .nv_fatbin holding SASS for sms);
    payload pads it (a bigger file to interrupt halfway)."""
    so = make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, sm) for sm in sms]), ".rodata": payload})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo_ext/_C.cpython-311-x86_64-linux-gnu.so", so)
        zf.writestr("demo_ext/__init__.py", "")
    return path


def key_inputs(extension: str = "demo-ext", archs: str = "12.0", variant: str = "") -> dict[str, object]:
    """Key inputs shaped like steps/extensions.py's."""
    return {
        "extension": extension,
        "spec": "0" * 63 + (variant or "0"),
        "source": "1" * 64,
        "archs": archs,
        "torch": ["2.14.1", "13.0"],
        "python": "cp311",
        "nvcc": "13.0.88",
        "gcc": "12.2.0",
        "env": {"TORCH_CUDA_ARCH_LIST": archs},
        "variant": variant,
    }
