"""Size and offset expressions (sympy) printed as C++ int64 code.

[Note: size expressions] Sizes, strides, offsets and byte counts are sympy
expressions over the size symbols of the graph (s0, s1, ...; graph.symbols).
Generated code reads symbol k from an int64 array: ``ctx.sym[k]`` inside a
kernel, ``sym[k]`` inside the wrapper, so the value of a symbol is computed once
per run (in plan() and run(), from the input sizes) and every expression is
plain integer arithmetic over that array.

Operands of FloorDiv and ModularIndexing are non-negative (aot/ir/symbols.py,
[Note: index functions]), where C++'s truncating ``/`` and ``%`` agree with
floor division, so they print as ``/`` and ``%``. Integer literals are int64
where they need it (``LL``); sympy folds constant subexpressions, so two
literals are never multiplied in int. Symbols that are not size symbols (loop
variables i0, r0, ...) print as their own name: a kernel that declares them as
local int64 variables can print index expressions with the same printer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sympy

from ...ir.symbols import FloorDiv, ModularIndexing

SizeExpr = Callable[[sympy.Expr], str]

# C++ precedence levels, loosest first: a subexpression printed at a lower
# level than its context needs parentheses.
_ADD, _MUL, _ATOM = 1, 2, 3
_INT32_MAX = 2**31 - 1


class SizePrinter:
    """Prints sympy integer expressions as C++; ``printer(expr) -> str``.

    |symbols| maps each size symbol to the C++ text that reads it
    (``{s0: "ctx.sym[0]"}``); with |strict|, any other symbol is an error.
    Results are cached per printer (sympy work dominates compile time if
    careless).
    """

    def __init__(self, symbols: Mapping[sympy.Symbol, str], strict: bool = False) -> None:
        self._symbols = dict(symbols)
        self._strict = strict  # unknown symbols raise instead of printing their name
        self._cache: dict[sympy.Expr, str] = {}

    def __call__(self, expr: sympy.Expr | int) -> str:
        expr = sympy.sympify(expr)
        text = self._cache.get(expr)
        if text is None:
            text = self._cache[expr] = self._print(expr)[0]
        return text

    # -- printing ------------------------------------------------------------ #

    def _paren(self, expr: sympy.Expr, level: int) -> str:
        text, own = self._print(expr)
        return text if own >= level else f"({text})"

    def _print(self, e: sympy.Expr) -> tuple[str, int]:
        if e.is_Integer:
            return _literal(int(e)), _ATOM if int(e) >= 0 else _MUL
        if e.is_Symbol:
            text = self._symbols.get(e)
            if text is None:
                if self._strict:
                    raise ValueError(f"size expression uses {e}, which no input dim defines")
                text = e.name
            return text, _ATOM
        if isinstance(e, FloorDiv):
            base, divisor = e.args
            return f"{self._paren(base, _MUL)} / {self._paren(divisor, _ATOM)}", _MUL
        if isinstance(e, ModularIndexing):
            base, divisor, modulus = e.args
            if divisor != 1:
                base = FloorDiv(base, divisor)
            return f"{self._paren(base, _MUL)} % {self._paren(modulus, _ATOM)}", _MUL
        if isinstance(e, sympy.Mod):
            return f"{self._paren(e.args[0], _MUL)} % {self._paren(e.args[1], _ATOM)}", _MUL
        if e.is_Add:
            return self._print_add(e), _ADD
        if e.is_Mul:
            return self._print_mul(e)
        if e.is_Pow:
            base, exp = e.args
            if exp.is_Integer and int(exp) > 0:
                return " * ".join([self._paren(base, _ATOM)] * int(exp)), _MUL
        if isinstance(e, sympy.Max | sympy.Min):
            return self._print_minmax(e), _ATOM
        if isinstance(e, sympy.floor | sympy.ceiling):
            return self._print_rounding(e), _MUL
        raise NotImplementedError(f"cannot print size expression {e} ({type(e).__name__}) as C++")

    def _print_add(self, e: sympy.Expr) -> str:
        terms = sorted(sympy.Add.make_args(e), key=_term_order)
        parts: list[str] = []
        for term in terms:
            coeff, _ = term.as_coeff_Mul()
            negative = bool(coeff.is_negative)
            text = self._paren(-term if negative else term, _MUL)
            if not parts:
                parts.append(f"-{self._paren(-term, _ATOM)}" if negative else text)
            else:
                parts.append(f"{'-' if negative else '+'} {text}")
        return " ".join(parts)

    def _print_mul(self, e: sympy.Expr) -> tuple[str, int]:
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_Rational and not coeff.is_Integer:
            # p/q * rest is an integer: print (p * rest) / q.
            numerator = sympy.Integer(coeff.p) * rest
            return f"{self._paren(numerator, _MUL)} / {_literal(int(coeff.q))}", _MUL
        factors = sorted(sympy.Mul.make_args(rest), key=sympy.default_sort_key)
        # Only a leading factor may go unparenthesised: after "64 * ", a
        # division must keep its parentheses (64 * (x / 64), not 64 * x / 64).
        lead = _MUL if coeff in (1, -1) else _ATOM
        texts = [self._paren(f, lead if i == 0 else _ATOM) for i, f in enumerate(factors)]
        if coeff == -1:
            return "-" + (texts[0] if len(texts) == 1 else f"({' * '.join(texts)})"), _MUL
        if coeff != 1:
            texts.insert(0, self._paren(coeff, _MUL))
        return " * ".join(texts), _MUL

    def _print_minmax(self, e: sympy.Expr) -> str:
        op = ">" if isinstance(e, sympy.Max) else "<"
        args = sorted(e.args, key=sympy.default_sort_key)
        text = self._paren(args[0], _ATOM)
        for arg in args[1:]:
            a = self._paren(arg, _ATOM)
            text = f"({a} {op} {text} ? {a} : {text})"
        return text

    def _print_rounding(self, e: sympy.Expr) -> str:
        numerator, denominator = sympy.fraction(sympy.together(e.args[0]))
        if not denominator.is_Integer or int(denominator) <= 0:
            raise NotImplementedError(f"cannot print size expression {e} as C++")
        q = int(denominator)
        if isinstance(e, sympy.ceiling) and q != 1:
            numerator = numerator + (q - 1)
        if q == 1:
            return self._paren(numerator, _MUL)
        return f"{self._paren(numerator, _MUL)} / {_literal(q)}"


def _literal(value: int) -> str:
    return str(value) if -_INT32_MAX <= value <= _INT32_MAX else f"{value}LL"


def _term_order(term: sympy.Expr) -> tuple[int, object]:
    """Constant terms last; the rest in sympy's canonical order."""
    return (1 if term.is_Number else 0, sympy.default_sort_key(term))


def symbol_ids(symbols: Sequence[sympy.Symbol]) -> dict[sympy.Symbol, int]:
    """Each size symbol's index in the sym[] array: its position in |symbols|
    (graph.symbols order)."""
    return {s: k for k, s in enumerate(symbols)}


def make_size_expr(
    symbols: Sequence[sympy.Symbol], array: str = "ctx.sym", strict: bool = False
) -> SizePrinter:
    """The printer generated kernels use: symbol k reads ``<array>[k]``."""
    return SizePrinter({s: f"{array}[{k}]" for k, s in enumerate(symbols)}, strict)


def size_text(expr: sympy.Expr) -> str:
    """The printable form of a size for messages and specs: "8", "s0", "2*s0"."""
    return str(sympy.sympify(expr)).replace(" ", "")


def is_static(expr: sympy.Expr) -> bool:
    return bool(sympy.sympify(expr).is_Integer)
