"""ExportOptions: everything that changes what `aotc export` produces. Frozen,
checked on construction; its fields feed the compile cache key. Environment
variables are read only in aot/cli.py, never here."""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_ISAS = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4")
SUPPORTED_DTYPES = (None, "float32", "bfloat16", "float16")
SUPPORTED_DEVICES = ("cpu", "cuda")
# GPU architectures Triton compiles for (compute capability 8.0 and newer:
# bf16 tensor cores, cp.async). "sm_90a" and the like are refused: Triton
# picks arch-specific features itself.
SUPPORTED_ARCHS = ("sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_100", "sm_103", "sm_120")


@dataclass(frozen=True)
class ExportOptions:
    device: str = "cpu"
    # CPU ISA the package is built for (-march=); checked with cpuid at load.
    # Never "native": a package built on this AVX-512 box must run elsewhere.
    isa: str = "x86-64-v3"
    # GPU architecture of a cuda package ("sm_90"); None on cpu. aot/cli.py
    # reads it off the local GPU when --arch is not given.
    arch: str | None = None
    # Cast the model and its floating-point example inputs to this dtype
    # before export (None: as the model is).
    dtype: str | None = None
    compress: bool = False  # zstd-compress weights in the package
    model_fn: str = "get_model"
    inputs_fn: str = "get_example_inputs"
    dynamic_shapes_fn: str = "get_dynamic_shapes"
    # --dynamic specs ([Note: dynamic specs] in aot/frontend/dynamic_spec.py);
    # when given, they replace the model file's get_dynamic_shapes().
    dynamic: tuple[str, ...] = ()
    build_jobs: int = 0  # 0: as many as the machine has CPUs
    provenance: bool = True
    # Mixed into every compile cache key: a user's way to keep builds apart
    # (e.g. per deployment) or to force fresh ones.
    cache_key_tag: str = ""

    def __post_init__(self) -> None:
        if self.device not in SUPPORTED_DEVICES:
            raise ValueError(f"device {self.device!r} is not one of {', '.join(SUPPORTED_DEVICES)}")
        if self.device == "cuda" and self.arch is None:
            raise ValueError("a cuda package needs its GPU arch (e.g. arch='sm_90')")
        if self.device == "cpu" and self.arch is not None:
            raise ValueError(f"arch {self.arch!r} is for cuda packages; this one is for cpu")
        if self.arch is not None and self.arch not in SUPPORTED_ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(SUPPORTED_ARCHS)}")
        if self.isa not in SUPPORTED_ISAS:
            raise ValueError(f"isa {self.isa!r} is not one of {', '.join(SUPPORTED_ISAS)}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of float32, bfloat16, float16")
        if self.build_jobs < 0:
            raise ValueError("build_jobs must be >= 0")
