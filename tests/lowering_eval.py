"""A numeric ops handler for lowering tests: evaluates a TensorValue's loader
at every index at once (each loop variable is a broadcast arange) on torch
tensors, and runs a LoweredGraph's Pointwise nodes in order.

It checks what the IR promises: every load is inside its buffer (where not
masked), indirect indices are in range (an IndexError carrying the name
otherwise), binary operands have one dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from aot.ir.graph import LoweredGraph
from aot.ir.nodes import ComputedBuffer, Reduction
from aot.ir.symbols import index_vars, reduction_vars

HALF = (torch.bfloat16, torch.float16)


class EvalOps:
    def __init__(self, buffers: dict[str, torch.Tensor], env: dict[sympy.Symbol, Any]) -> None:
        self.buffers = buffers  # name -> flat storage
        self.env = env
        self.masks: list[torch.Tensor] = []
        self.indirect = 0

    def index(self, expr: Any) -> torch.Tensor:
        return torch.as_tensor(self._eval(sympy.sympify(expr)), dtype=torch.int64)

    def _eval(self, e: sympy.Basic) -> Any:
        if e.is_Integer:
            return int(e)
        if e.is_Symbol:
            return self.env[e]
        args = [self._eval(a) for a in e.args]
        name = type(e).__name__
        if isinstance(e, sympy.Add):
            out = args[0]
            for a in args[1:]:
                out = out + a
            return out
        if isinstance(e, sympy.Mul):
            out = args[0]
            for a in args[1:]:
                out = out * a
            return out
        if name == "FloorDiv":
            return _floordiv(args[0], args[1])
        if name == "ModularIndexing":
            return _floordiv(args[0], args[1]) % args[2]
        if name in ("Min", "Max"):
            fn = torch.minimum if name == "Min" else torch.maximum
            out = torch.as_tensor(args[0])
            for a in args[1:]:
                out = fn(out, torch.as_tensor(a))
            return out
        raise NotImplementedError(f"index expression {e}")

    def _mask(self) -> torch.Tensor | None:
        if not self.masks:
            return None
        out = self.masks[0]
        for m in self.masks[1:]:
            out = out & m
        return out

    def load(self, name: str, index: Any) -> torch.Tensor:
        data = self.buffers[name]
        idx = self.index(index)
        mask = self._mask()
        if mask is not None:
            idx = torch.where(mask, idx, torch.zeros((), dtype=torch.int64))
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= data.numel()):
            raise AssertionError(f"load of {name} out of bounds ({index})")
        return data[idx]

    def constant(self, value: Any, dtype: torch.dtype) -> torch.Tensor:
        assert dtype not in HALF, "bf16/fp16 constant (bodies compute in float32)"
        return torch.tensor(value, dtype=dtype)

    def index_expr(self, expr: Any, dtype: torch.dtype) -> torch.Tensor:
        return self.index(expr).to(dtype)

    def indirect_indexing(
        self, value: torch.Tensor, size: Any, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        assert not value.dtype.is_floating_point, "indirect index of a float"
        n = int(self._eval(sympy.sympify(size)))
        v = value.to(torch.int64)
        if wrap:
            v = torch.where(v < 0, v + n, v)
        bad = (v < 0) | (v >= n)
        if (mask := self._mask()) is not None:
            bad = bad & mask
        if bool(bad.any()):
            raise IndexError(f"{name}: out of range")
        symbol = sympy.Symbol(f"ind{self.indirect}", integer=True, nonnegative=True)
        self.indirect += 1
        self.env[symbol] = v
        return symbol

    def to_dtype(self, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return value.to(dtype)

    def where(self, cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert cond.dtype == torch.bool and a.dtype == b.dtype, (cond.dtype, a.dtype, b.dtype)
        assert a.dtype not in HALF, "where on bf16/fp16 (bodies compute in float32)"
        return torch.where(cond, a, b)

    def masked(self, mask: torch.Tensor, body: Callable[[], Any], other: Any) -> torch.Tensor:
        self.masks.append(mask)
        try:
            value = body()
        finally:
            self.masks.pop()
        return torch.where(mask, value, torch.tensor(other, dtype=value.dtype))


def _floordiv(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.div(torch.as_tensor(a), b, rounding_mode="floor")
    return a // b


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def op(self: EvalOps, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert a.dtype == b.dtype, f"operands of one dtype expected: {a.dtype}, {b.dtype}"
        assert a.dtype not in HALF, "arithmetic on bf16/fp16 (bodies compute in float32)"
        return fn(a, b)

    return op


for _name, _fn in {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "truediv": torch.div,
    "mod": torch.remainder,
    "lt": torch.lt,
    "le": torch.le,
    "gt": torch.gt,
    "ge": torch.ge,
    "eq": torch.eq,
    "ne": torch.ne,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
}.items():
    setattr(EvalOps, _name, _binary(_fn))
EvalOps.logical_not = lambda self, a: torch.logical_not(a)  # type: ignore[attr-defined]


def _fix(sizes: Sequence[Any], symbols: dict[sympy.Symbol, int]) -> list[int]:
    return [int(sympy.sympify(s).subs(symbols)) for s in sizes]


def evaluate(
    value: Any, buffers: dict[str, torch.Tensor], symbols: dict[sympy.Symbol, int] | None = None
) -> torch.Tensor:
    """Every element of TensorValue |value| as a tensor of its sizes, with
    dynamic size symbols set to |symbols|."""
    sizes = _fix(value.get_size(), symbols or {})
    grids = torch.meshgrid(*[torch.arange(s) for s in sizes], indexing="ij") if sizes else []
    variables = index_vars(len(sizes))
    env: dict[sympy.Symbol, Any] = dict(symbols or {})
    env.update(zip(variables, grids, strict=True))
    ops = EvalOps(buffers, env)
    out = torch.as_tensor(value.make_loader()(ops, variables))
    assert out.dtype == value.dtype, f"body gives {out.dtype}, value says {value.dtype}"
    return out.expand(sizes).clone()


def evaluate_reduction(
    red: Reduction, buffers: dict[str, torch.Tensor], symbols: dict[sympy.Symbol, int] | None = None
) -> torch.Tensor:
    """A Reduction's result, looping over its reduction ranges one point at a time."""
    sizes = _fix(red.ranges, symbols or {})
    rsizes = _fix(red.reduction_ranges, symbols or {})
    grids = torch.meshgrid(*[torch.arange(s) for s in sizes], indexing="ij") if sizes else []
    variables, rvars = index_vars(len(sizes)), reduction_vars(len(rsizes))
    welford = red.reduction_type == "welford"
    combine = {
        "sum": torch.add,
        "prod": torch.mul,
        "max": torch.maximum,
        "min": torch.minimum,
        "any": torch.logical_or,
        "all": torch.logical_and,
        "welford": None,
    }[red.reduction_type]
    acc = None
    moments = [torch.zeros(sizes, dtype=red.src_dtype) for _ in range(3)]  # mean, m2, weight
    for point in (torch.cartesian_prod(*[torch.arange(r) for r in rsizes]).reshape(-1, len(rsizes))
                  if rsizes else torch.zeros(1, 0, dtype=torch.int64)):  # fmt: skip
        env: dict[sympy.Symbol, Any] = dict(symbols or {})
        env.update(zip(variables, grids, strict=True))
        env.update(zip(rvars, [int(p) for p in point], strict=True))
        ops = EvalOps(buffers, env)
        value = torch.as_tensor(red.inner_fn(ops, variables, rvars)).expand(sizes)
        assert value.dtype == red.src_dtype, (value.dtype, red.src_dtype)
        if welford:  # Welford's update ([Note: multi-output reductions])
            mean, m2, weight = moments
            weight = weight + 1
            delta = value - mean
            mean = mean + delta / weight
            moments = [mean, m2 + delta * (value - mean), weight]
            continue
        acc = value if acc is None else combine(acc, value)
    if welford:
        mean, m2, weight = moments
        nan = torch.full_like(mean, float("nan"))
        acc = torch.where(weight > 0, mean, nan) if red.output_index == 0 else m2  # type: ignore[attr-defined]
    assert acc is not None, "empty reduction"
    return acc.to(red.dtype)


