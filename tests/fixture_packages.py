"""Builders of .pt2 packages around the hand-written fixture model libraries
(tests/fixtures/, docs/ABI.md "Conformance").

One function per fixture: ``build_<name>(library_for, out, **overrides) -> out``,
where ``library_for(name)`` returns the path of a fixture library. Each states
the manifest's I/O specs, constants and samples that match its library's
description; keyword overrides build the broken variants tests need (a wrong
manifest shape, another target, compressed weights, another manifest ABI).

numpy only: no torch, so packaging stays cheap. The affine fixture's weights and
inputs are small multiples of 1/4 and 1/2, so every result is exact in float32
and tests (Python and tests/cpp/abi_e2e.cc, which uses the same formulas) compare
outputs exactly.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from packager import Constant, PackageWriter, Sample

LibraryFor = Callable[[str], Path]

CPU_TARGET: dict[str, Any] = {"device": "cpu", "isa": "x86-64", "arch": None, "min_driver": 0}
ABI_1_0: dict[str, int] = {"major": 1, "minor": 0}


def spec(name: str, dtype: str, shape: list[int | str]) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape}


def sample(array: np.ndarray) -> Sample:
    return Sample(str(array.dtype), list(array.shape), np.ascontiguousarray(array))


def write_package(
    out: Path,
    *,
    name: str,
    library: Path | bytes,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    constants: list[Constant] = (),  # type: ignore[assignment]
    samples_inputs: list[np.ndarray] = (),  # type: ignore[assignment]
    samples_outputs: list[np.ndarray] = (),  # type: ignore[assignment]
    target: Mapping[str, Any] | None = None,
    abi: Mapping[str, Any] | None = None,
    compress: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with PackageWriter(out, compress=compress) as w:
        w.add_model(
            name=name,
            library=library,
            inputs=inputs,
            outputs=outputs,
            target=dict(target or CPU_TARGET),
            abi=dict(abi or ABI_1_0),
            constants=list(constants),
            samples_inputs=[sample(a) for a in samples_inputs],
            samples_outputs=[sample(a) for a in samples_outputs],
            producer={"fixture": name},
            metadata=dict(metadata or {"fixture": name}),
        )
    return out


# --------------------------------------------------------------------------- #
# affine: y = x @ W + b, r = relu(y)                                            #
# --------------------------------------------------------------------------- #


def affine_weights() -> tuple[np.ndarray, np.ndarray]:
    """W[k][j] = ((16k + j) % 7 - 3) / 4, b[j] = (j % 5 - 2) / 2 (abi_e2e.cc agrees)."""
    k, j = np.meshgrid(np.arange(8), np.arange(16), indexing="ij")
    w = (((k * 16 + j) % 7 - 3) * 0.25).astype(np.float32)
    b = ((np.arange(16) % 5 - 2) * 0.5).astype(np.float32)
    return w, b


def affine_input(seed: int) -> np.ndarray:
    """x[r][k] = ((31 seed + 8r + k) % 11 - 5) / 2 (abi_e2e.cc's affine_x)."""
    r, k = np.meshgrid(np.arange(4), np.arange(8), indexing="ij")
    return (((seed * 31 + r * 8 + k) % 11 - 5) * 0.5).astype(np.float32)


def affine_reference(
    x: np.ndarray, w: np.ndarray | None = None, b: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if w is None or b is None:
        w, b = affine_weights()
    y = (x.astype(np.float64) @ w.astype(np.float64) + b).astype(np.float32)
    return y, np.maximum(y, 0).astype(np.float32)


def build_affine(
    library_for: LibraryFor,
    out: Path,
    *,
    inputs: list[dict[str, Any]] | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    target: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> Path:
    """|inputs| replaces the manifest's input specs (then no samples are stored)."""
    w, b = weights if weights is not None else affine_weights()
    x = affine_input(0)
    y, r = affine_reference(x, w, b)
    samples = inputs is None
    return write_package(
        out,
        name="affine",
        library=library_for("affine"),
        inputs=inputs or [spec("x", "float32", [4, 8])],
        outputs=[spec("y", "float32", [4, 16]), spec("r", "float32", [4, 16])],
        constants=[Constant("W", "float32", [8, 16], w), Constant("b", "float32", [16], b)],
        samples_inputs=[x] if samples else [],
        samples_outputs=[y, r] if samples else [],
        target=target,
        compress=compress,
    )


# --------------------------------------------------------------------------- #
# dynamic: z[i] = y[i] + 2 x[i mod s0]                                           #
# --------------------------------------------------------------------------- #


def dynamic_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y + 2 * np.concatenate([x, x])).astype(np.float32)


def build_dynamic(library_for: LibraryFor, out: Path) -> Path:
    x = np.arange(3 * 8, dtype=np.float32).reshape(3, 8)
    y = np.linspace(-1, 1, 6 * 8, dtype=np.float32).reshape(6, 8)
    return write_package(
        out,
        name="dynamic",
        library=library_for("dynamic"),
        inputs=[spec("x", "float32", ["s0", 8]), spec("y", "float32", ["2*s0", 8])],
        outputs=[spec("z", "float32", ["2*s0", 8])],
        samples_inputs=[x, y],
        samples_outputs=[dynamic_reference(x, y)],
    )


# --------------------------------------------------------------------------- #
# mutating: x.add_(1); return x * 2                                             #
# --------------------------------------------------------------------------- #


def build_mutating(library_for: LibraryFor, out: Path) -> Path:
    x = np.arange(16, dtype=np.float32)
    return write_package(
        out,
        name="mutating",
        library=library_for("mutating"),
        inputs=[spec("x", "float32", [16])],
        outputs=[spec("out", "float32", [16])],
        samples_inputs=[x],
        samples_outputs=[(x + 1) * 2],
        metadata={"fixture": "mutating", "mutated_inputs": ["x"]},
    )


# --------------------------------------------------------------------------- #
# stateful: counter += scale * x; return counter                                #
# --------------------------------------------------------------------------- #

STATEFUL_INITIAL = np.array([10, 20, 30, 40], dtype=np.float32)


def build_stateful(library_for: LibraryFor, out: Path) -> Path:
    scale = np.ones(4, dtype=np.float32)
    x = np.ones(4, dtype=np.float32)
    return write_package(
        out,
        name="stateful",
        library=library_for("stateful"),
        inputs=[spec("x", "float32", [4])],
        outputs=[spec("out", "float32", [4])],
        constants=[
            Constant("scale", "float32", [4], scale),
            Constant("counter", "float32", [4], STATEFUL_INITIAL, state=True),
        ],
        samples_inputs=[x],
        samples_outputs=[STATEFUL_INITIAL + x],
    )


# --------------------------------------------------------------------------- #
# barrier, parallel                                                             #
# --------------------------------------------------------------------------- #


def build_barrier(library_for: LibraryFor, out: Path) -> Path:
    return write_package(
        out,
        name="barrier",
        library=library_for("barrier"),
        inputs=[spec("x", "float32", [4])],
        outputs=[spec("out", "float32", [4])],
    )


def build_parallel(library_for: LibraryFor, out: Path) -> Path:
    x = np.linspace(-8, 8, 4096, dtype=np.float32)
    return write_package(
        out,
        name="parallel",
        library=library_for("parallel"),
        inputs=[spec("x", "float32", [4096])],
        outputs=[spec("y", "float32", [4096]), spec("z", "float32", [4096])],
        samples_inputs=[x],
        samples_outputs=[3 * x, x + 1],
    )


# --------------------------------------------------------------------------- #
# kernel_error: out = table[idx], a bounds-checked embedding                    #
# --------------------------------------------------------------------------- #

KERNEL_ERROR_TABLE = np.arange(32, dtype=np.float32).reshape(4, 8)


def build_kernel_error(library_for: LibraryFor, out: Path) -> Path:
    idx = np.array([0, 3, 1, 2, 3, 0], dtype=np.int64)
    return write_package(
        out,
        name="kernel_error",
        library=library_for("kernel_error"),
        inputs=[spec("idx", "int64", [6])],
        outputs=[spec("out", "float32", [6, 8])],
        constants=[Constant("table", "float32", [4, 8], KERNEL_ERROR_TABLE)],
        samples_inputs=[idx],
        samples_outputs=[KERNEL_ERROR_TABLE[idx]],
    )


# --------------------------------------------------------------------------- #
# entry_reader: host->get_entry("files/table.bin") at create()                  #
# --------------------------------------------------------------------------- #

ENTRY_READER_TABLE = np.array([0.5, -1.0, 2.0, 100.0], dtype=np.float32)


def build_entry_reader(library_for: LibraryFor, out: Path, *, table: bytes | None = None) -> Path:
    """|table| replaces the entry's bytes (a wrong size makes create() fail)."""
    x = np.arange(4, dtype=np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    with PackageWriter(out) as w:
        w.add_model(
            name="entry_reader",
            library=library_for("entry_reader"),
            inputs=[spec("x", "float32", [4])],
            outputs=[spec("out", "float32", [4])],
            target=CPU_TARGET,
            abi=ABI_1_0,
            samples_inputs=[sample(x)],
            samples_outputs=[sample(x + ENTRY_READER_TABLE)],
            files={"files/table.bin": table if table is not None else ENTRY_READER_TABLE.tobytes()},
        )
    return out


# --------------------------------------------------------------------------- #
# mlp_demo: Linear(8, 16), ReLU, Linear(16, 4) with numpy weights               #
# --------------------------------------------------------------------------- #

MLP_CONSTANT_SHAPES: dict[str, list[int]] = {
    "0.weight": [16, 8],
    "0.bias": [16],
    "2.weight": [4, 16],
    "2.bias": [4],
}


def mlp_reference(x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    h = np.maximum(x @ weights["0.weight"].T + weights["0.bias"], 0)
    return (h @ weights["2.weight"].T + weights["2.bias"]).astype(np.float32)


def write_mlp_demo(
    out: Path,
    library: Path | bytes,
    weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    expected: np.ndarray,
    producer_metadata: Mapping[str, Any] | None = None,
) -> Path:
    """The mlp_demo package; scripts/make_demo_package.py calls this with torch weights."""
    constants = [
        Constant(name, "float32", shape, np.ascontiguousarray(weights[name], dtype=np.float32))
        for name, shape in MLP_CONSTANT_SHAPES.items()
    ]
    return write_package(
        out,
        name="mlp_demo",
        library=library,
        inputs=[spec("x", "float32", ["s0", 8])],
        outputs=[spec("out", "float32", ["s0", 4])],
        constants=constants,
        samples_inputs=[x.astype(np.float32)],
        samples_outputs=[expected.astype(np.float32)],
        metadata=dict(producer_metadata or {"fixture": "mlp_demo"}),
    )


def mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
        for name, shape in MLP_CONSTANT_SHAPES.items()
    }


def build_mlp_demo(library_for: LibraryFor, out: Path) -> Path:
    weights = mlp_weights()
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    return write_mlp_demo(out, library_for("mlp_demo"), weights, x, mlp_reference(x, weights))


# --------------------------------------------------------------------------- #
# Libraries the runtime must refuse: identity models x float32[4] -> out        #
# --------------------------------------------------------------------------- #


def _refused(library_name: str) -> Callable[..., Path]:
    def build(library_for: LibraryFor, out: Path, *, abi: Mapping[str, Any] | None = None) -> Path:
        return write_package(
            out,
            name=library_name,
            library=library_for(library_name),
            inputs=[spec("x", "float32", [4])],
            outputs=[spec("out", "float32", [4])],
            abi=abi,
        )

    build.__name__ = f"build_{library_name}"
    build.__doc__ = f"The {library_name} fixture; |abi| is the manifest's (default 1.0)."
    return build


build_future_abi = _refused("future_abi")
build_future_minor = _refused("future_minor")
build_bad_struct = _refused("bad_struct")
build_bad_tensor_size = _refused("bad_tensor_size")
build_missing_symbol = _refused("missing_symbol")

BUILDERS: dict[str, Callable[..., Path]] = {
    "affine": build_affine,
    "dynamic": build_dynamic,
    "mutating": build_mutating,
    "stateful": build_stateful,
    "barrier": build_barrier,
    "parallel": build_parallel,
    "kernel_error": build_kernel_error,
    "mlp_demo": build_mlp_demo,
    "entry_reader": build_entry_reader,
    "future_abi": build_future_abi,
    "future_minor": build_future_minor,
    "bad_struct": build_bad_struct,
    "bad_tensor_size": build_bad_tensor_size,
    "missing_symbol": build_missing_symbol,
}


# --------------------------------------------------------------------------- #
# Corrupting a package                                                          #
# --------------------------------------------------------------------------- #


def corrupt_entry(package: Path, entry_suffix: str, out: Path) -> str:
    """Copies |package| to |out| with one byte flipped in the stored data of the
    entry whose name ends with |entry_suffix|; returns that entry's name."""
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as z:
        matches = [i for i in z.infolist() if i.filename.endswith(entry_suffix)]
        if len(matches) != 1:
            raise ValueError(f"{len(matches)} entries end with {entry_suffix!r} in {package}")
        info = matches[0]
    offset = info.header_offset
    name_len = int.from_bytes(data[offset + 26 : offset + 28], "little")
    extra_len = int.from_bytes(data[offset + 28 : offset + 30], "little")
    start = offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    return info.filename
