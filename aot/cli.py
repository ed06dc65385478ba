"""The `aotc` command line.

    aotc export MODEL.py -o OUT.pt2  compile a model file into a package
    aotc inspect PKG [--json]        what a package holds, with provenance, from the zip alone
      [--kernel NAME | --html OUT]   one kernel with its code; the HTML provenance report
    aotc run PKG [...]               run sample inputs through the runtime, compare to eager
    aotc check MODEL.py [...]        export, build, run fresh random inputs, compare to eager
    aotc verify PKG                  check a package's structure and checksums
    aotc cache info|clear            the compile cache: size and entries, or empty it
    aotc --cmake-prefix-path         where find_package(aotc) finds the installed runtime
    aotc --version

Exit status: 0 success, 1 a mismatch (run, check) or problems found (verify), 2 an error.
Expected errors print "aotc: error: ..." on stderr, without a traceback.

This is the only module of aot/ that reads environment variables (project rule),
with one exception, the compile cache (aot/build/cache.py: $AOTC_CACHE_DIR,
$AOTC_CACHE_MAX_SIZE, $AOTC_CACHE=0), which the test harness uses too, and the
variables its compiler launcher gets from the build. AOTC_RUNTIME_LIBRARY names
a libaotc.so to use instead of the installed one.

Imports are lazy: `aotc inspect` and `aotc verify` never import torch.
`aotc export` reports the compiler's expected errors (a model it cannot capture,
an unsupported operator, a failed build) as "aotc: error: ..." (exit 2); -v adds
the traceback and, for a failed build, the full build log.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aot import __version__

PROG = "aotc"
RUNTIME_LIBRARY_ENV = "AOTC_RUNTIME_LIBRARY"

# Default (atol, rtol) per output dtype for `aotc run`, the same as the C++
# aotc-run's: |actual - expected| <= atol + rtol * |expected|, NaN matches NaN.
# Compiled kernels sum in another order than eager, so float tolerances are
# above torch.testing's. Integers and bool compare exactly. --atol/--rtol
# override them for every output.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-4),
    "float64": (1e-6, 1e-6),
    "float16": (1e-2, 1e-2),
    "bfloat16": (1e-2, 1.6e-2),
}


class CliError(Exception):
    """An expected error: printed as "aotc: error: <message>", exit 2."""


# --------------------------------------------------------------------------- #
# export                                                                       #
# --------------------------------------------------------------------------- #


def target_options(device: str | None, arch: str | None) -> dict[str, Any]:
    """ExportOptions' device and arch from --device and --arch: a cuda package
    without --arch takes the local GPU's arch, and there must be one."""
    from aot.options import SUPPORTED_ARCHS

    kind = (device or "cpu").split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise CliError(f"--device {device}: expected cpu or cuda")
    if kind == "cpu":
        if arch is not None:
            raise CliError("--arch is for --device cuda")
        return {"device": "cpu", "arch": None}
    if arch is None:
        arch = local_gpu_arch(device)
        if arch is None:
            raise CliError(
                "--device cuda needs --arch (e.g. --arch sm_90): there is no GPU here to read "
                "it from"
            )
    if arch not in SUPPORTED_ARCHS:
        raise CliError(f"--arch {arch}: expected one of {', '.join(SUPPORTED_ARCHS)}")
    return {"device": "cuda", "arch": arch}


