#!/usr/bin/env python3
"""Writes seed zips for cpp_runtime/fuzz/archive_fuzzer into a corpus directory.

Seeds look like small aotc packages (STORED entries, a manifest.json), in the
shapes the reader must handle: plain zips, zipfile's force_zip64 (zip64 sizes
in the local header only), full zip64 (saturated central fields, zip64 end
record and locator), 64-byte alignment padding in the extra field, a comment,
directory entries. Seeds stay under a few KiB so libFuzzer's mutations stay
fast.

Usage: make_fuzz_corpus.py CORPUS_DIR [--dict PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

ROOT = "pkg"
DATE_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so seeds are reproducible

MANIFEST = {
    "format_version": 1,
    "producer": {"aotc": "0.1.0", "torch": "2.13.0"},
    "target": {"device": "cpu", "arch": "x86_64"},
    "inputs": [{"name": "x", "dtype": "float32", "shape": [8, "s0"]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [8, 64]}],
    "constants": [{"name": "w", "entry": "data/weights/m/w", "bytes": 16, "offset": 0}],
    "entries": {
        "data/aotc/m/model.so": {
            "size": 0,
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        }
    },
    "escapes": 'tab\t quote" \u00e9 \ud83d\ude00',
    "numbers": [0, -1, 2.5, 1e-7, 9007199254740993, True, False, None],
}


def package_entries() -> list[tuple[str, bytes]]:
    """The entries of a minimal package, in package order."""
    return [
        (f"{ROOT}/archive_format", b"pt2"),
        (f"{ROOT}/archive_version", b"0"),
        (f"{ROOT}/data/aotc/m/manifest.json", json.dumps(MANIFEST, indent=1).encode()),
        (f"{ROOT}/data/aotc/m/model.so", b"\x7fELF" + bytes(28)),
        (f"{ROOT}/data/weights/m/w", struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)),
    ]


def info(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, DATE_TIME)
    zi.compress_type = zipfile.ZIP_STORED
    return zi


def zip_bytes(entries, *, force_zip64=False, align=0, comment=b"", dirs=False) -> bytes:
    """A zip written by Python's zipfile; |align| pads each entry's local
    extra field (with an 0xA0C0 record, as the packager does) so its data
    starts on that boundary."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        if dirs:
            zf.writestr(info(f"{ROOT}/"), b"")
            zf.writestr(info(f"{ROOT}/data/"), b"")
        for name, data in entries:
            zi = info(name)
            if align:
                # Local header = 30 + name + extra (+20 for zip64's own extra).
                header = 30 + len(name.encode()) + 4 + (20 if force_zip64 else 0)
                pad = (-(buf.tell() + header)) % align
                zi.extra = struct.pack("<HH", 0xA0C0, pad) + bytes(pad)
            with zf.open(zi, "w", force_zip64=force_zip64) as f:
                f.write(data)
        zf.comment = comment
    return buf.getvalue()


def full_zip64_bytes(entries) -> bytes:
    """A zip64 archive in its most general form, which zipfile only writes past
    4 GiB or 65535 entries: every size and offset saturated in the headers and
    carried in zip64 extra fields, plus the zip64 end record and locator."""
    out = bytearray()
    central = bytearray()
    sat32 = 0xFFFFFFFF
    for name, data in entries:
        raw = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            45,
            0,
            0,
            0,
            0x5021,
            crc,
            sat32,
            sat32,
            len(raw),
            len(local_extra),
        )
        out += raw + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            45,
            45,
            0,
            0,
            0,
            0x5021,
            crc,
            sat32,
            sat32,
            len(raw),
            len(extra),
            0,
            0,
            0,
            0,
            sat32,
        )
        central += raw + extra
    cd_offset = len(out)
    out += central
    zip64_end = len(out)
    out += struct.pack(
        "<IQHHIIQQQQ",
        0x06064B50,
        44,
        45,
        45,
        0,
        0,
        len(entries),
        len(entries),
        len(central),
        cd_offset,
    )
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_end, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, sat32, sat32, 0)
    return bytes(out)


def seeds() -> dict[str, bytes]:
    entries = package_entries()
    manifest_only = [e for e in entries if e[0].endswith("manifest.json")]
    return {
        "empty.zip": zip_bytes([]),
        "one_entry.zip": zip_bytes(entries[:1]),
        "manifest_only.zip": zip_bytes(manifest_only),
        "package.zip": zip_bytes(entries),
        "package_aligned.zip": zip_bytes(entries, align=64),
        "package_force_zip64.zip": zip_bytes(entries, force_zip64=True),
        "package_force_zip64_aligned.zip": zip_bytes(entries, force_zip64=True, align=64),
        "package_full_zip64.zip": full_zip64_bytes(entries),
        "package_comment_dirs.zip": zip_bytes(entries[:2], comment=b"aotc test", dirs=True),
        "full_zip64_manifest.zip": full_zip64_bytes(manifest_only),
    }


# Tokens the mutator should splice in: record signatures, the zip64 extra
# id, saturated fields, and JSON syntax the manifest parser branches on.
DICTIONARY = [
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"PK\x06\x06",
    b"PK\x06\x07",
    b"\x01\x00",
    b"\xff\xff",
    b"\xff\xff\xff\xff",
    b"manifest.json",
    b"archive_format",
    b"../",
    b"\\u",
    b"\\ud83d\\ude00",
    b"true",
    b"false",
    b"null",
    b"1e400",
    b"-0.5e-3",
    b'{"a":',
    b"[]",
]


def write_dictionary(path: Path) -> None:
    lines = []
    for token in DICTIONARY:
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in token
        )
        lines.append(f'"{escaped}"')
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus_dir", type=Path)
    parser.add_argument("--dict", type=Path, help="also write a libFuzzer dictionary here")
    args = parser.parse_args()
    args.corpus_dir.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        # Every seed must be a zip that Python itself reads back.
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if zf.testzip() is not None:
                raise SystemExit(f"seed {name} fails its own CRC check")
        (args.corpus_dir / name).write_bytes(data)
    if args.dict:
        write_dictionary(args.dict)
    print(f"wrote {len(seeds())} seeds to {args.corpus_dir}")


if __name__ == "__main__":
    main()
