"""Offline Triton compilation: TritonKernels to cubin + PTX for a GPU arch,
with no GPU (triton.compile with GPUTarget("cuda", cc, 32)).

[Note: Triton variants] Each kernel is compiled twice: "aligned", where every
pointer parameter is declared 16-byte divisible (vectorised loads and
stores), and "generic", with no such promise. The wrapper picks the aligned
variant at run time when every pointer it passes is 16-byte aligned (always,
for buffers the runtime allocates; a view at an odd offset may not be).

Compilation runs in worker processes (triton_worker.py, run as a script): the
@triton.jit decorator reads its source back from a file, must not see
TRITON_INTERPRET (the interpreter tests set it), and kernels compile in
parallel across cores. Each kernel's launch ABI comes from its compile
metadata, never from assumptions: the number of hidden trailing parameters
(counted in the PTX entry), dynamic shared memory, warps, CTAs per cluster
and the scratch Triton asks the launcher for.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..codegen.triton.launch import TritonKernel
from .triton_worker import VARIANTS, TritonBuildError


@dataclass
class CompiledKernel:
    """One variant of one kernel, ready to package and launch."""

    name: str  # the TritonKernel's name
    variant: str  # "aligned" | "generic"
    symbol: str  # the function name in the cubin
    cubin: bytes
    ptx: str
    num_warps: int
    num_ctas: int
    shared: int  # dynamic shared memory, bytes
    params: int  # parameters of the entry in the PTX, hidden ones included
    global_scratch_size: int  # bytes per program (0: none)
    global_scratch_align: int
    profile_scratch_size: int
    profile_scratch_align: int
    triton_version: str

    def hidden_params(self, explicit: int) -> int:
        """How many trailing parameters Triton added after the |explicit|
        ones (scratch pointers): the launcher passes them."""
        return self.params - explicit

    def metadata(self) -> dict[str, object]:
        out = asdict(self)
        del out["cubin"], out["ptx"]
        return out


# PTX ISA version -> the first CUDA driver that loads it (cuDriverGetVersion).
_PTX_DRIVERS = {
    (8, 0): 12000, (8, 1): 12010, (8, 2): 12020, (8, 3): 12030, (8, 4): 12040,
    (8, 5): 12050, (8, 6): 12070, (8, 7): 12080, (8, 8): 12090, (9, 0): 13000,
}  # fmt: skip


def min_driver_version(kernels: Sequence[CompiledKernel]) -> int:
    """The oldest CUDA driver that can load every kernel's PTX (and so its
    cubin, which the same toolchain produced): from the PTX ".version"."""
    need = 0
    for k in kernels:
        m = re.search(r"^\.version (\d+)\.(\d+)", k.ptx, re.M)
        if not m:
            raise TritonBuildError(f"{k.name}: no .version in its PTX")
        version = (int(m.group(1)), int(m.group(2)))
        known = [v for v in _PTX_DRIVERS if v <= version]
        if version > max(_PTX_DRIVERS) or not known:
            raise TritonBuildError(
                f"{k.name}: PTX ISA {version[0]}.{version[1]} is unknown to aotc"
            )
        need = max(need, _PTX_DRIVERS[max(known)])
    return need


def compile_kernels(
    kernels: Sequence[TritonKernel],
    arch: str,
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[str, str], CompiledKernel]:
    """Compiles every kernel in both variants for |arch|, in up to |jobs|
    worker processes (0: one per CPU). Returns {(name, variant): kernel}.
    |progress(done, total)| is called as workers finish."""
    if not kernels:
        return {}
    jobs = jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(kernels)))
    with tempfile.TemporaryDirectory(prefix="aotc-triton-") as tmp:
        work = Path(tmp)
        specs = []
        for k in kernels:
            (work / f"{k.name}.py").write_text(k.source)
            specs.append(
                {
                    "name": k.name,
                    "signature": k.signature(),
                    "constexprs": k.constexprs,
                    "pointers": [i for i, a in enumerate(k.args) if a.kind == "pointer"],
                    "num_warps": k.num_warps,
                    "num_stages": k.num_stages,
                }
            )
        batches = [specs[i::jobs] for i in range(jobs)]
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        procs = []
        for i, batch in enumerate(batches):
            job = work / f"job{i}.json"
            job.write_text(json.dumps({"arch": arch, "dir": str(work), "kernels": batch}))
            cmd = [sys.executable, str(Path(__file__).with_name("triton_worker.py")), str(job)]
            procs.append(
                subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        failures = []
        for done, proc in enumerate(procs, 1):
            log, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(log.strip())
            if progress is not None:
                progress(done, len(procs))
        if failures:
            raise TritonBuildError("Triton failed to compile:\n" + "\n".join(failures))
        out = {}
        for k in kernels:
            for variant in VARIANTS:
                stem = f"{k.name}.{variant}"
                meta = json.loads((work / f"{stem}.json").read_text())
                out[(k.name, variant)] = CompiledKernel(
                    cubin=(work / f"{stem}.cubin").read_bytes(),
                    ptx=(work / f"{stem}.ptx").read_text(),
                    **meta,
                )
        return out


def compile_kernels_cached(
    kernels: Sequence[TritonKernel],
    arch: str,
    salt: str,
    cache: object | None,
    jobs: int = 0,
) -> tuple[dict[tuple[str, str], CompiledKernel], bool]:
    """compile_kernels through the compile cache (a CompileCache or None),
    keyed by every kernel's source, signature, constexprs and launch options,
    |arch| and |salt| (the aotc/torch/triton versions and export options).
    Returns (kernels, whether the cache had them)."""
    from .cache import cache_key

    parts: list[str | bytes] = ["triton", salt, arch]
    for k in kernels:
        parts += [k.name, k.source, json.dumps([k.signature(), k.constexprs])]
        parts.append(f"{k.num_warps}/{k.num_stages}")
    key = cache_key(*parts)
    if cache is not None:
        blob = cache.get("triton", key)
        if blob is not None:
            return _decode(blob), True
    out = compile_kernels(kernels, arch, jobs)
    if cache is not None:
        cache.put("triton", key, _encode(out))
    return out, False


def _encode(kernels: Mapping[tuple[str, str], CompiledKernel]) -> bytes:
    records = []
    for c in kernels.values():
        record = c.metadata()
        record["cubin"] = base64.b64encode(c.cubin).decode()
        record["ptx"] = c.ptx
        records.append(record)
    return json.dumps(records).encode()


def _decode(blob: bytes) -> dict[tuple[str, str], CompiledKernel]:
    out = {}
    for record in json.loads(blob):
        record["cubin"] = base64.b64decode(record["cubin"])
        c = CompiledKernel(**record)
        out[(c.name, c.variant)] = c
    return out
