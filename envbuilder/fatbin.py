"""Which SASS and PTX a binary holds: a pure-Python reader of the ELF `.nv_fatbin` section.

Layout (research/blackwell.md §4): ELF64 section headers -> `.nv_fatbin` (and `__nv_relfatbin`
for -rdc objects) -> back-to-back containers (magic 0xBA55ED50, u16 version, u16 header size,
u64 body size) -> entries, each a header of >= 64 bytes then its payload:

    0x00 u16 kind (1 PTX, 2 ELF cubin, 4 old cubin, 8 NVVM IR)   0x04 u32 header size
    0x08 u64 payload size      0x1C u32 sm number               0x20/0x24 object name off/len
    0x28 u64 flags: 0x2000 LZ4, 0x8000 Zstd, 0x100000 'a' target, 0x200000 'f' target
    0x38 u64 uncompressed size

Kind, arch and flags live in the uncompressed header, so listing never needs decompression.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from envbuilder.errors import InputError, NotABinary

ELF_MAGIC = b"\x7fELF"
CONTAINER_MAGIC = 0xBA55ED50
FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")

KINDS = {1: "ptx", 2: "sass", 4: "sass-old", 8: "nvvm", 16: "sass"}
FLAG_LZ4 = 0x2000
FLAG_ZSTD = 0x8000
FLAG_ARCH_SPECIFIC = 0x100000
FLAG_FAMILY = 0x200000


@dataclass(frozen=True)
class FatbinEntry:
    kind: str  # sass | ptx | nvvm | sass-old | unknown-N
    sm: int  # 120 for sm_120
    variant: str  # "", "a" or "f"
    compression: str | None  # None, "lz4", "zstd"
    size: int  # stored payload bytes
    uncompressed_size: int | None
    section: str

    @property
    def major(self) -> int:
        return self.sm // 10

    @property
    def minor(self) -> int:
        return self.sm % 10

    @property
    def arch(self) -> str:
        prefix = "compute" if self.kind in ("ptx", "nvvm") else "sm"
        return f"{prefix}_{self.sm}{self.variant}"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "arch": self.arch,
            "sm": self.sm,
            "variant": self.variant,
            "compression": self.compression,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "section": self.section,
        }


@dataclass(frozen=True)
class BinaryReport:
    path: str
    entries: tuple[FatbinEntry, ...]

    @property
    def sass(self) -> list[str]:
        return sorted({e.arch for e in self.entries if e.kind.startswith("sass")}, key=_arch_order)

    @property
    def ptx(self) -> list[str]:
        return sorted({e.arch for e in self.entries if e.kind == "ptx"}, key=_arch_order)

    @property
    def has_device_code(self) -> bool:
        return bool(self.entries)

    def runs_on(self, major: int, minor: int, variant: str = "") -> str | None:
        """'sass' if a cubin runs on compute capability major.minor, 'ptx' if only JIT can, else None.

        Cubins run on the same major with an equal or higher minor; 'a' cubins only on exactly
        their arch; plain PTX JIT-compiles forward to any newer GPU (bw §1).
        """
        for e in self.entries:
            if not e.kind.startswith("sass") or e.major != major or e.minor > minor:
                continue
            if e.variant == "a" and e.minor != minor:
                continue
            if variant and e.variant != variant:
                continue
            return "sass"
        for e in self.entries:
            if e.kind == "ptx" and e.variant == "" and e.sm <= major * 10 + minor:
                return "ptx"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sass": self.sass,
            "ptx": self.ptx,
            "entries": [e.to_json() for e in self.entries],
        }


def _arch_order(arch: str) -> tuple[int, str]:
    digits = "".join(ch for ch in arch.split("_", 1)[1] if ch.isdigit())
    return int(digits or 0), arch


def _sections(data: bytes) -> dict[str, bytes]:
    """Named sections of an ELF64 little-endian file (only the ones we read)."""
    if data[:4] != ELF_MAGIC:
        raise NotABinary("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise NotABinary("not a 64-bit little-endian ELF file (only x86-64/aarch64 Linux binaries are read)")
    if len(data) < 64:
        raise NotABinary("truncated ELF header")
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if e_shoff == 0:
        return {}
    if e_shentsize < 64 or e_shoff + 64 > len(data):
        raise NotABinary("truncated or corrupt ELF section table")

    def header(i: int) -> tuple[int, int, int, int, int]:
        off = e_shoff + i * e_shentsize
        if off + 64 > len(data):
            raise NotABinary("truncated ELF section table")
        name, sh_type = struct.unpack_from("<II", data, off)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, off + 0x18)
        sh_link = struct.unpack_from("<I", data, off + 0x28)[0]
        return name, sh_type, sh_offset, sh_size, sh_link

    if e_shnum == 0:  # more than 0xff00 sections: the count lives in section 0 (ELF spec)
        e_shnum = header(0)[3]
    if e_shstrndx == 0xFFFF:
        e_shstrndx = header(0)[4]
    if e_shstrndx >= e_shnum:
        raise NotABinary("corrupt ELF: section-name table index out of range")
    _, _, str_off, str_size, _ = header(e_shstrndx)
    names = data[str_off : str_off + str_size]
    wanted: dict[str, bytes] = {}
    for i in range(e_shnum):
        name_off, sh_type, sh_offset, sh_size, _ = header(i)
        end = names.find(b"\0", name_off)
        name = names[name_off : end if end >= 0 else None].decode("latin-1")
        if name in FATBIN_SECTIONS and sh_type != 8:  # 8 = SHT_NOBITS
            if sh_offset + sh_size > len(data):
                raise NotABinary(f"truncated ELF: section {name} runs past the end of the file")
            wanted[name] = data[sh_offset : sh_offset + sh_size]
    return wanted


def parse_fatbin(blob: bytes, section: str = ".nv_fatbin") -> list[FatbinEntry]:
    """Entries of every container in a fatbin section (padding between containers is skipped)."""
    entries: list[FatbinEntry] = []
    pos = 0
    while pos + 16 <= len(blob):
        magic, _version, header_size, body_size = struct.unpack_from("<IHHQ", blob, pos)
        if magic != CONTAINER_MAGIC:
            pos += 8  # containers are 8-byte aligned; skip padding
            continue
        start = pos + header_size
        end = min(start + body_size, len(blob))
        cursor = start
        while cursor + 64 <= end:
            kind, _ver, ehdr_size, payload = struct.unpack_from("<HHIQ", blob, cursor)
            if ehdr_size < 64 or kind == 0:
                break
            (compressed_size,) = struct.unpack_from("<I", blob, cursor + 0x10)
            (sm,) = struct.unpack_from("<I", blob, cursor + 0x1C)
            (flags,) = struct.unpack_from("<Q", blob, cursor + 0x28)
            (uncompressed,) = struct.unpack_from("<Q", blob, cursor + 0x38)
            compression = "zstd" if flags & FLAG_ZSTD else "lz4" if flags & FLAG_LZ4 else None
            variant = "a" if flags & FLAG_ARCH_SPECIFIC else "f" if flags & FLAG_FAMILY else ""
            entries.append(
                FatbinEntry(
                    kind=KINDS.get(kind, f"unknown-{kind}"),
                    sm=sm,
                    variant=variant,
                    compression=compression,
                    size=payload,
                    uncompressed_size=uncompressed or (None if compressed_size else payload),
                    section=section,
                )
            )
            cursor += ehdr_size + payload
        pos = max(start + body_size, pos + 16)
    return entries


def inspect_bytes(data: bytes, name: str = "<bytes>") -> BinaryReport:
    entries: list[FatbinEntry] = []
    for section, blob in _sections(data).items():
        entries.extend(parse_fatbin(blob, section))
    return BinaryReport(path=name, entries=tuple(entries))


def inspect_file(path: Path) -> BinaryReport:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return inspect_bytes(data, str(path))
    except NotABinary as exc:
        raise NotABinary(f"{path}: {exc.message}", hint="give a compiled .so, .o or executable") from None
