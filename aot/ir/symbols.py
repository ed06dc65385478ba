"""Symbolic index arithmetic.

[Note: index functions] Index expressions are sympy expressions over loop
variables (i0, i1, ... for the iteration ranges; r0, r1, ... for reduction
ranges) and size symbols (s0, s1, ... for dynamic dims). Integer division and
modulo use aotc's own FloorDiv and ModularIndexing, not sympy's floor/Mod: they
are cheap to simplify and print straight to C++ (all operands are
non-negative in index arithmetic, where floor and truncation agree).

[Note: empty tensors] A static size-0 dim makes the strides derived from
the sizes after it 0 (a flattened parallel index decomposed by a product of
sizes, a reshape's grouping), so index math meets zero divisors. Nothing
evaluates an index of an empty iteration space, so FloorDiv and
ModularIndexing by 0 are simply 0 (as the C++ printer's `//` and `%`), and
codegen emits an empty body for a kernel whose outer ranges are empty.
Empty reductions are ordinary: their loops run zero times and store the
identity (sum 0, prod 1, any false; Welford's mean NaN), as eager does.
Dynamic sizes are never 0 (export specialises 0 and 1), so only static
sizes meet these cases.
"""

from __future__ import annotations

import functools

import sympy


class FloorDiv(sympy.Function):
    """FloorDiv(a, b) = floor(a / b) for non-negative integer a and positive b;
    0 for b == 0 (see [Note: empty tensors])."""

    is_integer = True
    nargs = (2,)

    @classmethod
    def eval(cls, base: sympy.Expr, divisor: sympy.Expr) -> sympy.Expr | None:
        if divisor == 0:
            # Only in the index math of an empty tensor (a stride past a size-0
            # dim), which no iteration evaluates; 0 as the C++ printer's `//`.
            return sympy.Integer(0)
        if divisor == 1:
            return base
        if base == 0:
            return sympy.Integer(0)
        if base.is_Integer and divisor.is_Integer:
            return sympy.Integer(int(base) // int(divisor))
        if isinstance(base, FloorDiv):  # (a // b) // c == a // (b * c)
            return FloorDiv(base.args[0], base.args[1] * divisor)
        if divisor.is_Integer and base.is_Add:
            # Pull out terms that are exact multiples: (c*k + x) // c == k + x // c
            # is only valid when 0 <= x; index terms are non-negative.
            divisible = [t for t in base.args if _multiple_of(t, divisor)]
            if divisible:
                rest = sympy.Add(*[t for t in base.args if t not in divisible])
                quotient = sympy.Add(*[t / divisor for t in divisible])
                return quotient + FloorDiv(rest, divisor)
        if divisor.is_Integer and _multiple_of(base, divisor):
            return base / divisor
        return None


class ModularIndexing(sympy.Function):
    """ModularIndexing(x, div, mod) = (x // div) % mod for non-negative x."""

    is_integer = True
    nargs = (3,)

    @classmethod
    def eval(cls, base: sympy.Expr, divisor: sympy.Expr, modulus: sympy.Expr) -> sympy.Expr | None:
        if base == 0 or modulus == 1 or divisor == 0 or modulus == 0:
            return sympy.Integer(0)  # (zero divisors: see FloorDiv.eval)
        if base.is_Integer and divisor.is_Integer and modulus.is_Integer:
            return sympy.Integer((int(base) // int(divisor)) % int(modulus))
        return None


def _multiple_of(term: sympy.Expr, divisor: sympy.Expr) -> bool:
    coeff, _ = term.as_coeff_Mul()
    return bool(coeff.is_Integer and divisor.is_Integer and int(coeff) % int(divisor) == 0)


def merge_div_mod(expr: sympy.Expr) -> sympy.Expr:
    """|expr| with each pair c*m*FloorDiv(x, d*m) + c*ModularIndexing(x, d, m)
    merged into c*FloorDiv(x, d) (x // d split into its high and low digits,
    put back together): what a view that splits a dim and a view that merges
    it again leave in an index, e.g. 8192*(i0 // 32) + 256*(i0 % 32) is
    256*i0."""
    expr = sympy.expand(expr)
    terms = list(expr.args) if expr.is_Add else [expr]
    changed = True
    while changed:
        changed = False
        for a in terms:
            coeff_a, mod = a.as_coeff_Mul()
            if not isinstance(mod, ModularIndexing):
                continue
            x, d, m = mod.args
            for b in terms:
                coeff_b, div = b.as_coeff_Mul()
                if isinstance(div, FloorDiv) and div.args[0] == x and div.args[1] == d * m:
                    if sympy.simplify(coeff_b - coeff_a * m) == 0:
                        terms.remove(a)
                        terms.remove(b)
                        terms.append(coeff_a * FloorDiv(x, d))
                        changed = True
                        break
            if changed:
                break
    return sympy.Add(*terms)


@functools.cache
def _var(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, nonnegative=True)


def index_vars(n: int, prefix: str = "i") -> list[sympy.Symbol]:
    """Loop variables i0..i{n-1} (integer, non-negative)."""
    return [_var(f"{prefix}{k}") for k in range(n)]


def reduction_vars(n: int) -> list[sympy.Symbol]:
    """Reduction loop variables r0..r{n-1}."""
    return index_vars(n, "r")


def size_symbol(name: str) -> sympy.Symbol:
    """A dynamic size (positive integer)."""
    return sympy.Symbol(name, integer=True, positive=True)


def contiguous_strides(sizes: list[sympy.Expr]) -> list[sympy.Expr]:
    """Row-major strides for |sizes| (size-1 and size-0 dims counted as 1)."""
    strides: list[sympy.Expr] = []
    stride: sympy.Expr = sympy.Integer(1)
    for size in reversed(sizes):
        strides.append(stride)
        stride = stride * sympy.Max(size, 1) if not size.is_Integer else stride * max(int(size), 1)
    return list(reversed(strides))


def flat_index(index: list[sympy.Expr], strides: list[sympy.Expr]) -> sympy.Expr:
    return sympy.Add(*[i * s for i, s in zip(index, strides, strict=True)])


def product(sizes: list[sympy.Expr]) -> sympy.Expr:
    return sympy.Mul(*sizes) if sizes else sympy.Integer(1)