def run_nodes(
    nodes: Sequence[Any],
    buffers: dict[str, torch.Tensor],
    symbols: dict[sympy.Symbol, int] | None = None,
) -> None:
    """Computes every ComputedBuffer of |nodes| into |buffers| (flat)."""
    for node in nodes:
        assert isinstance(node, ComputedBuffer), node
        if isinstance(node.data, Reduction):
            buffers[node.name] = evaluate_reduction(node.data, buffers, symbols).reshape(-1)
        else:
            buffers[node.name] = evaluate(node.data, buffers, symbols).reshape(-1)


def run_graph(
    graph: LoweredGraph,
    inputs: Sequence[torch.Tensor],
    symbols: dict[sympy.Symbol, int] | None = None,
    buffers: dict[str, torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Runs |graph| (loop nodes only, no extern kernels) on |inputs|; returns its outputs.
    Every buffer (flat) is left in |buffers| when given."""
    symbols = symbols or {}
    buffers = buffers if buffers is not None else {}
    buffers |= {
        b.name: t.contiguous().reshape(-1) for b, t in zip(graph.inputs, inputs, strict=True)
    }
    for const in graph.constants:
        buffers[const.buffer.name] = const.value.reshape(-1).clone()
    run_nodes(graph.nodes, buffers, symbols)
    return [buffers[b.name].reshape(_fix(b.get_size(), symbols)) for b in graph.outputs]