def local_gpu_arch(device: str | None) -> str | None:
    """ "sm_90" for the GPU |device| names ("cuda", "cuda:1") when torch sees it."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = int(device.split(":")[1]) if device and ":" in device else 0
    major, minor = torch.cuda.get_device_capability(index)
    return f"sm_{major}{minor}"


def export_errors() -> tuple[type[Exception], ...]:
    """What a failed export raises for the user (printed as one line, no
    traceback): the model, an op, lowering, the C++ build or the Triton backend."""
    from aot.build import BuildError
    from aot.build.triton_build import TritonBuildError
    from aot.codegen.triton.launch import TritonCodegenError
    from aot.frontend import FrontendError
    from aot.lowering import UnsupportedOpError
    from aot.lowering.graph_lowering import LoweringError

    return (
        FrontendError,
        UnsupportedOpError,
        LoweringError,
        BuildError,
        TritonCodegenError,
        TritonBuildError,
    )


def cmd_export(args: argparse.Namespace) -> int:
    from aot.options import ExportOptions

    options = ExportOptions(
        **target_options(args.device, args.arch),
        dynamic=tuple(args.dynamic or ()),
        isa=args.isa,
        dtype=args.dtype,
        compress=args.compress,
        provenance=args.provenance,
        cache_key_tag=args.cache_key_tag,
    )
    from aot.build import BuildError
    from aot.export import export_model

    try:
        output = export_model(
            Path(args.model),
            Path(args.output),
            options,
            quiet=args.quiet,
            verbose=args.verbose,
            cache=None if args.no_cache else "env",
            stats_json=Path(args.stats_json) if args.stats_json else None,
        )
    except export_errors() as e:
        if args.verbose:
            import traceback

            traceback.print_exc()
            if isinstance(e, BuildError) and e.log:
                print(e.log, file=sys.stderr)
        raise CliError(str(e)) from e
    if not args.quiet:
        print(f"wrote {output}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from aot.build.cache import CompileCache

    try:
        cache = CompileCache.from_env()
    except ValueError as e:  # a bad $AOTC_CACHE_MAX_SIZE
        raise CliError(str(e)) from e
    if cache is None:
        print("compile cache disabled ($AOTC_CACHE=0)")
        return 0
    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} entries from {cache.root}")
        return 0
    print(cache.info().format())
    return 0


# --------------------------------------------------------------------------- #
# inspect / verify (no torch)                                                  #
# --------------------------------------------------------------------------- #


def cmd_inspect(args: argparse.Namespace) -> int:
    import packager

    if args.html:
        if args.json or args.kernel:
            raise CliError("--html writes the whole report; it takes no --json or --kernel")
        return _write_html_report(args.package, args.html)
    if args.kernel:
        # UnknownKernelError is a ValueError: "aotc: error: ... known handles: ...", exit 2.
        info = packager.inspect_kernel(args.package, args.kernel)
        text = None if args.json else packager.format_kernel(info)
    else:
        info = packager.inspect_package(args.package)
        text = None if args.json else packager.format_inspection(info)
    if text is None:
        text = json.dumps(info, indent=2, sort_keys=False, default=str) + "\n"
    sys.stdout.write(text)
    return 0


def _write_html_report(package: str, out: str) -> int:
    try:  # imported here: `aotc inspect` loads nothing it does not use
        from packager.provenance_report import write_report
    except ModuleNotFoundError as e:
        if e.name != "packager.provenance_report":
            raise
        raise CliError("--html: this aotc has no report writer (packager.provenance_report)") from e
    write_report(package, out)
    print(f"wrote {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import packager

    problems = packager.verify_package(args.package)
    for p in problems:
        print(f"{args.package}: {p}")
    if problems:
        print(f"{args.package}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.package}: OK")
    return 0


# --------------------------------------------------------------------------- #
# run                                                                          #
# --------------------------------------------------------------------------- #


def _torch_from_npy(arr: Any, dtype_name: str | None) -> Any:
    """A torch tensor of .npy array |arr| for an input of dtype |dtype_name|.

    As aotc-run: bfloat16 inputs take raw bits ('<u2') or float32 ('<f4').
    Other arrays are passed as they are (the runtime reports a wrong dtype).
    """
    import numpy as np
    import torch

    arr = np.ascontiguousarray(arr)
    if dtype_name == "bfloat16":
        if arr.dtype in (np.uint16, np.int16):
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
        if arr.dtype == np.float32:
            return torch.from_numpy(arr).to(torch.bfloat16)
    return torch.from_numpy(arr)


def _npy_from_torch(t: Any) -> Any:
    """A numpy array of |t| (bfloat16 as its raw bits, '<u2', as aotc-run writes)."""
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view("uint16")
    return t.numpy()


def _tensor_from_bytes(dtype: str, shape: Sequence[int], raw: bytes) -> Any:
    import torch

    tdtype = getattr(torch, dtype)
    if not raw:
        return torch.empty(tuple(shape), dtype=tdtype)
    return torch.frombuffer(bytearray(raw), dtype=tdtype).reshape(tuple(shape))


def _sample_tensors(package_path: str, model: str) -> tuple[list[Any], list[Any]]:
    """The package's stored sample inputs and eager outputs for |model|, as torch tensors."""
    import packager

    samples = packager.read_package(package_path).samples(model)
    if not samples.inputs:
        raise CliError(f"{package_path}: model '{model}' has no sample inputs; pass --input")
    inputs = [_tensor_from_bytes(*s) for s in samples.inputs]
    outputs = [_tensor_from_bytes(*s) for s in samples.outputs]
    return inputs, outputs


