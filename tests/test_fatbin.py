"""The .nv_fatbin reader: synthetic ELF bytes for every layout detail, plus real nvcc output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envbuilder import fatbin
from envbuilder.errors import InputError

from helpers import FLAG_64BIT_LINUX, fatbin_container, fatbin_entry, make_elf

ROOT = Path(__file__).resolve().parent.parent


def report(*containers: bytes, section: str = ".nv_fatbin", padding: int = 0) -> fatbin.BinaryReport:
    blob = (bytes(padding)).join(containers)
    return fatbin.inspect_bytes(make_elf({".text": b"\x90" * 16, section: blob}))


def test_sass_and_ptx_entries():
    r = report(
        fatbin_container(
            [
                fatbin_entry(2, 120),
                fatbin_entry(2, 90),
                fatbin_entry(1, 120, flags=FLAG_64BIT_LINUX | fatbin.FLAG_ZSTD, uncompressed=99),
            ]
        )
    )
    assert r.sass == ["sm_90", "sm_120"]
    assert r.ptx == ["compute_120"]
    ptx = [e for e in r.entries if e.kind == "ptx"][0]
    assert ptx.compression == "zstd" and ptx.uncompressed_size == 99


def test_several_containers_with_padding_and_lz4():
    r = report(
        fatbin_container([fatbin_entry(2, 86, flags=FLAG_64BIT_LINUX | fatbin.FLAG_LZ4)]),
        fatbin_container([fatbin_entry(2, 120, header_size=112)]),
        padding=8,
    )
    assert r.sass == ["sm_86", "sm_120"]
    assert r.entries[0].compression == "lz4"


def test_arch_specific_and_family_flags():
    r = report(
        fatbin_container(
            [
                fatbin_entry(2, 120, flags=FLAG_64BIT_LINUX | fatbin.FLAG_ARCH_SPECIFIC),
                fatbin_entry(2, 100, flags=FLAG_64BIT_LINUX | fatbin.FLAG_FAMILY),
            ]
        )
    )
    assert r.sass == ["sm_100f", "sm_120a"]
    assert r.runs_on(12, 0) == "sass"  # sm_120a runs on exactly 12.0
    assert r.runs_on(12, 1) is None  # ... and nowhere else
    assert r.runs_on(10, 3) == "sass"  # sm_100f runs on the 10.x family


def test_runs_on_rules():
    r = report(fatbin_container([fatbin_entry(2, 86), fatbin_entry(1, 90)]))
    assert r.runs_on(8, 6) == "sass"
    assert r.runs_on(8, 9) == "sass"  # same major, higher minor
    assert r.runs_on(8, 0) is None  # lower minor: no
    assert r.runs_on(12, 0) == "ptx"  # compute_90 JITs forward
    assert r.runs_on(7, 5) is None


def test_relocatable_fatbin_section():
    r = report(fatbin_container([fatbin_entry(2, 120)]), section="__nv_relfatbin")
    assert r.sass == ["sm_120"] and r.entries[0].section == "__nv_relfatbin"


def test_host_only_binary_has_no_device_code():
    r = fatbin.inspect_bytes(make_elf({".text": b"\xc3"}))
    assert not r.has_device_code and r.runs_on(12, 0) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 a zip file", "not an ELF file"),
        (b"\x7fELF" + bytes([1, 1, 1]) + bytes(60), "not a 64-bit little-endian"),
        (b"\x7fELF" + bytes([2, 1, 1]) + bytes(20), "truncated"),
    ],
)
def test_not_a_binary(tmp_path, data, message):
    path = tmp_path / "x.so"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        fatbin.inspect_file(path)


def test_truncated_section_is_reported(tmp_path):
    data = make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, 120)])})
    path = tmp_path / "cut.so"
    path.write_bytes(data[:100] + data[-64 * 4 :])  # section table kept, section data cut away
    with pytest.raises(InputError):
        fatbin.inspect_file(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        fatbin.inspect_file(tmp_path / "absent.so")
    with pytest.raises(InputError, match="is a directory"):
        fatbin.inspect_file(tmp_path)


@pytest.mark.compile
def test_real_nvcc_object_holds_the_requested_archs(tmp_path, cuda):
    """nvcc compiles the canary program for 9.0 + 12.0+PTX; the reader finds exactly that."""
    source = ROOT / "extensions" / "canary" / "src" / "csrc" / "canary_main.cu"
    obj = tmp_path / "canary.o"
    subprocess.run(
        [
            str(cuda.nvcc),
            "-c",
            "-std=c++17",
            "-gencode=arch=compute_90,code=sm_90",
            "-gencode=arch=compute_120,code=sm_120",
            "-gencode=arch=compute_120,code=compute_120",
            "-o",
            str(obj),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    r = fatbin.inspect_file(obj)
    assert r.sass == ["sm_90", "sm_120"]
    assert r.ptx == ["compute_120"]
    assert r.runs_on(12, 0) == "sass" and r.runs_on(9, 0) == "sass" and r.runs_on(8, 6) is None


def test_verify_rejects_a_binary_without_the_arch(tmp_path):
    """check_binaries on an sm_86-only .so: the env would not run on an RTX 50xx."""
    from envbuilder.steps.verify import check_binaries

    platlib = tmp_path / "site"
    (platlib / "pkg").mkdir(parents=True)
    (platlib / "pkg/_C.so").write_bytes(make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, 86)])}))
    binaries, problems = check_binaries(platlib, [{"name": "x", "so_files": ["pkg/_C.so"]}], ["12.0"])
    assert binaries[0]["runs_on"] == {"12.0": None}
    assert "no SASS or PTX for 12.0 (it holds SASS sm_86" in problems[0]
