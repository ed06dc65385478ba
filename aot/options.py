"""ExportOptions: everything that changes what `aotc export` produces. Frozen,
checked on construction; its fields feed the compile cache key. Environment
variables are read only in aot/cli.py, never here."""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_ISAS = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4")
SUPPORTED_DTYPES = (None, "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ExportOptions:
    device: str = "cpu"
    # CPU ISA the package is built for (-march=); checked with cpuid at load.
    # Never "native": a package built on this AVX-512 box must run elsewhere.
    isa: str = "x86-64-v3"
    # Cast the model and its floating-point example inputs to this dtype
    # before export (None: as the model is).
    dtype: str | None = None
    compress: bool = False  # zstd-compress weights in the package
    model_fn: str = "get_model"
    inputs_fn: str = "get_example_inputs"
    dynamic_shapes_fn: str = "get_dynamic_shapes"
    build_jobs: int = 0  # 0: as many as the machine has CPUs
    provenance: bool = True
    # Mixed into every compile cache key: a user's way to keep builds apart
    # (e.g. per deployment) or to force fresh ones.
    cache_key_tag: str = ""

    def __post_init__(self) -> None:
        if self.device != "cpu":
            raise ValueError(f"device {self.device!r} is not supported yet (cpu only)")
        if self.isa not in SUPPORTED_ISAS:
            raise ValueError(f"isa {self.isa!r} is not one of {', '.join(SUPPORTED_ISAS)}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of float32, bfloat16, float16")
        if self.build_jobs < 0:
            raise ValueError("build_jobs must be >= 0")