@dataclass
class Comparison:
    passed: bool = True
    problem: str = ""  # dtype or shape mismatch
    max_abs: float = 0.0
    max_rel: float = 0.0
    mismatched: int = 0


def compare(actual: Any, expected: Any, atol: float, rtol: float) -> Comparison:
    """aotc-run's comparison: elementwise in float64, NaN matches NaN, relative
    error infinite where |expected| is 0 and the values differ."""
    import torch

    a, e = actual.detach().cpu(), expected.detach().cpu()
    if a.dtype != e.dtype or a.shape != e.shape:
        return Comparison(False, f"expected {_describe_tensor(e)}, got {_describe_tensor(a)}")
    a, e = a.to(torch.float64).flatten(), e.to(torch.float64).flatten()
    differ = ~((a == e) | (a.isnan() & e.isnan()))
    if not bool(differ.any()):
        return Comparison()
    a, e = a[differ], e[differ]
    diff = (a - e).abs()
    rel = torch.where(e != 0, diff / e.abs(), torch.full_like(diff, float("inf")))
    bad = ~(diff <= atol + rtol * e.abs())
    mismatched = int(bad.sum())
    return Comparison(
        passed=mismatched == 0,
        max_abs=float(diff.nan_to_num(nan=float("inf")).max()),
        max_rel=float(rel.nan_to_num(nan=float("inf")).max()),
        mismatched=mismatched,
    )


def _describe_tensor(t: Any) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}[{', '.join(str(d) for d in t.shape)}]"


def cmd_run(args: argparse.Namespace) -> int:
    from aot import runtime

    if args.runtime_library:
        runtime.set_library_path(args.runtime_library)
    with runtime.load(args.package, model_name=args.model, device=args.device) as model:
        specs = model.input_specs
        expected: list[Any] | None = None
        if args.input:
            import numpy as np

            inputs = [
                _torch_from_npy(
                    np.load(p, allow_pickle=False), specs[i].dtype if i < len(specs) else None
                )
                for i, p in enumerate(args.input)
            ]
        else:
            inputs, expected = _sample_tensors(args.package, model.name)
        if not args.quiet:
            print(f"model {model.name} on {model.device}")

        outputs = model.run(inputs, num_threads=args.threads)
        passed = _report(model, outputs, expected, args)
        if args.output_dir:
            _save_outputs(outputs, Path(args.output_dir), args.quiet)
        if args.n > 0:
            _time_runs(model, inputs, outputs, args)
    if expected is not None and not args.quiet:
        print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def _report(model: Any, outputs: Sequence[Any], expected: list[Any] | None, args: Any) -> bool:
    if expected is not None and len(expected) != len(outputs):
        print(f"{len(outputs)} outputs, but the package stores {len(expected)}  FAIL")
        return False
    passed = True
    for i, out in enumerate(outputs):
        specs = model.output_specs
        name = specs[i].name if i < len(specs) else "?"
        label = f'output {i} "{name}": {_describe_tensor(out)}'
        if expected is None:
            if not args.quiet:
                print(label)
            continue
        atol, rtol = TOLERANCES.get(str(expected[i].dtype).removeprefix("torch."), (0.0, 0.0))
        atol = args.atol if args.atol is not None else atol
        rtol = args.rtol if args.rtol is not None else rtol
        result = compare(out, expected[i], atol, rtol)
        passed = passed and result.passed
        if args.quiet and result.passed:
            continue
        if result.problem:
            print(f"{label}  FAIL ({result.problem})")
            continue
        line = (
            f"{label}  max_abs_err {result.max_abs:.3g}  max_rel_err {result.max_rel:.3g}  "
            f"(atol {atol:g}, rtol {rtol:g})  {'PASS' if result.passed else 'FAIL'}"
        )
        if not result.passed:
            line += f" ({result.mismatched} of {out.numel()} elements out of tolerance)"
        print(line)
    return passed


def _save_outputs(outputs: Sequence[Any], out_dir: Path, quiet: bool) -> None:
    import numpy as np

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"{out_dir}: cannot create directory: {e.strerror}") from e
    for i, out in enumerate(outputs):
        path = out_dir / f"output_{i}.npy"
        np.save(path, _npy_from_torch(out), allow_pickle=False)
        if not quiet:
            print(f"wrote {path}")


