"""The Triton compile worker (triton_build.py starts it as a script, so it
imports nothing of aotc's): compiles the kernels a job file lists, in both
variants ([Note: Triton variants]), and writes each one's cubin, PTX and
launch metadata next to its source.

    python3 triton_worker.py JOB.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

VARIANTS = ("aligned", "generic")


class TritonBuildError(Exception):
    """Triton failed to compile a kernel; the message names it and keeps
    Triton's own error."""


def arch_number(arch: str) -> int:
    """90 for "sm_90"."""
    m = re.fullmatch(r"sm_(\d+)", arch)
    if not m:
        raise ValueError(f"GPU arch {arch!r} is not of the form sm_NN")
    return int(m.group(1))


def _entry_params(ptx: str, symbol: str) -> int:
    m = re.search(r"\.entry\s+" + re.escape(symbol) + r"\s*\((.*?)\)", ptx, re.S)
    if not m:
        raise TritonBuildError(f"{symbol}: no .entry in the PTX")
    return len(re.findall(r"\.param\s", m.group(1)))


def _compile_one(spec: dict[str, object], arch: str, work: Path) -> None:
    import importlib.util

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name = spec["name"]
    module_spec = importlib.util.spec_from_file_location(f"aotc_{name}", work / f"{name}.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    fn = getattr(module, name)
    target = GPUTarget("cuda", arch_number(arch), 32)
    for variant in VARIANTS:
        attrs = {}
        if variant == "aligned":
            attrs = {(i,): [["tt.divisibility", 16]] for i in spec["pointers"]}
        source = ASTSource(
            fn=fn, signature=spec["signature"], constexprs=spec["constexprs"], attrs=attrs
        )
        options = {"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]}
        try:
            compiled = triton.compile(source, target=target, options=options)
        except Exception as e:  # Triton raises CompilationError, RuntimeError, ...
            raise TritonBuildError(f"{name} ({variant}): {type(e).__name__}: {e}") from e
        md = compiled.metadata
        ptx = compiled.asm["ptx"]
        meta = {
            "name": name,
            "variant": variant,
            "symbol": md.name,
            "num_warps": md.num_warps,
            "num_ctas": md.num_ctas,
            "shared": md.shared,
            "params": _entry_params(ptx, md.name),
            "global_scratch_size": getattr(md, "global_scratch_size", 0),
            "global_scratch_align": getattr(md, "global_scratch_align", 1),
            "profile_scratch_size": getattr(md, "profile_scratch_size", 0),
            "profile_scratch_align": getattr(md, "profile_scratch_align", 1),
            "triton_version": triton.__version__,
        }
        stem = f"{name}.{variant}"
        (work / f"{stem}.cubin").write_bytes(compiled.asm["cubin"])
        (work / f"{stem}.ptx").write_text(ptx)
        (work / f"{stem}.json").write_text(json.dumps(meta))


def _worker(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    for spec in job["kernels"]:
        try:
            _compile_one(spec, job["arch"], Path(job["dir"]))
        except TritonBuildError as e:
            print(e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
