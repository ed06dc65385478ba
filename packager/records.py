"""Constant and Sample, the tensors a caller hands to PackageWriter, and their byte views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dtypes import DType, lookup, numel


@dataclass(frozen=True)
class Constant:
    """A weight or buffer of the model, stored in data/weights/<model>/.

    |data| is bytes, bytearray, a C-contiguous memoryview, or a numpy array (any
    order; bfloat16 as uint16 bits). |state| marks mutable buffers (e.g. a KV cache).
    """

    name: str
    dtype: str
    shape: tuple[int, ...] | list[int]
    data: Any
    state: bool = False


@dataclass(frozen=True)
class Sample:
    """One example input or eager output, stored as NPY in data/sample_inputs/<model>/."""

    dtype: str
    shape: tuple[int, ...] | list[int]
    data: Any


def check_shape(shape: object, field: str) -> list[int]:
    """A concrete shape as a list of non-negative ints; ValueError naming |field|."""
    if not isinstance(shape, (list, tuple)):
        raise ValueError(f"{field}: shape must be a list of ints, got {shape!r}")
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"{field}: shape {list(shape)!r} must hold non-negative ints")
        out.append(int(d))
    return out


def _numpy_view(array: Any, dtype: DType, field: str) -> memoryview:
    import numpy as np  # the caller already has numpy: its data is a numpy array

    if array.dtype.name not in dtype.numpy_names:
        raise ValueError(
            f"{field}: numpy array of dtype {array.dtype.name} given for dtype {dtype.name}"
        )
    if array.dtype.byteorder == ">":
        raise ValueError(f"{field}: big-endian numpy array; the format is little-endian")
    flat = np.ascontiguousarray(array).reshape(-1)
    return memoryview(flat.view(np.uint8))


def as_bytes_view(data: object, dtype: DType, field: str) -> memoryview:
    """|data| as a flat byte memoryview, without copying when it is contiguous."""
    if hasattr(data, "__array_interface__") and hasattr(data, "dtype"):
        return _numpy_view(data, dtype, field)
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        if not view.c_contiguous:
            raise ValueError(f"{field}: memoryview data must be C-contiguous")
        return view.cast("B") if view.format != "B" or view.ndim != 1 else view
    raise ValueError(
        f"{field}: data must be bytes, bytearray, memoryview or a numpy array, "
        f"got {type(data).__name__}"
    )


def tensor_bytes(
    dtype_name: object, shape: object, data: object, field: str
) -> tuple[DType, list[int], memoryview]:
    """Checks a (dtype, shape, data) triple: known dtype, and data of exactly the size
    the shape needs. Returns the dtype, the shape as a list, and the bytes."""
    dtype = lookup(dtype_name, f"{field}.dtype")
    dims = check_shape(shape, f"{field}.shape")
    view = as_bytes_view(data, dtype, f"{field}.data")
    want = numel(dims) * dtype.itemsize
    if view.nbytes != want:
        raise ValueError(
            f"{field}: shape {dims} {dtype.name} needs {want} bytes, data has {view.nbytes}"
        )
    return dtype, dims, view