def _time_runs(model: Any, inputs: list[Any], outputs: Sequence[Any], args: Any) -> None:
    """Warm-up then timed runs into the outputs already allocated (as aotc-run)."""
    cuda = model.device.startswith("cuda")
    if cuda:
        import torch
    times = []
    for r in range(args.warmup + args.n):
        start = time.perf_counter()
        model.run(inputs, outputs=outputs, num_threads=args.threads)
        if cuda:
            torch.cuda.synchronize(model.device)
        if r >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    if not args.quiet:
        print(
            f"latency: median {statistics.median(times):.4g} ms, min {min(times):.4g} ms "
            f"over {args.n} runs ({args.warmup} warmup)"
        )


# --------------------------------------------------------------------------- #
# check                                                                        #
# --------------------------------------------------------------------------- #


def random_like(value: Any, generator: Any) -> Any:
    """A fresh random input shaped like example |value| (a pytree): floats
    normal, integers uniform in the example's [min, max], bools random;
    non-tensor leaves unchanged (torch.export specialised them)."""
    import torch
    import torch.utils._pytree as pytree

    def fresh(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if t.dtype == torch.bool:
            return torch.randint(0, 2, t.shape, generator=generator).to(torch.bool)
        if t.dtype.is_floating_point:
            return torch.randn(t.shape, generator=generator).to(t.dtype)
        if t.dtype.is_complex:
            return torch.randn(t.shape, generator=generator, dtype=t.dtype)
        if t.numel() == 0:
            return t.clone()
        low, high = int(t.min()), int(t.max())
        return torch.randint(low, high + 1, t.shape, generator=generator).to(t.dtype)

    return pytree.tree_map(fresh, value)


def cmd_check(args: argparse.Namespace) -> int:
    target = target_options(args.device, args.arch)
    if args.runs < 1:
        raise CliError("--runs must be at least 1")
    import copy
    import shutil
    import tempfile

    import torch
    import torch.utils._pytree as pytree

    from aot import runtime
    from aot.build import Progress
    from aot.export import compile_exported
    from aot.frontend import run_frontend
    from aot.options import ExportOptions
    from aot.testing import AOTCRunnerUtil

    if args.runtime_library:
        runtime.set_library_path(args.runtime_library)
    options = ExportOptions(
        **target, isa=args.isa, dtype=args.dtype, dynamic=tuple(args.dynamic or ())
    )
    run_device = args.device or "cpu"
    work = Path(tempfile.mkdtemp(prefix="aotc-check-"))
    try:
        try:
            exported = run_frontend(Path(args.model), options)
            # Eager reference: a copy taken before compiling, so nothing the
            # compiler does to the module can change it.
            module, examples = copy.deepcopy(exported.module), exported.example_inputs
            package = compile_exported(exported, work / "model.pt2", Progress(quiet=True))
        except export_errors() as e:
            raise CliError(str(e)) from e
        compiled = AOTCRunnerUtil.load(str(package), device=run_device)
        print(
            f"checking {args.model} on {run_device} (dtype {args.dtype or 'as is'}, "
            f"{options.arch or 'isa ' + args.isa}, {args.runs} run(s) of random inputs, "
            f"seed {args.seed})"
        )
        generator = torch.Generator().manual_seed(args.seed)
        passed = True
        for run in range(args.runs):
            inputs = random_like(examples, generator)
            with torch.no_grad():
                expected = copy.deepcopy(module)(*copy.deepcopy(inputs))
            if run_device != "cpu":  # eager ran on CPU; compare there
                on_device = pytree.tree_map_only(torch.Tensor, lambda t: t.to(run_device), inputs)
                actual = pytree.tree_map_only(torch.Tensor, torch.Tensor.cpu, compiled(*on_device))
            else:
                actual = compiled(*inputs)
            print(f"run {run + 1}/{args.runs}:")
            passed = _check_table(actual, expected, args, pytree) and passed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def _check_table(actual: Any, expected: Any, args: Any, pytree: Any) -> bool:
    """Prints one row per output leaf; True when all are within tolerance."""
    import torch

    actual_leaves, actual_spec = pytree.tree_flatten(actual)
    expected_leaves, expected_spec = pytree.tree_flatten_with_path(expected)
    if actual_spec != expected_spec:
        print(f"  FAIL: output structure {actual_spec} differs from eager's {expected_spec}")
        return False
    rows = [("output", "dtype", "shape", "max_abs_err", "max_rel_err", "atol", "rtol", "result")]
    passed = True
    for a, (path, e) in zip(actual_leaves, expected_leaves, strict=True):
        where = "output" + pytree.keystr(path)
        if not isinstance(e, torch.Tensor):
            ok = a == e
            rows.append(
                (where, type(e).__name__, "-", "-", "-", "-", "-", "PASS" if ok else "FAIL")
            )
            passed = passed and ok
            continue
        dtype = str(e.dtype).removeprefix("torch.")
        atol, rtol = TOLERANCES.get(dtype, (0.0, 0.0))
        if e.dtype.is_floating_point:
            atol = args.atol if args.atol is not None else atol
            rtol = args.rtol if args.rtol is not None else rtol
        result = compare(a, e, atol, rtol)
        passed = passed and result.passed
        verdict = "PASS" if result.passed else "FAIL"
        if result.problem:
            verdict += f" ({result.problem})"
        elif not result.passed:
            verdict += f" ({result.mismatched}/{e.numel()})"
        shape = "[" + ", ".join(str(d) for d in e.shape) + "]"
        rows.append(
            (where, dtype, shape, f"{result.max_abs:.3g}", f"{result.max_rel:.3g}",
             f"{atol:g}", f"{rtol:g}", verdict)
        )  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return passed


# --------------------------------------------------------------------------- #
# main                                                                         #
# --------------------------------------------------------------------------- #


def cmake_prefix_path() -> Path:
    """aot/_native: the prefix holding lib/cmake/aotc of the installed runtime."""
    return Path(__file__).resolve().parent / "_native"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="aotc: ahead-of-time compiler for PyTorch models."
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument(
        "--cmake-prefix-path",
        action="store_true",
        help="print the prefix for find_package(aotc) (CMAKE_PREFIX_PATH) and exit",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from aot.options import SUPPORTED_DTYPES, SUPPORTED_ISAS, ExportOptions

    s = sub.add_parser("export", help="compile a model file (model.py) into a .pt2 package")
    s.add_argument("model", metavar="MODEL.py", help="defines get_model() and get_example_inputs()")
    s.add_argument("-o", "--output", required=True, metavar="OUT.pt2", help="package to write")
    s.add_argument("--device", help='"cpu" (default) or "cuda": a GPU package of Triton cubins')
    s.add_argument(
        "--arch",
        help="GPU arch of a cuda package, e.g. sm_90 (default: the local GPU's; required "
        "where there is none)",
    )
    s.add_argument(
        "--isa",
        default=ExportOptions.isa,
        choices=SUPPORTED_ISAS,
        help=f"CPU ISA the package targets (default {ExportOptions.isa}; never the build host's)",
    )
    s.add_argument(
        "--dtype",
        choices=[d for d in SUPPORTED_DTYPES if d],
        help="cast the model and its floating-point inputs before export (default: as is)",
    )
    s.add_argument(
        "--dynamic",
        action="append",
        metavar="SPEC",
        help="a dynamic dim, e.g. x:0=batch[1,512], y:0=batch or y:1=2*seq (repeatable; "
        "replaces get_dynamic_shapes(); example sizes must be >= 2)",
    )
    s.add_argument("--compress", action="store_true", help="zstd-compress the weights")
    s.add_argument(
        "--stats-json",
        metavar="FILE",
        help="write stage times and compile counters (compiles, cache_hits, cache_misses)",
    )
    s.add_argument("--no-cache", action="store_true", help="do not use the compile cache")
    s.add_argument(
        "--cache-key-tag",
        default="",
        metavar="TAG",
        help="mixed into every compile cache key (keeps builds apart, or forces fresh ones)",
    )
    s.add_argument(
        "--no-provenance",
        dest="provenance",
        action="store_false",
        help="leave out kernel_information.json and provenance/ (docs/PROVENANCE.md)",
    )
    s.add_argument("--quiet", action="store_true", help="print nothing but errors")
    s.add_argument(
        "-v", "--verbose", action="store_true", help="stage times always; tracebacks on errors"
    )
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("inspect", help="show what a package holds (reads the zip only)")
    s.add_argument("package", metavar="PKG")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.add_argument(
        "--kernel",
        metavar="NAME",
        help='one kernel: a debug handle ("kernel0:0") or a kernel name (all its calls), '
        "with its provenance and generated code",
    )
    s.add_argument(
        "--html",
        metavar="OUT.html",
        help="write a self-contained provenance report (model source, graphs, code)",
    )
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("run", help="run a package's sample inputs and compare to eager outputs")
    s.add_argument("package", metavar="PKG")
    s.add_argument("--model", help="model name (default: the package's only model)")
    s.add_argument("--device", help='"cpu" (default), "cuda", "cuda:N"')
    s.add_argument("-n", type=int, default=10, help="timed runs (default 10; 0 skips timing)")
    s.add_argument("--warmup", type=int, default=2, help="untimed runs before them (default 2)")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0: runtime default)")
    s.add_argument("--input", nargs="+", metavar="NPY", help="input .npy files, in order")
    s.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write the outputs as DIR/output_<i>.npy (bfloat16 as raw bits, '<u2')",
    )
    s.add_argument(
        "--atol", type=float, help="absolute tolerance (default: per dtype, see TOLERANCES)"
    )
    s.add_argument("--rtol", type=float, help="relative tolerance (default: per dtype)")
    s.add_argument("--quiet", action="store_true", help="print only failures and errors")
    s.add_argument(
        "--runtime-library",
        metavar="SO",
        default=os.environ.get(RUNTIME_LIBRARY_ENV) or None,
        help=f"libaotc.so to use (default: ${RUNTIME_LIBRARY_ENV}, else the installed one)",
    )
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "check", help="export and build a model file, compare it to eager on random inputs"
    )
    s.add_argument("model", metavar="MODEL.py", help="defines get_model() and get_example_inputs()")
    s.add_argument(
        "--dtype",
        choices=[d for d in SUPPORTED_DTYPES if d],
        help="cast the model and its floating-point inputs first (default: as is)",
    )
    s.add_argument(
        "--isa", default=ExportOptions.isa, choices=SUPPORTED_ISAS, help="CPU ISA to build for"
    )
    s.add_argument(
        "--dynamic",
        action="append",
        metavar="SPEC",
        help="a dynamic dim, e.g. x:0=batch[1,512], y:0=batch or y:1=2*seq (repeatable; "
        "replaces get_dynamic_shapes(); example sizes must be >= 2)",
    )
    s.add_argument("--runs", type=int, default=3, help="random input sets (default 3)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    s.add_argument(
        "--atol", type=float, help="absolute tolerance, float outputs (default: per dtype)"
    )
    s.add_argument(
        "--rtol", type=float, help="relative tolerance, float outputs (default: per dtype)"
    )
    s.add_argument("--device", help='"cpu" (default), "cuda", "cuda:N"')
    s.add_argument("--arch", help="GPU arch for --device cuda (default: that GPU's)")
    s.add_argument(
        "--runtime-library",
        metavar="SO",
        default=os.environ.get(RUNTIME_LIBRARY_ENV) or None,
        help=f"libaotc.so to use (default: ${RUNTIME_LIBRARY_ENV}, else the installed one)",
    )
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("cache", help="the compile cache ($AOTC_CACHE_DIR, ~/.cache/aotc)")
    s.add_argument("action", choices=["info", "clear"], help="show size and entries, or empty it")
    s.set_defaults(func=cmd_cache)

    s = sub.add_parser("verify", help="check a package's structure and checksums")
    s.add_argument("package", metavar="PKG")
    s.set_defaults(func=cmd_verify)
    return p


def _expected_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CliError, OSError, ValueError]
    # Only if already imported: never import torch (or the runtime) just to catch.
    rt = sys.modules.get("aot.runtime")
    if rt is not None:
        errors.append(rt.AotcError)
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmake_prefix_path:
        prefix = cmake_prefix_path()
        if (
            not (prefix / "lib" / "cmake" / "aotc").is_dir()
            and not (prefix / "lib64" / "cmake" / "aotc").is_dir()
        ):
            print(
                f"{PROG}: error: no installed aotc runtime under {prefix} "
                "(lib/cmake/aotc missing); reinstall with pip install .",
                file=sys.stderr,
            )
            return 2
        print(prefix)
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if not isinstance(e, _expected_errors()):
            raise
        print(f"{PROG}: error: {_describe(e)}", file=sys.stderr)
        return 2


def _describe(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) and e.filename and not str(e).startswith("aotc"):
        return f"{e.filename}: no such file"
    return str(e)  # an AotcError's message verbatim, as the C++ aotc-run prints it


if __name__ == "__main__":
    sys.exit(main())
