"""Element types the format knows: name, size in bytes, NPY descr, accepted numpy dtypes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    name: str  # the manifest's spelling
    itemsize: int
    npy_descr: str  # how a sample of this dtype is stored in NPY
    numpy_names: tuple[str, ...]  # numpy dtype names accepted for array data


# bfloat16 has no numpy dtype: its raw bits travel as uint16 ('<u2' in NPY), and the
# manifest's dtype field says how to read them.
DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float32", 4, "<f4", ("float32",)),
        DType("float16", 2, "<f2", ("float16",)),
        DType("bfloat16", 2, "<u2", ("uint16", "int16", "bfloat16")),
        DType("float64", 8, "<f8", ("float64",)),
        DType("int8", 1, "|i1", ("int8",)),
        DType("uint8", 1, "|u1", ("uint8",)),
        DType("int16", 2, "<i2", ("int16",)),
        DType("int32", 4, "<i4", ("int32",)),
        DType("int64", 8, "<i8", ("int64",)),
        DType("bool", 1, "|b1", ("bool",)),
    )
}


def lookup(name: object, field: str) -> DType:
    """The DType called |name|; ValueError naming |field| when there is none."""
    if not isinstance(name, str) or name not in DTYPES:
        known = " ".join(DTYPES)
        raise ValueError(f"{field}: unknown dtype {name!r} (known: {known})")
    return DTYPES[name]


def numel(shape: list[int] | tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
