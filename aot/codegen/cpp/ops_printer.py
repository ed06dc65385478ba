"""C++ printing of loop bodies: the index printer and CppOpsHandler.

[Note: C++ loop bodies] CppOpsHandler implements the OpsHandler protocol
(aot/ir/ops.py) by writing C++ statements into a CppWriter. Every op result
becomes a typed local, ``const float t3 = std::exp(t2);``, through a CSE cache
keyed by the expression text, so a subexpression a body computes twice (or two
bodies inlined into one loop compute) is emitted once. The cache is scoped like
the C++ blocks: entries made inside a loop or an ``if`` die with the block.

Values are CppValue(expr, dtype). Locals are declared with the C++ type of
their torch dtype, never ``auto``: C++ promotes int8 + int8 to int, and the
typed declaration narrows it back exactly as torch wraps. bfloat16/float16
values are raw uint16 bit patterns (g++ 12 has no __bf16); to_dtype converts
with aotc_cpu_math.h's round-to-nearest-even helpers, and any arithmetic op
given such a value first upcasts it to float (lowering normally does that).

Index expressions print as int64 C++ (FloorDiv -> ``/``, ModularIndexing ->
``/`` and ``%``: index operands are non-negative, where C++'s truncation and
floor agree).
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


class CodegenError(Exception):
    """A loop body or kernel the C++ backend cannot print (a bug upstream)."""


# torch dtype -> C++ type of a value / an element in memory.
CPP_TYPES: dict[torch.dtype, str] = {
    torch.float32: "float",
    torch.float64: "double",
    torch.bfloat16: "uint16_t",
    torch.float16: "uint16_t",
    torch.int64: "int64_t",
    torch.int32: "int32_t",
    torch.int16: "int16_t",
    torch.int8: "int8_t",
    torch.uint8: "uint8_t",
    torch.bool: "bool",
}

# Stored as 16-bit patterns, computed in float32.
REDUCED_FLOATS = (torch.bfloat16, torch.float16)
_TO_FLOAT = {torch.bfloat16: "aotc_math::bf16_to_float", torch.float16: "aotc_math::fp16_to_float"}
_FROM_FLOAT = {
    torch.bfloat16: "aotc_math::float_to_bf16",
    torch.float16: "aotc_math::float_to_fp16",
}


def cpp_type(dtype: torch.dtype) -> str:
    try:
        return CPP_TYPES[dtype]
    except KeyError:
        raise CodegenError(f"the C++ backend has no type for {dtype}") from None


def _is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def _is_int(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and dtype != torch.bool


@dataclass(frozen=True)
class CppValue:
    """A C++ expression (usually a local's name) and the torch dtype it holds."""

    expr: str
    dtype: torch.dtype

    def __str__(self) -> str:
        return self.expr


# ---------------------------------------------------------------------------
# Literals
# ---------------------------------------------------------------------------


def cpp_literal(value: float | int | bool, dtype: torch.dtype) -> str:
    """|value| as a C++ literal of exactly dtype's C++ type (raw bits for
    bfloat16/float16)."""
    if dtype == torch.bool:
        return "true" if value else "false"
    if dtype in REDUCED_FLOATS:
        bits = int(torch.tensor(float(value), dtype=dtype).view(torch.int16).item()) & 0xFFFF
        return f"static_cast<uint16_t>({bits:#06x})"
    if dtype in (torch.float32, torch.float64):
        ctype = cpp_type(dtype)
        value = float(value)
        if math.isnan(value):
            return f"std::numeric_limits<{ctype}>::quiet_NaN()"
        if math.isinf(value):
            sign = "-" if value < 0 else ""
            return f"{sign}std::numeric_limits<{ctype}>::infinity()"
        # The shortest text that reads back as the same float32/float64: exact.
        scalar = np.float32(value) if dtype == torch.float32 else np.float64(value)
        if value == 0 or 1e-4 <= abs(value) < 1e9:
            text = np.format_float_positional(scalar, unique=True, trim="0")
        else:
            text = np.format_float_scientific(scalar, unique=True, trim="0")
        return f"{text}f" if dtype == torch.float32 else text
    info = torch.iinfo(dtype)
    if isinstance(value, float) and math.isinf(value):  # e.g. a padding of -inf
        value = info.min if value < 0 else info.max
    value = int(value)
    if not info.min <= value <= info.max:
        raise CodegenError(f"constant {value} does not fit {dtype}")
    if dtype == torch.int64:
        if value == info.min:
            return "std::numeric_limits<int64_t>::min()"
        return f"int64_t{{{value}}}"
    if dtype == torch.int32:
        if value == info.min:
            return "std::numeric_limits<int32_t>::min()"
        return str(value)
    return f"static_cast<{cpp_type(dtype)}>({value})"


def c_string(text: str) -> str:
    """|text| as a C string literal (quotes included)."""
    escaped = []
    for ch in text:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif " " <= ch <= "~":
            escaped.append(ch)
        else:
            escaped.append("?")
    return '"' + "".join(escaped) + '"'


# ---------------------------------------------------------------------------
# Index printer
# ---------------------------------------------------------------------------

_INT32_MAX = 2**31 - 1


class CppIndexPrinter:
    """sympy index expression -> int64 C++ expression. |symbol_name| names
    each free symbol in C++ (loop variables, indirect indices, size locals).
    The Triton backend's printer is this one with its own spellings of
    literals, floor division, min/max and the error (TritonIndexPrinter)."""

    FLOOR_DIV = "/"  # operands are non-negative: C++'s / is floor division
    MINMAX = ("std::max<int64_t>", "std::min<int64_t>")

    def _literal(self, value: int) -> str:
        return str(value) if abs(value) <= _INT32_MAX else f"{value}LL"

    def _error(self, message: str) -> Exception:
        return CodegenError(message)

    def __init__(self, symbol_name: Callable[[sympy.Symbol], str]) -> None:
        self._symbol_name = symbol_name
        self._cache: dict[sympy.Expr, str] = {}

    def __call__(self, expr: sympy.Expr | int) -> str:
        expr = sympy.sympify(expr)
        text = self._cache.get(expr)
        if text is None:
            text = self._cache[expr] = self._print(expr)
        return text

    def _print(self, e: sympy.Expr) -> str:
        if e.is_Integer:
            return self._literal(int(e))
        if e.is_Symbol:
            return self._symbol_name(e)
        if isinstance(e, sympy.Add):
            return self._print_add(e)
        if isinstance(e, sympy.Mul):
            return self._print_mul(e)
        if isinstance(e, sympy.Pow):
            base, exp = e.args
            if exp.is_Integer and int(exp) > 0:
                return " * ".join([self._operand(base)] * int(exp))
            raise self._error(f"cannot print {e} as an integer index")
        if isinstance(e, FloorDiv):
            base, divisor = e.args
            return f"({self._operand(base)} {self.FLOOR_DIV} {self._operand(divisor)})"
        if isinstance(e, ModularIndexing):
            base, divisor, modulus = e.args
            # FloorDiv may simplify to an Add ((i1 + 64*i0) // 64 == i0 + i1 // 64):
            # _operand parenthesises it, or `%` would bind to its last term only.
            quotient = base if divisor == 1 else FloorDiv(base, divisor)
            return f"({self._operand(quotient)} % {self._operand(modulus)})"
        if isinstance(e, sympy.Max | sympy.Min):
            fn = self.MINMAX[0] if isinstance(e, sympy.Max) else self.MINMAX[1]
            args = [self(a) for a in e.args]
            text = args[0]
            for arg in args[1:]:
                text = f"{fn}({text}, {arg})"
            return text
        raise self._error(f"cannot print {type(e).__name__} {e} as an index")

    def _operand(self, e: sympy.Expr) -> str:
        """|e| parenthesised where it is not an atom."""
        text = self(e)
        if isinstance(e, sympy.Add | sympy.Mul | sympy.Pow) or (e.is_Integer and int(e) < 0):
            return f"({text})"
        return text

    def _print_add(self, e: sympy.Add) -> str:
        # Variables first, the constant term last: "i0 * 64 + i1 - 1".
        terms = [t for t in e.args if not t.is_Number] + [t for t in e.args if t.is_Number]
        out = self(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                out += f" - {self._mul_operand(-term)}"
            else:
                out += f" + {self._mul_operand(term)}"
        return out

    def _mul_operand(self, e: sympy.Expr) -> str:
        return f"({self(e)})" if isinstance(e, sympy.Add) else self(e)

    def _print_mul(self, e: sympy.Mul) -> str:
        coeff, rest = e.as_coeff_Mul()
        if not coeff.is_Integer:
            raise self._error(f"index {e} has a non-integer coefficient")
        factors = [self._operand(f) for f in sympy.Mul.make_args(rest)]
        coeff = int(coeff)
        if coeff == -1:
            return "-" + " * ".join(factors)
        if coeff != 1:
            factors.append(self._literal(coeff))
        return " * ".join(factors)


# ---------------------------------------------------------------------------
# Writer: lines, indentation, CSE scopes
# ---------------------------------------------------------------------------


class CppWriter:
    """C++ statement lines with indentation and a stack of CSE scopes, one per
    open block. Shared by the handler and the kernel generator."""

    def __init__(self, indent: int = 0) -> None:
        self.lines: list[str] = []
        self._indent = indent
        self._scopes: list[dict[str, CppValue]] = [{}]
        self._counter = 0

    def line(self, text: str) -> None:
        self.lines.append("  " * self._indent + text)

    def placeholder(self) -> int:
        """Reserves a line to fill in later (with set_line)."""
        self.lines.append("")
        return len(self.lines) - 1

    def set_line(self, position: int, text: str, indent: int) -> None:
        self.lines[position] = "  " * indent + text

    @property
    def indent(self) -> int:
        return self._indent

    def new_name(self, prefix: str = "t") -> str:
        name = f"{prefix}{self._counter}"
        self._counter += 1
        return name

    @contextmanager
    def block(self, header: str, footer: str = "}") -> Iterator[None]:
        """``header {`` ... ``}`` with a fresh CSE scope inside."""
        self.line(header)
        self._indent += 1
        self._scopes.append({})
        try:
            yield
        finally:
            self._scopes.pop()
            self._indent -= 1
            self.line(footer)

    def lookup(self, key: str) -> CppValue | None:
        for scope in reversed(self._scopes):
            found = scope.get(key)
            if found is not None:
                return found
        return None

    def remember(self, key: str, value: CppValue) -> None:
        self._scopes[-1][key] = value

    def forget(self, predicate: Callable[[str], bool]) -> None:
        for scope in self._scopes:
            for key in [k for k in scope if predicate(k)]:
                del scope[key]

    def emit(self, expr: str, dtype: torch.dtype) -> CppValue:
        """``const T tN = expr;`` unless an identical expression is in scope."""
        found = self.lookup(expr)
        if found is not None and found.dtype == dtype:
            return found
        name = self.new_name()
        self.line(f"const {cpp_type(dtype)} {name} = {expr};")
        value = CppValue(name, dtype)
        self.remember(expr, value)
        return value


# ---------------------------------------------------------------------------
# The ops handler
# ---------------------------------------------------------------------------

# Called for every load first; returns a value for buffers that live in
# registers (LoopKernel.local), None for memory.
LoadHook = Callable[["CppOpsHandler", str, sympy.Expr], CppValue | None]


class CppOpsHandler:
    """OpsHandler[CppValue] that prints C++ into |writer|.

    |buffer_dtypes| gives the element dtype of every buffer a body may load;
    |pointer| the C++ name of a buffer's pointer local; |index| prints index
    expressions; |load_hook| intercepts loads of register-resident buffers.
    After printing, |loaded|, |stored| and |index_errors| say which pointers
    and IndexError objects the kernel must declare."""

    def __init__(
        self,
        writer: CppWriter,
        index: CppIndexPrinter,
        buffer_dtypes: Mapping[str, torch.dtype],
        pointer: Callable[[str], str],
        load_hook: LoadHook | None = None,
    ) -> None:
        self.writer = writer
        self.index = index
        self.buffer_dtypes = buffer_dtypes
        self.pointer = pointer
        self.load_hook = load_hook
        self.loaded: dict[str, None] = {}  # ordered set of buffer names
        self.stored: dict[str, None] = {}
        self.index_errors: dict[str, str] = {}  # what -> IndexError local
        self.indirect_names: set[str] = set()

    # -- helpers ---------------------------------------------------------------
    def _emit(self, expr: str, dtype: torch.dtype) -> CppValue:
        return self.writer.emit(expr, dtype)

    def convert(self, value: CppValue, dtype: torch.dtype) -> str:
        """C++ expression of |value| converted to |dtype| with torch's rules."""
        src = value.dtype
        if src == dtype:
            return value.expr
        if src in REDUCED_FLOATS:
            as_float = CppValue(f"{_TO_FLOAT[src]}({value.expr})", torch.float32)
            return self.convert(as_float, dtype)
        if dtype in REDUCED_FLOATS:
            as_float = self.convert(value, torch.float32)
            return f"{_FROM_FLOAT[dtype]}({as_float})"
        if dtype == torch.bool:
            return f"({value.expr} != 0)"
        if _is_float(src) and _is_int(dtype):
            return f"aotc_math::float_to_int<{cpp_type(dtype)}>({value.expr})"
        return f"static_cast<{cpp_type(dtype)}>({value.expr})"

    def _as(self, value: CppValue, dtype: torch.dtype) -> CppValue:
        if value.dtype == dtype:
            return value
        return self._emit(self.convert(value, dtype), dtype)

    def _compute(self, value: CppValue) -> CppValue:
        """bfloat16/float16 bit patterns as float values."""
        return self._as(value, torch.float32) if value.dtype in REDUCED_FLOATS else value

    def _float(self, value: CppValue) -> CppValue:
        """A floating value (float math on integers computes in float32)."""
        value = self._compute(value)
        return value if _is_float(value.dtype) else self._as(value, torch.float32)

    def _pair(self, a: CppValue, b: CppValue) -> tuple[CppValue, CppValue, torch.dtype]:
        a, b = self._compute(a), self._compute(b)
        if a.dtype != b.dtype:  # lowering makes them equal; promote if not
            dtype = torch.promote_types(a.dtype, b.dtype)
            a, b = self._as(a, dtype), self._as(b, dtype)
        return a, b, a.dtype

    def _unary_float(self, fmt: str, x: CppValue) -> CppValue:
        x = self._float(x)
        return self._emit(fmt.format(x=x.expr, T=cpp_type(x.dtype)), x.dtype)

    def _binary(
        self, fmt: str, a: CppValue, b: CppValue, out: torch.dtype | None = None
    ) -> CppValue:
        a, b, dtype = self._pair(a, b)
        return self._emit(fmt.format(a=a.expr, b=b.expr, T=cpp_type(dtype)), out or dtype)

    def _bool(self, value: CppValue) -> CppValue:
        return self._as(value, torch.bool)

    # -- memory and constants --------------------------------------------------
    def load(self, name: str, index: sympy.Expr) -> CppValue:
        if self.load_hook is not None:
            local = self.load_hook(self, name, index)
            if local is not None:
                return local
        dtype = self.buffer_dtypes.get(name)
        if dtype is None:
            raise CodegenError(
                f"load of buffer {name!r} whose dtype is unknown (generate_loop_kernel needs "
                "buffer_dtypes for the buffers a kernel reads but does not compute)"
            )
        self.loaded.setdefault(name)
        return self._emit(f"{self.pointer(name)}[{self.index(index)}]", dtype)

    def store(self, name: str, index: sympy.Expr, value: CppValue) -> None:
        """Writes |value| (converted to the buffer's dtype) to memory."""
        dtype = self.buffer_dtypes[name]
        pointer = self.pointer(name)
        self.stored.setdefault(name)
        self.writer.line(f"{pointer}[{self.index(index)}] = {self.convert(value, dtype)};")
        # Loads of this buffer cached before the store are stale now.
        self.writer.forget(lambda key: key.startswith(pointer + "["))

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> CppValue:
        if dtype in REDUCED_FLOATS:  # computed in float32, rounded like eager
            value = float(torch.tensor(float(value), dtype=dtype).float().item())
            dtype = torch.float32
        return CppValue(cpp_literal(value, dtype), dtype)

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> CppValue:
        value = self._emit(self.index(expr), torch.int64)  # index arithmetic is int64
        return self._as(value, dtype)

    def indirect_indexing(
        self, value: CppValue, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        error = self.index_errors.get(name)
        if error is None:
            error = self.index_errors[name] = f"index_error{len(self.index_errors)}"
        value = self._as(value, torch.int64)
        no_wrap = "" if wrap else ", false"  # negatives are out of range
        expr = f"aotc_rt::checked_index({value.expr}, {self.index(size)}, {error}{no_wrap})"
        found = self.writer.lookup(expr)
        if found is None:
            found = CppValue(self.writer.new_name("idx"), torch.int64)
            self.writer.line(f"const int64_t {found.expr} = {expr};")
            self.writer.remember(expr, found)
            self.indirect_names.add(found.expr)
        return sympy.Symbol(found.expr, integer=True, nonnegative=True)

    def to_dtype(self, value: CppValue, dtype: torch.dtype) -> CppValue:
        return self._as(value, dtype)

    def where(self, cond: CppValue, a: CppValue, b: CppValue) -> CppValue:
        cond = self._bool(cond)
        a, b, dtype = self._pair(a, b)
        return self._emit(f"{cond.expr} ? {a.expr} : {b.expr}", dtype)

    def masked(
        self, mask: CppValue, body: Callable[[], CppValue], other: float | int | bool
    ) -> CppValue:
        mask = self._bool(mask)
        name = self.writer.new_name()
        position, indent = self.writer.placeholder(), self.writer.indent
        with self.writer.block(f"if ({mask.expr}) {{"):
            result = body()
            self.writer.line(f"{name} = {result.expr};")
        self.writer.set_line(
            position,
            f"{cpp_type(result.dtype)} {name} = {cpp_literal(other, result.dtype)};",
            indent,
        )
        return CppValue(name, result.dtype)

    # -- unary math --------------------------------------------------------------
    def neg(self, x: CppValue) -> CppValue:
        x = self._compute(x)
        if x.dtype == torch.bool:
            return x
        return self._emit(f"aotc_math::neg({x.expr})", x.dtype)

    def abs(self, x: CppValue) -> CppValue:
        x = self._compute(x)
        if x.dtype == torch.bool:
            return x
        return self._emit(f"aotc_math::abs({x.expr})", x.dtype)

    def exp(self, x: CppValue) -> CppValue:
        return self._unary_float("std::exp({x})", x)

    def expm1(self, x: CppValue) -> CppValue:
        return self._unary_float("std::expm1({x})", x)

    def log(self, x: CppValue) -> CppValue:
        return self._unary_float("std::log({x})", x)

    def log1p(self, x: CppValue) -> CppValue:
        return self._unary_float("std::log1p({x})", x)

    def sqrt(self, x: CppValue) -> CppValue:
        return self._unary_float("std::sqrt({x})", x)

    def rsqrt(self, x: CppValue) -> CppValue:
        return self._unary_float("aotc_math::rsqrt({x})", x)

    def reciprocal(self, x: CppValue) -> CppValue:
        return self._unary_float("aotc_math::reciprocal({x})", x)

    def sin(self, x: CppValue) -> CppValue:
        return self._unary_float("std::sin({x})", x)

    def cos(self, x: CppValue) -> CppValue:
        return self._unary_float("std::cos({x})", x)

    def tan(self, x: CppValue) -> CppValue:
        return self._unary_float("std::tan({x})", x)

    def tanh(self, x: CppValue) -> CppValue:
        return self._unary_float("std::tanh({x})", x)

    def sigmoid(self, x: CppValue) -> CppValue:
        return self._unary_float("aotc_math::sigmoid({x})", x)

    def erf(self, x: CppValue) -> CppValue:
        return self._unary_float("aotc_math::erf({x})", x)

    def _rounding(self, fmt: str, x: CppValue) -> CppValue:
        x = self._compute(x)
        if not _is_float(x.dtype):
            return x  # integers are already whole
        return self._emit(fmt.format(x=x.expr), x.dtype)

    def floor(self, x: CppValue) -> CppValue:
        return self._rounding("std::floor({x})", x)

    def ceil(self, x: CppValue) -> CppValue:
        return self._rounding("std::ceil({x})", x)

    def trunc(self, x: CppValue) -> CppValue:
        return self._rounding("std::trunc({x})", x)

    def round(self, x: CppValue) -> CppValue:
        return self._rounding("aotc_math::round_half_even({x})", x)

    def sign(self, x: CppValue) -> CppValue:
        x = self._compute(x)
        if x.dtype == torch.bool:
            return x
        return self._emit(f"aotc_math::sign({x.expr})", x.dtype)

    def isnan(self, x: CppValue) -> CppValue:
        x = self._compute(x)
        return self._emit(f"aotc_math::isnan({x.expr})", torch.bool)

    def isinf(self, x: CppValue) -> CppValue:
        x = self._compute(x)
        return self._emit(f"aotc_math::isinf({x.expr})", torch.bool)

    def logical_not(self, x: CppValue) -> CppValue:
        return self._emit(f"!{self._bool(self._compute(x)).expr}", torch.bool)

    def bitwise_not(self, x: CppValue) -> CppValue:
        if x.dtype == torch.bool:
            return self._emit(f"!{x.expr}", torch.bool)
        if not _is_int(x.dtype):
            raise CodegenError(f"bitwise_not of {x.dtype}")
        return self._emit(f"static_cast<{cpp_type(x.dtype)}>(~{x.expr})", x.dtype)

    # -- binary ------------------------------------------------------------------
    def _arith(self, op: str, wrapping: str, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if _is_int(dtype):
            return self._emit(f"aotc_math::{wrapping}({a.expr}, {b.expr})", dtype)
        return self._emit(f"{a.expr} {op} {b.expr}", dtype)

    def add(self, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:  # bool + bool is logical or in torch
            return self._emit(f"{a.expr} || {b.expr}", dtype)
        return self._arith("+", "wrapping_add", a, b)

    def sub(self, a: CppValue, b: CppValue) -> CppValue:
        return self._arith("-", "wrapping_sub", a, b)

    def mul(self, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} && {b.expr}", dtype)
        return self._arith("*", "wrapping_mul", a, b)

    def truediv(self, a: CppValue, b: CppValue) -> CppValue:
        a, b = self._float(a), self._float(b)
        return self._binary("{a} / {b}", a, b)

    def floordiv(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("aotc_math::floordiv<{T}>({a}, {b})", a, b)

    def mod(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("aotc_math::mod<{T}>({a}, {b})", a, b)

    def pow(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("aotc_math::pow<{T}>({a}, {b})", a, b)

    def atan2(self, a: CppValue, b: CppValue) -> CppValue:
        a, b = self._float(a), self._float(b)
        return self._binary("std::atan2({a}, {b})", a, b)

    def maximum(self, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} || {b.expr}", dtype)
        return self._emit(f"aotc_math::maximum<{cpp_type(dtype)}>({a.expr}, {b.expr})", dtype)

    def minimum(self, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if dtype == torch.bool:
            return self._emit(f"{a.expr} && {b.expr}", dtype)
        return self._emit(f"aotc_math::minimum<{cpp_type(dtype)}>({a.expr}, {b.expr})", dtype)

    def eq(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} == {b}", a, b, torch.bool)

    def ne(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} != {b}", a, b, torch.bool)

    def lt(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} < {b}", a, b, torch.bool)

    def le(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} <= {b}", a, b, torch.bool)

    def gt(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} > {b}", a, b, torch.bool)

    def ge(self, a: CppValue, b: CppValue) -> CppValue:
        return self._binary("{a} >= {b}", a, b, torch.bool)

    def _logical(self, op: str, a: CppValue, b: CppValue) -> CppValue:
        a, b = self._bool(self._compute(a)), self._bool(self._compute(b))
        return self._emit(f"{a.expr} {op} {b.expr}", torch.bool)

    def logical_and(self, a: CppValue, b: CppValue) -> CppValue:
        return self._logical("&&", a, b)

    def logical_or(self, a: CppValue, b: CppValue) -> CppValue:
        return self._logical("||", a, b)

    def logical_xor(self, a: CppValue, b: CppValue) -> CppValue:
        return self._logical("!=", a, b)

    def _bitwise(self, op: str, a: CppValue, b: CppValue) -> CppValue:
        a, b, dtype = self._pair(a, b)
        if _is_float(dtype):
            raise CodegenError(f"bitwise {op} of {dtype}")
        if dtype == torch.bool:
            return self._emit(f"{a.expr} {op} {b.expr}", dtype)
        return self._emit(f"static_cast<{cpp_type(dtype)}>({a.expr} {op} {b.expr})", dtype)

    def bitwise_and(self, a: CppValue, b: CppValue) -> CppValue:
        return self._bitwise("&", a, b)

    def bitwise_or(self, a: CppValue, b: CppValue) -> CppValue:
        return self._bitwise("|", a, b)

    def bitwise_xor(self, a: CppValue, b: CppValue) -> CppValue:
        return self._bitwise("^", a, b)

    # -- named math functions ([Note: math functions] in aot/ir/ops.py) ------------
    def math_fn(self, name: str, *args: CppValue) -> CppValue:
        """``aotc_math::name(args)``: std:: functions wrapped in
        aotc_cpu_math.h, the special functions in aotc_cpu_special.h."""
        if MATH_FUNCTIONS.get(name) != len(args):
            raise CodegenError(f"math_fn {name!r} with {len(args)} operands")
        values = [self._float(a) for a in args]
        dtype = values[0].dtype
        for value in values[1:]:
            dtype = torch.promote_types(dtype, value.dtype)
        operands = ", ".join(self._as(v, dtype).expr for v in values)
        return self._emit(f"aotc_math::{name}({operands})", dtype)
