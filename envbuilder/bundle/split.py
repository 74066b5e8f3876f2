"""`--split SIZE`: a bundle as parts of at most SIZE bytes that travel separately (a 64 MiB
upload limit, FAT32's 4 GiB, a mail gateway), and `envbuilder bundle join` to put it back.

The bundle folder is packed as one uncompressed tar stream (its wheels are compressed already)
cut into <name>.part-0001 … ; <name>.parts.json lists every part with its size and sha256, and
the tar's own sha256. Joining checks each part before it is used (a missing or changed part is
named), writes the tar's folder under a temporary name, checks the bundle's SHA256SUMS, and only
then gives it its name."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from envbuilder.bundle.check import BundleDamaged, file_sha256, verify
from envbuilder.errors import InputError

UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not found or float(found.group(1)) <= 0:
        raise InputError(f"--split {text!r}: not a size", hint="e.g. --split 60M, --split 4G (powers of 1024)")
    return int(float(found.group(1)) * UNITS[found.group(2)])


class _Parts:
    """A write-only file that cuts what is written into numbered parts of at most `size` bytes."""

    def __init__(self, stem: Path, size: int) -> None:
        self.stem, self.size = stem, size
        self.parts: list[dict[str, Any]] = []
        self.whole = hashlib.sha256()
        self._out: IO[bytes] | None = None
        self._h = hashlib.sha256()
        self._left = 0

    def _next(self) -> None:
        self._close()
        path = self.stem.with_name(f"{self.stem.name}.part-{len(self.parts) + 1:04d}")
        self._out, self._h, self._left = path.open("wb"), hashlib.sha256(), self.size
        self.parts.append({"file": path.name, "size": 0, "sha256": ""})

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self.parts[-1]["sha256"] = self._h.hexdigest()
            self._out = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.whole.update(view)
        while view:
            if self._out is None or self._left == 0:
                self._next()
            assert self._out is not None
            chunk = view[: self._left]
            self._out.write(chunk)
            self._h.update(chunk)
            self.parts[-1]["size"] += len(chunk)
            self._left -= len(chunk)
            view = view[len(chunk) :]
        return len(data)

    def close(self) -> None:
        self._close()


def split(bundle: Path, size: int) -> Path:
    """Cut the bundle at `bundle` into parts beside it; returns the parts' index file."""
    stem = bundle.with_name(bundle.name)
    parts = _Parts(stem, size)
    with tarfile.open(fileobj=parts, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.add(bundle, arcname=bundle.name)
    parts.close()
    index = bundle.with_name(f"{bundle.name}.parts.json")
    index.write_text(
        json.dumps({"bundle": bundle.name, "sha256": parts.whole.hexdigest(), "parts": parts.parts}, indent=1) + "\n"
    )
    return index


def join(index: Path, output: Path) -> Path:
    """Check every part listed in `index`, unpack the bundle into output/<its name>, verify it."""
    try:
        data = json.loads(index.read_text())
        listed: list[dict[str, Any]] = list(data["parts"])
        name, whole = str(data["bundle"]), str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{index}: not the index of a split bundle ({exc})", hint="pass the <bundle>.parts.json file"
        ) from None
    here = index.parent
    missing = [p["file"] for p in listed if not (here / p["file"]).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} part(s) of {name} are missing beside {index}: {', '.join(missing)}",
            hint="copy them next to the others",
        )
    for p in listed:
        got = file_sha256(here / p["file"])
        if got != p["sha256"] or (here / p["file"]).stat().st_size != p["size"]:
            raise BundleDamaged(
                f"part {p['file']} of {name} is damaged: sha256 expected {p['sha256']}, got {got}",
                hint="copy that part again",
            )
    target = output / name
    if target.exists():
        raise InputError(f"{target} exists already", hint="join into another --output folder")
    partial = output / f".{name}.joining"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    h = hashlib.sha256()
    try:
        with tarfile.open(fileobj=_Reader(here, listed, h), mode="r|") as tar:  # type: ignore[call-overload]
            tar.extractall(partial, filter="data")
        if h.hexdigest() != whole:
            raise BundleDamaged(
                f"the joined parts of {name} do not make the bundle that was split (sha256 {h.hexdigest()}, expected {whole})"
            )
        verify(partial / name)
        (partial / name).rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


class _Reader:
    """The parts, read one after the other as one stream."""

    def __init__(self, folder: Path, parts: list[dict[str, Any]], digest: Any) -> None:
        self.files: Iterator[Path] = (folder / p["file"] for p in parts)
        self.current: IO[bytes] | None = None
        self.digest = digest

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.current is None:
                nxt = next(self.files, None)
                if nxt is None:
                    return b""
                self.current = nxt.open("rb")
            data = self.current.read(n)
            if data:
                self.digest.update(data)
                return data
            self.current.close()
            self.current = None
