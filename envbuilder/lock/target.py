"""The target a lock is for: one Python and one platform, named as uv names platforms
(x86_64-manylinux_2_28), and the wheel tags such a target accepts, best first."""

from __future__ import annotations

import os
import platform as host_platform
import re
from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from envbuilder.errors import InputError

DEFAULT_GLIBC = "2_28"  # what torch >= 2.6 wheels need; RHEL 8, Ubuntu 20.04 and newer have it
_PLATFORM = re.compile(r"^(x86_64|aarch64)-(manylinux|musllinux)_(\d+)_(\d+)$")
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def default_platform() -> str:
    """This machine's platform (its glibc decides which manylinux wheels it can run: open3d 0.19
    has only manylinux_2_35 wheels), else manylinux_2_28 where the glibc cannot be read."""
    machine = host_platform.machine() or "x86_64"
    arch = "aarch64" if machine in ("arm64", "aarch64") else machine
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        glibc = ""
    found = re.fullmatch(r"glibc (\d+)\.(\d+)", glibc)
    return f"{arch}-manylinux_{found.group(1)}_{found.group(2)}" if found else f"{arch}-manylinux_{DEFAULT_GLIBC}"


def check_platform(platform: str) -> str:
    if not _PLATFORM.fullmatch(platform):
        raise InputError(
            f"platform {platform!r} is not one envbuilder locks for",
            hint="name it as uv does: x86_64-manylinux_2_28 (or aarch64-, musllinux_1_2)",
        )
    return platform


def check_python(python: str) -> str:
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise InputError(f"python {python!r}: give major.minor, e.g. 3.12")
    return python


@dataclass(frozen=True)
class Target:
    python: str  # "3.12"
    platform: str  # "x86_64-manylinux_2_28"

    def __post_init__(self) -> None:
        check_python(self.python)
        check_platform(self.platform)

    @property
    def python_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def arch(self) -> str:
        return self.platform.split("-", 1)[0]

    def platform_tags(self) -> list[str]:
        found = _PLATFORM.fullmatch(self.platform)
        assert found is not None
        arch, family, major, minor = found.group(1), found.group(2), int(found.group(3)), int(found.group(4))
        tags = []
        low = 17 if family == "manylinux" and major == 2 else 0
        for m in range(minor, low - 1, -1):
            tags.append(f"{family}_{major}_{m}_{arch}")
            if family == "manylinux" and (major, m) in _LEGACY:
                tags.append(f"{_LEGACY[(major, m)]}_{arch}")
        if family == "manylinux" and arch == "x86_64" and major == 2 and minor >= 17:
            tags += [f"manylinux_2_12_{arch}", f"manylinux2010_{arch}", f"manylinux_2_5_{arch}", f"manylinux1_{arch}"]
        tags.append(f"linux_{arch}")
        return tags

    def tags(self) -> list[Tag]:
        plats = self.platform_tags()
        version = self.python_tuple
        interpreter = f"cp{version[0]}{version[1]}"
        return [*cpython_tags(version, platforms=plats), *compatible_tags(version, interpreter, plats)]

    @cached_property
    def _order(self) -> dict[Tag, int]:
        return {t: i for i, t in enumerate(self.tags())}

    def wheel_rank(self, filename: str) -> int | None:
        """How well a wheel fits (0 is best), or None when the target cannot install it."""
        try:
            _, _, _, wheel_tags = parse_wheel_filename(filename)
        except ValueError:
            return None
        ranks = [self._order[t] for t in wheel_tags if t in self._order]
        return min(ranks) if ranks else None

    def marker(self) -> str:
        """The PEP 508 environment the lock is for, so installers refuse another one."""
        return f"sys_platform == 'linux' and platform_machine == '{self.arch}'"
