"""Triton printing of loop bodies: the index printer and TritonOpsHandler.

[Note: Triton loop bodies] TritonOpsHandler implements the OpsHandler
protocol (aot/ir/ops.py) by writing Triton statements into a TritonWriter,
with the CPU printer's semantics (aot/codegen/cpp/ops_printer.py and
aotc_cpu_math.h): every op result becomes a local, ``tmp3 = libdevice.exp(tmp2)``,
through a CSE cache keyed by the expression text (scoped like the loops of
the kernel). Values are TritonValue(expr, dtype); a value is a block of the
kernel's tile (or a scalar, which broadcasts).

- bfloat16/float16 values are computed in float32 (lowering inserts the
  casts; arithmetic given one upcasts it anyway).
- Constants are typed (``tl.full([], 0.5, tl.float32)``): Python literals
  would take Triton's weak typing (an int literal next to an int8 block).
- Integer add/sub/mul wrap (two's complement, as Triton's integer ops do);
  floor division and remainder follow Python's signs and never trap (a zero
  divisor gives 0); float -> int truncates, NaN and out-of-range values give
  the minimum of int32 (8/16/32-bit targets) or int64, as eager on x86.
- maximum/minimum propagate NaN; division is IEEE-rounded (div_rn) and so is
  sqrt (sqrt_rn), as eager; transcendental functions come from CUDA's
  libdevice (triton.language.extra.libdevice), which the interpreter tests
  run through interpreter_libdevice.py.
- Loads are masked by the current tile mask and the conditions of enclosing
  masked() bodies; indirect indices are checked at run time ([Note: GPU index
  checks] in context.py).

Index expressions print with ``//`` and ``%`` (operands are non-negative in
index math, where Triton's truncating division and floor agree). Their
integer width is the kernel's: loop variables derive from an int32 or int64
program index (loop_kernel.py picks int64 when an index may exceed 2**31 - 1),
and Triton's promotion carries it through the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import sympy
import torch

from ...ir.ops import MATH_FUNCTIONS
from ...ir.symbols import FloorDiv, ModularIndexing
from ..cpp.ops_printer import CppIndexPrinter
from .launch import TritonCodegenError

# torch dtype -> Triton dtype of a value.
TRITON_TYPES: dict[torch.dtype, str] = {
    torch.float32: "tl.float32",
    torch.float64: "tl.float64",
    torch.float16: "tl.float16",
    torch.bfloat16: "tl.bfloat16",
    torch.int64: "tl.int64",
    torch.int32: "tl.int32",
    torch.int16: "tl.int16",
    torch.int8: "tl.int8",
    torch.uint8: "tl.uint8",
    torch.bool: "tl.int1",
}
REDUCED_FLOATS = (torch.bfloat16, torch.float16)


def triton_type(dtype: torch.dtype) -> str:
    try:
        return TRITON_TYPES[dtype]
    except KeyError:
        raise TritonCodegenError(f"the Triton backend has no type for {dtype}") from None


def _is_int(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and dtype != torch.bool


@dataclass(frozen=True)
class TritonValue:
    """A Triton expression (usually a local's name) and the torch dtype it holds."""

    expr: str
    dtype: torch.dtype

    def __str__(self) -> str:
        return self.expr


def float_text(value: float, dtype: torch.dtype) -> str:
    """|value| as Python text that reads back as the same float32/float64."""
    value = float(value)
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("-inf")' if value < 0 else 'float("inf")'
    if dtype == torch.float32:
        value = float(np.float32(value))
    return repr(value)


def triton_literal(value: float | int | bool, dtype: torch.dtype) -> str:
    """|value| as a typed Triton scalar of |dtype| (bf16/fp16: float32)."""
    if dtype in REDUCED_FLOATS:
        value = float(torch.tensor(float(value), dtype=dtype).float().item())
        dtype = torch.float32
    if dtype == torch.bool:
        return f"tl.full([], {1 if value else 0}, tl.int1)"
    if dtype.is_floating_point:
        return f"tl.full([], {float_text(value, dtype)}, {triton_type(dtype)})"
    info = torch.iinfo(dtype)
    if isinstance(value, float) and math.isinf(value):  # e.g. a padding of -inf
        value = info.min if value < 0 else info.max
    value = int(value)
    if not info.min <= value <= info.max:
        raise TritonCodegenError(f"constant {value} does not fit {dtype}")
    return f"tl.full([], {value}, {triton_type(dtype)})"


# ---------------------------------------------------------------------------
# Index printer
# ---------------------------------------------------------------------------


class TritonIndexPrinter(CppIndexPrinter):
    """sympy index expression -> Triton integer expression. |symbol_name|
    names each free symbol (loop variables, indirect indices, size args)."""

    FLOOR_DIV = "//"
    MINMAX = ("tl.maximum", "tl.minimum")

    def _literal(self, value: int) -> str:
        return str(value)

    def _error(self, message: str) -> Exception:
        return TritonCodegenError(message)


def index_bound(expr: sympy.Expr, ranges: Mapping[sympy.Symbol, int]) -> int | None:
    """The largest absolute value |expr| or any of its subexpressions takes
    for symbols in [0, ranges[s]); None when unbounded (a size symbol)."""
    worst = 0

    def visit(e: sympy.Expr) -> tuple[int, int] | None:
        nonlocal worst
        if e.is_Integer:
            lo = hi = int(e)
        elif e.is_Symbol:
            if e not in ranges:
                return None
            lo, hi = 0, max(int(ranges[e]) - 1, 0)
        elif isinstance(e, sympy.Add | sympy.Mul):
            parts = [visit(a) for a in e.args]
            if any(p is None for p in parts):
                return None
            lo, hi = parts[0]
            for plo, phi in parts[1:]:
                if isinstance(e, sympy.Add):
                    lo, hi = lo + plo, hi + phi
                else:
                    products = [lo * plo, lo * phi, hi * plo, hi * phi]
                    lo, hi = min(products), max(products)
        elif isinstance(e, FloorDiv):
            base, div = visit(e.args[0]), e.args[1]
            if base is None or not div.is_Integer or int(div) <= 0:
                return None
            lo, hi = base[0] // int(div), base[1] // int(div)
        elif isinstance(e, ModularIndexing):
            if visit(e.args[0]) is None or not e.args[2].is_Integer:
                return None
            lo, hi = 0, int(e.args[2]) - 1
        elif isinstance(e, sympy.Max | sympy.Min):
            parts = [visit(a) for a in e.args]
            if any(p is None for p in parts):
                return None
            pick = max if isinstance(e, sympy.Max) else min
            lo, hi = pick(p[0] for p in parts), pick(p[1] for p in parts)
        else:
            return None
        worst = max(worst, abs(lo), abs(hi))
        return lo, hi

    return None if visit(sympy.sympify(expr)) is None else worst


# ---------------------------------------------------------------------------
# Writer: lines, indentation, CSE scopes
# ---------------------------------------------------------------------------


class TritonWriter:
    """Statement lines with indentation and a stack of CSE scopes, one per
    open block (a reduction loop). |prefix| starts every local's name."""

    def __init__(self, indent: int = 1, prefix: str = "tmp") -> None:
        self.lines: list[str] = []
        self._indent = indent
        self._scopes: list[dict[str, TritonValue]] = [{}]
        self._counter = 0
        self.prefix = prefix

    def line(self, text: str) -> None:
        self.lines.append("    " * self._indent + text)

    def new_name(self, kind: str = "") -> str:
        name = f"{self.prefix}{kind}{self._counter}"
        self._counter += 1
        return name

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        """``header:`` and an indented body with a fresh CSE scope."""
        self.line(header)
        self._indent += 1
        self._scopes.append({})
        try:
            yield
        finally:
            self._scopes.pop()
            self._indent -= 1

    def lookup(self, key: str) -> TritonValue | None:
        for scope in reversed(self._scopes):
            found = scope.get(key)
            if found is not None:
                return found
        return None

    def remember(self, key: str, value: TritonValue) -> None:
        self._scopes[-1][key] = value

    def forget(self, predicate: Callable[[str], bool]) -> None:
        for scope in self._scopes:
            for key in [k for k in scope if predicate(k)]:
                del scope[key]

    def emit(self, expr: str, dtype: torch.dtype) -> TritonValue:
        """``tmpN = expr`` unless an identical expression is in scope."""
        found = self.lookup(expr)
        if found is not None and found.dtype == dtype:
            return found
        name = self.new_name()
        self.line(f"{name} = {expr}")
        value = TritonValue(name, dtype)
        self.remember(expr, value)
        return value


# ---------------------------------------------------------------------------
# Helpers the bodies call (module-level @triton.jit functions, emitted once)
# ---------------------------------------------------------------------------

HELPERS: dict[str, str] = {
    "_aotc_floordiv_int": """
@triton.jit
def _aotc_floordiv_int(a, b):
    # Python's floor division; b == 0 gives 0, a // -1 wraps (no trap).
    safe = tl.where((b == 0) | (b == -1), 1, b)
    q = a // safe
    r = a % safe
    q = tl.where((r != 0) & ((r < 0) != (safe < 0)), q - 1, q)
    q = tl.where(b == -1, -a, q)
    return tl.where(b == 0, 0, q)
""",
    "_aotc_mod_int": """
@triton.jit
def _aotc_mod_int(a, b):
    # Remainder with the divisor's sign; b == 0 (and b == -1) give 0.
    safe = tl.where((b == 0) | (b == -1), 1, b)
    r = a % safe
    r = tl.where((r != 0) & ((r < 0) != (safe < 0)), r + safe, r)
    return tl.where((b == 0) | (b == -1), 0, r)
""",
    "_aotc_floordiv_float": """
@triton.jit
def _aotc_floordiv_float(a, b):
    # c10's div_floor_floating: Python's a // b for floats.
    mod = libdevice.fmod(a, b)
    div = (a - mod) / b
    div = tl.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1, div)
    fl = libdevice.floor(div)
    fl = tl.where(div - fl > 0.5, fl + 1, fl)
    fl = tl.where(div == 0, libdevice.copysign(div * 0, a / b), fl)
    return tl.where(b == 0, a / b, fl)
""",
    "_aotc_mod_float": """
@triton.jit
def _aotc_mod_float(a, b):
    m = libdevice.fmod(a, b)
    return tl.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)
""",
    "_aotc_ipow": """
@triton.jit
def _aotc_ipow(base, exp):
    # Integer power by squaring (wrapping); negative exponents as eager.
    result = tl.full(base.shape, 1, base.dtype) + base * 0
    e = exp + base * 0
    b = base + exp * 0
    for _ in tl.static_range(64):
        result = tl.where((e & 1) != 0, result * b, result)
        e = e >> 1
        b = b * b
    neg = exp < 0
    odd = (exp & 1) != 0
    special = tl.where(base == 1, 1, tl.where(base == -1, tl.where(odd, -1, 1), 0))
    return tl.where(neg, special.to(result.dtype), result)
""",
    "_aotc_maximum": """
@triton.jit
def _aotc_maximum(a, b):
    # torch.maximum: NaN wins.
    return tl.where(a != a, a, tl.where(b != b, b, tl.where(a > b, a, b)))
""",
    "_aotc_minimum": """
@triton.jit
def _aotc_minimum(a, b):
    return tl.where(a != a, a, tl.where(b != b, b, tl.where(a < b, a, b)))
""",
    "_aotc_prod": """
@triton.jit
def _aotc_prod(a, b):
    return a * b
""",
    "_aotc_argmax": """
@triton.jit
def _aotc_argmax(a, ai, b, bi):
    # The first index of the largest value; the first NaN wins over all.
    a_nan = a != a
    b_nan = b != b
    better = (a > b) | (a_nan & (b == b))
    tie = (a == b) | (a_nan & b_nan)
    pick_a = better | (tie & (ai < bi))
    return tl.where(pick_a, a, b), tl.where(pick_a, ai, bi)
""",
    "_aotc_argmin": """
@triton.jit
def _aotc_argmin(a, ai, b, bi):
    a_nan = a != a
    b_nan = b != b
    better = (a < b) | (a_nan & (b == b))
    tie = (a == b) | (a_nan & b_nan)
    pick_a = better | (tie & (ai < bi))
    return tl.where(pick_a, a, b), tl.where(pick_a, ai, bi)
""",
    "_aotc_welford_combine": """
@triton.jit
def _aotc_welford_combine(mean_a, m2_a, weight_a, mean_b, m2_b, weight_b):
    # Chan et al.'s merge of two partial (mean, m2, weight).
    total = weight_a + weight_b
    share_b = tl.where(total == 0, 0.0, weight_b / tl.where(total == 0, 1.0, total))
    delta = mean_b - mean_a
    mean = mean_a + delta * share_b
    m2 = m2_a + m2_b + delta * delta * weight_a * share_b
    return mean, m2, total
""",
}


# ---------------------------------------------------------------------------
# The ops handler
# ---------------------------------------------------------------------------

# Called for every load first; returns a value for buffers that live in
# registers (LoopKernel.local), None for memory.
LoadHook = Callable[["TritonOpsHandler", str, sympy.Expr], TritonValue | None]

# math_fn names -> libdevice function (aot/ir/ops.py's MATH_FUNCTIONS).
_LIBDEVICE_MATH: dict[str, str] = {
    "asin": "asin",
    "acos": "acos",
    "asinh": "asinh",
    "acosh": "acosh",
    "atanh": "atanh",
    "copysign": "copysign",
    "hypot": "hypot",
    "nextafter": "nextafter",
    "erfc": "erfc",
    "erfinv": "erfinv",
    "erfcx": "erfcx",
    "ndtri": "normcdfinv",
    "lgamma": "lgamma",
    "i0": "cyl_bessel_i0",
    "i1": "cyl_bessel_i1",
    "bessel_j0": "j0",
    "bessel_j1": "j1",
    "bessel_y0": "y0",
    "bessel_y1": "y1",
}


@dataclass
class Domain:
    """The tile the current statements compute on. |mask|: its lanes that
    exist; |zero|: an int zero block of its shape (broadcasts a pointer whose
    index lacks one of its axes); |full_prefixes|: a block spans the tile when
    it uses a loop variable of each prefix ("i" outer, "r" inner);
    |base_mask|: the mask of blocks over the outer variables alone."""

    mask: str
    zero: str
    full_prefixes: tuple[str, ...] = ("i",)
    base_mask: str = ""

    def __post_init__(self) -> None:
        self.base_mask = self.base_mask or self.mask


def _loop_names(index: sympy.Expr) -> set[str]:
    return {
        s.name
        for s in sympy.sympify(index).free_symbols
        if s.name[:1] in "ir" and s.name[1:].isdigit()
    }


class TritonOpsHandler:
    """OpsHandler[TritonValue] that prints Triton into |writer|.

    |buffer_dtypes| gives the element dtype of every buffer a body may load;
    |pointer| the parameter name of a buffer's pointer; |index| prints index
    expressions; |load_hook| intercepts loads of register-resident buffers;
    |errors_pointer| names the INDEX_ERRORS parameter. After printing,
    |loaded|, |stored|, |helpers| and |index_checks| say what the kernel must
    declare."""

    def __init__(
        self,
        writer: TritonWriter,
        index: TritonIndexPrinter,
        buffer_dtypes: Mapping[str, torch.dtype],
        pointer: Callable[[str], str],
        domain: Domain,
        load_hook: LoadHook | None = None,
        errors_pointer: str = "index_errors",
    ) -> None:
        self.writer = writer
        self.index = index
        self.buffer_dtypes = buffer_dtypes
        self.pointer = pointer
        self.domain = domain
        self.load_hook = load_hook
        self.errors_pointer = errors_pointer
        self.loaded: dict[str, None] = {}  # ordered sets of buffer names
        self.stored: dict[str, None] = {}
        self.helpers: dict[str, None] = {}
        self.index_checks: list[str] = []
        self.indirect: dict[str, sympy.Expr] = {}  # indirect index local -> its size
        self.masks: list[str] = []  # conditions of enclosing masked() bodies
        self.index_exprs: list[sympy.Expr] = []  # every index printed (for widths)
        self._barrier_before: set[str] = set()  # stored buffers read back from memory

    # -- helpers ---------------------------------------------------------------
    def _emit(self, expr: str, dtype: torch.dtype) -> TritonValue:
        return self.writer.emit(expr, dtype)

    def _helper(self, name: str) -> str:
        self.helpers.setdefault(name)
        return name

    def convert(self, value: TritonValue, dtype: torch.dtype) -> str:
        """Triton expression of |value| converted to |dtype| with torch's rules."""
        src = value.dtype
        if src == dtype:
            return value.expr
        if dtype == torch.bool:
            return f"({value.expr} != 0)"
        if src.is_floating_point and _is_int(dtype):
            # Truncation; NaN and out of range give int32's (or int64's) minimum.
            if dtype == torch.int64:
                lo, hi, wide = "-9223372036854775808.0", "9223372036854775808.0", "tl.int64"
                inside = f"({value.expr} >= {lo}) & ({value.expr} < {hi})"
            else:
                lo, hi, wide = "-2147483648.0", "2147483648.0", "tl.int32"
                inside = f"({value.expr} > -2147483649.0) & ({value.expr} < {hi})"
            as_int = f"tl.where({inside}, {value.expr}, {lo}).to({wide})"
            return (
                as_int
                if dtype in (torch.int64, torch.int32)
                else f"{as_int}.to({triton_type(dtype)})"
            )
        return f"{value.expr}.to({triton_type(dtype)})"

    def _as(self, value: TritonValue, dtype: torch.dtype) -> TritonValue:
        if value.dtype == dtype:
            return value
        return self._emit(self.convert(value, dtype), dtype)

    def _compute(self, value: TritonValue) -> TritonValue:
        return self._as(value, torch.float32) if value.dtype in REDUCED_FLOATS else value

    def _float(self, value: TritonValue) -> TritonValue:
        value = self._compute(value)
        return value if value.dtype.is_floating_point else self._as(value, torch.float32)

    def _pair(self, a: TritonValue, b: TritonValue) -> tuple[TritonValue, TritonValue, torch.dtype]:
        a, b = self._compute(a), self._compute(b)
        if a.dtype != b.dtype:  # lowering makes them equal; promote if not
            dtype = torch.promote_types(a.dtype, b.dtype)
            a, b = self._as(a, dtype), self._as(b, dtype)
        return a, b, a.dtype

    def _bool(self, value: TritonValue) -> TritonValue:
        return self._as(self._compute(value), torch.bool)

    def _libdevice(self, fn: str, x: TritonValue) -> TritonValue:
        x = self._float(x)
        return self._emit(f"libdevice.{fn}({x.expr})", x.dtype)

    def current_mask(self) -> str:
        return " & ".join([self.domain.mask, *self.masks])

    # -- memory and constants --------------------------------------------------
    def _address(self, name: str, index: sympy.Expr, full: bool) -> str:
        """Pointer expression of element |index|; |full|: a block of the whole
        tile (broadcast with the domain's zero when the index lacks one of
        its axes)."""
        self.index_exprs.append(index)
        text = f"{self.pointer(name)} + ({self.index(index)})"
        names = _loop_names(index)
        spans = all(any(n.startswith(p) for n in names) for p in self.domain.full_prefixes)
        if full and not spans:
            text += f" + {self.domain.zero}"
        return text

    def _load_mode(self, index: sympy.Expr) -> str:
        """ "scalar" (no loop variable, no mask needed), "base" (over outer
        variables only: the base mask) or "full" (tile-shaped pointer and mask)."""
        names = {s.name for s in sympy.sympify(index).free_symbols}
        if self.masks or names & set(self.indirect):
            return "full"
        loop_names = _loop_names(index)
        if not loop_names:
            return "scalar"
        return "base" if all(n.startswith("i") for n in loop_names) else "full"

    def load(self, name: str, index: sympy.Expr) -> TritonValue:
        if self.load_hook is not None:
            local = self.load_hook(self, name, index)
            if local is not None:
                return local
        dtype = self.buffer_dtypes.get(name)
        if dtype is None:
            raise TritonCodegenError(f"load of buffer {name!r} whose dtype is unknown")
        if name in self._barrier_before:
            # This kernel stored |name| through other threads of the program.
            self.writer.line("tl.debug_barrier()")
            self._barrier_before.discard(name)
        self.loaded.setdefault(name)
        mode = self._load_mode(index)
        address = self._address(name, index, full=mode == "full")
        if mode == "scalar":
            return self._emit(f"tl.load({address})", dtype)
        mask = self.domain.base_mask if mode == "base" else self.current_mask()
        other = "0" if dtype != torch.bool else "False"
        return self._emit(f"tl.load({address}, {mask}, other={other})", dtype)

    def store(self, name: str, index: sympy.Expr, value: TritonValue) -> None:
        """Writes |value| (converted to the buffer's dtype) at |index| for
        the lanes of the current mask."""
        dtype = self.buffer_dtypes[name]
        self.stored.setdefault(name)
        value = self._as(value, dtype)
        address = self._address(name, index, full=True)
        self.writer.line(f"tl.store({address}, {value.expr}, {self.current_mask()})")
        pointer = self.pointer(name)
        self.writer.forget(lambda key: f"{pointer} + " in key and key.startswith("tl.load("))
        self._barrier_before.add(name)

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> TritonValue:
        if dtype in REDUCED_FLOATS:
            dtype = torch.float32  # computed in float32, rounded like eager
        return self._emit(triton_literal(value, dtype), dtype)

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> TritonValue:
        self.index_exprs.append(expr)
        text = self.index(expr)
        if not sympy.sympify(expr).free_symbols:
            text = f"tl.full([], {text}, tl.int64)"
        value = self._emit(f"({text}).to(tl.int64)", torch.int64)
        return self._as(value, dtype)

    def indirect_indexing(
        self, value: TritonValue, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        """The index as a local; out of [0, size) records an error in the
        INDEX_ERRORS slots ([Note: GPU index checks]) and reads element 0."""
        value = self._as(value, torch.int64)
        size_text = self.index(size)
        self.index_exprs.append(size)
        key = f"indirect({value.expr}, {size_text}, {wrap}, {name})"
        found = self.writer.lookup(key)
        if found is not None:
            return sympy.Symbol(found.expr, integer=True, nonnegative=True)
        if name not in self.index_checks:
            self.index_checks.append(name)
        check = self.index_checks.index(name)
        w = self.writer
        raw = value.expr
        if wrap:
            raw = self._emit(f"tl.where({raw} < 0, {raw} + {size_text}, {raw})", torch.int64).expr
        bad = w.new_name("bad")
        w.line(f"{bad} = (({raw} < 0) | ({raw} >= {size_text})) & ({self.current_mask()})")
        self._record_error(bad, value.expr, size_text, check)
        idx = w.new_name("idx")
        w.line(f"{idx} = tl.where({bad}, 0, {raw})")
        self.indirect[idx] = sympy.sympify(size)
        w.remember(key, TritonValue(idx, torch.int64))
        return sympy.Symbol(idx, integer=True, nonnegative=True)

    def _record_error(self, bad: str, value: str, size: str, check: int) -> None:
        """One program records its first bad index (any one of the tile's)."""
        w, errors = self.writer, self.errors_pointer
        w.line(f"if tl.max(tl.ravel({bad}.to(tl.int32)), 0) != 0:")
        w.line(
            f"    if tl.atomic_cas({errors}, tl.full([], 0, tl.int64), "
            "tl.full([], 1, tl.int64)) == 0:"
        )
        bad_value = f"tl.max(tl.ravel(tl.where({bad}, {value}, -9223372036854775807 - 1)), 0)"
        w.line(f"        tl.store({errors} + 1, {bad_value}.to(tl.int64))")
        w.line(f"        tl.store({errors} + 2, tl.full([], {size}, tl.int64))")
        w.line(f"        tl.store({errors} + 3, tl.full([], {check}, tl.int64))")

    def to_dtype(self, value: TritonValue, dtype: torch.dtype) -> TritonValue:
        return self._as(value, dtype)

    def where(self, cond: TritonValue, a: TritonValue, b: TritonValue) -> TritonValue:
        cond = self._bool(cond)
        a, b, dtype = self._pair(a, b)
        return self._emit(f"tl.where({cond.expr}, {a.expr}, {b.expr})", dtype)

    def masked(
        self, mask: TritonValue, body: Callable[[], TritonValue], other: float | int | bool
    ) -> TritonValue:
        mask = self._bool(mask)
        self.masks.append(mask.expr)
        try:
            result = self._compute(body())
        finally:
            self.masks.pop()
        other_value = self.constant(other, result.dtype)
        return self._emit(f"tl.where({mask.expr}, {result.expr}, {other_value.expr})", result.dtype)

    # -- unary math --------------------------------------------------------------
    def neg(self, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if x.dtype == torch.bool:
            return x
        return self._emit(f"-{x.expr}", x.dtype)

    def abs(self, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if x.dtype == torch.bool or x.dtype == torch.uint8:
            return x
        return self._emit(f"tl.abs({x.expr})", x.dtype)

    def exp(self, x: TritonValue) -> TritonValue:
        return self._libdevice("exp", x)

    def expm1(self, x: TritonValue) -> TritonValue:
        return self._libdevice("expm1", x)

    def log(self, x: TritonValue) -> TritonValue:
        return self._libdevice("log", x)

    def log1p(self, x: TritonValue) -> TritonValue:
        return self._libdevice("log1p", x)

    def sqrt(self, x: TritonValue) -> TritonValue:
        x = self._float(x)
        return self._emit(f"tl.sqrt_rn({x.expr})", x.dtype)

    def rsqrt(self, x: TritonValue) -> TritonValue:
        return self.reciprocal(self.sqrt(x))

    def reciprocal(self, x: TritonValue) -> TritonValue:
        x = self._float(x)
        return self.truediv(self.constant(1.0, x.dtype), x)

    def sin(self, x: TritonValue) -> TritonValue:
        return self._libdevice("sin", x)

    def cos(self, x: TritonValue) -> TritonValue:
        return self._libdevice("cos", x)

    def tan(self, x: TritonValue) -> TritonValue:
        return self._libdevice("tan", x)

    def tanh(self, x: TritonValue) -> TritonValue:
        return self._libdevice("tanh", x)

    def sigmoid(self, x: TritonValue) -> TritonValue:
        x = self._float(x)
        one = self.constant(1.0, x.dtype)
        return self.truediv(one, self.add(one, self.exp(self.neg(x))))

    def erf(self, x: TritonValue) -> TritonValue:
        """[Note: GPU erf] float32 erf is the CPU backend's formula ([Note:
        vectorisable erf], Abramowitz & Stegun 7.1.26, eager's vectorised
        one), within 6e-7 of libdevice's: a dozen instructions instead of
        libdevice's branchy ~40, which a GEMM's GELU epilogue pays once per
        output element after the K loop (fc + GELU ran 60% slower than the
        plain GEMM on the H200). float64 keeps libdevice."""
        x = self._float(x)
        if x.dtype != torch.float32:
            return self._libdevice("erf", x)
        f32 = torch.float32
        ax = self._emit(f"tl.abs({x.expr})", f32)
        # An approximate reciprocal (div.full, 2 ulp): the formula's own error
        # is 1e-7, and IEEE division is a dozen more instructions.
        t = self._emit(f"tl.fdiv(tl.full([], 1.0, tl.float32), 0.3275911 * {ax.expr} + 1.0)", f32)
        r = "1.061405429"
        for c in ("-1.453152027", "1.421413741", "-0.284496736", "0.254829592"):
            r = f"({r} * {t.expr} + {c})"
        r = self._emit(r, f32)
        e = self._emit(f"tl.exp(-tl.minimum({ax.expr} * {ax.expr}, 100.0))", f32)
        y = self._emit(f"1.0 - {r.expr} * {t.expr} * {e.expr}", f32)
        # NaN stays NaN (ax is NaN, so y is); erf(-0) = -0.
        return self._emit(f"libdevice.copysign({y.expr}, {x.expr})", f32)

    def _rounding(self, fn: str, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if not x.dtype.is_floating_point:
            return x  # integers are already whole
        return self._emit(f"libdevice.{fn}({x.expr})", x.dtype)

    def floor(self, x: TritonValue) -> TritonValue:
        return self._rounding("floor", x)

    def ceil(self, x: TritonValue) -> TritonValue:
        return self._rounding("ceil", x)

    def trunc(self, x: TritonValue) -> TritonValue:
        return self._rounding("trunc", x)

    def round(self, x: TritonValue) -> TritonValue:
        return self._rounding("nearbyint", x)  # half to even

    def sign(self, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if x.dtype == torch.bool:
            return x
        t = triton_type(x.dtype)
        return self._emit(f"(0 < {x.expr}).to({t}) - ({x.expr} < 0).to({t})", x.dtype)

    def isnan(self, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if not x.dtype.is_floating_point:
            return self.constant(False, torch.bool)
        return self._emit(f"{x.expr} != {x.expr}", torch.bool)

    def isinf(self, x: TritonValue) -> TritonValue:
        x = self._compute(x)
        if not x.dtype.is_floating_point:
            return self.constant(False, torch.bool)
        return self._emit(f'tl.abs({x.expr}) == float("inf")', torch.bool)

    def logical_not(self, x: TritonValue) -> TritonValue:
        return self._emit(f"{self._bool(x).expr} == 0", torch.bool)

    def bitwise_not(self, x: TritonValue) -> TritonValue:
        if x.dtype == torch.bool:
            return self._emit(f"{x.expr} == 0", torch.bool)
        if not _is_int(x.dtype):
            raise TritonCodegenError(f"bitwise_not of {x.dtype}")
        return self._emit(f"~{x.expr}", x.dtype)

    # -- binary ------------------------------------------------------------------
    def _binary(
        self, fmt: str, a: TritonValue, b: TritonValue, out: torch.dtype | None = None
    ) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        return self._emit(fmt.format(a=a.expr, b=b.expr), out or dtype)

    def add(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:  # bool + bool is logical or in torch
            return self._emit(f"{a.expr} | {b.expr}", dtype)
        return self._emit(f"{a.expr} + {b.expr}", dtype)

    def sub(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} - {b}", a, b)

    def mul(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} & {b.expr}", dtype)
        return self._emit(f"{a.expr} * {b.expr}", dtype)

    def truediv(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(self._float(a), self._float(b))
        if dtype == torch.float32:
            return self._emit(f"tl.div_rn({a.expr}, {b.expr})", dtype)
        return self._emit(f"{a.expr} / {b.expr}", dtype)

    def floordiv(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            raise TritonCodegenError("floor division of bool")
        fn = "_aotc_floordiv_float" if dtype.is_floating_point else "_aotc_floordiv_int"
        return self._emit(f"{self._helper(fn)}({a.expr}, {b.expr})", dtype)

    def mod(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            raise TritonCodegenError("remainder of bool")
        fn = "_aotc_mod_float" if dtype.is_floating_point else "_aotc_mod_int"
        return self._emit(f"{self._helper(fn)}({a.expr}, {b.expr})", dtype)

    def pow(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype.is_floating_point:
            return self._emit(f"libdevice.pow({a.expr}, {b.expr})", dtype)
        if dtype == torch.bool:
            raise TritonCodegenError("pow of bool")
        return self._emit(f"{self._helper('_aotc_ipow')}({a.expr}, {b.expr})", dtype)

    def atan2(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(self._float(a), self._float(b))
        return self._emit(f"libdevice.atan2({a.expr}, {b.expr})", dtype)

    def maximum(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} | {b.expr}", dtype)
        if not dtype.is_floating_point:
            return self._emit(f"tl.maximum({a.expr}, {b.expr})", dtype)
        return self._emit(f"{self._helper('_aotc_maximum')}({a.expr}, {b.expr})", dtype)

    def minimum(self, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} & {b.expr}", dtype)
        if not dtype.is_floating_point:
            return self._emit(f"tl.minimum({a.expr}, {b.expr})", dtype)
        return self._emit(f"{self._helper('_aotc_minimum')}({a.expr}, {b.expr})", dtype)

    def eq(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} == {b}", a, b, torch.bool)

    def ne(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} != {b}", a, b, torch.bool)

    def lt(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} < {b}", a, b, torch.bool)

    def le(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} <= {b}", a, b, torch.bool)

    def gt(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} > {b}", a, b, torch.bool)

    def ge(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._binary("{a} >= {b}", a, b, torch.bool)

    def _logical(self, op: str, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b = self._bool(a), self._bool(b)
        return self._emit(f"{a.expr} {op} {b.expr}", torch.bool)

    def logical_and(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._logical("&", a, b)

    def logical_or(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._logical("|", a, b)

    def logical_xor(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._logical("^", a, b)

    def _bitwise(self, op: str, a: TritonValue, b: TritonValue) -> TritonValue:
        a, b, dtype = self._pair(a, b)
        if dtype.is_floating_point:
            raise TritonCodegenError(f"bitwise {op} of {dtype}")
        return self._emit(f"{a.expr} {op} {b.expr}", dtype)

    def bitwise_and(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._bitwise("&", a, b)

    def bitwise_or(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._bitwise("|", a, b)

    def bitwise_xor(self, a: TritonValue, b: TritonValue) -> TritonValue:
        return self._bitwise("^", a, b)

    # -- named math functions ([Note: math functions] in aot/ir/ops.py) ------------
    def math_fn(self, name: str, *args: TritonValue) -> TritonValue:
        """libdevice's function for |name|; the special functions libdevice
        lacks are refused (they run on cpu packages only)."""
        if MATH_FUNCTIONS.get(name) != len(args):
            raise TritonCodegenError(f"math_fn {name!r} with {len(args)} operands")
        fn = _LIBDEVICE_MATH.get(name)
        if fn is None:
            raise TritonCodegenError(f"{name} has no GPU implementation yet")
        values = [self._float(a) for a in args]
        dtype = values[0].dtype
        for value in values[1:]:
            dtype = torch.promote_types(dtype, value.dtype)
        operands = ", ".join(self._as(v, dtype).expr for v in values)
        return self._emit(f"libdevice.{fn}({operands})", dtype)
