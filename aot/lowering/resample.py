"""Lowerings of resampling as loop kernels: upsample nearest, nearest-exact,
linear, bilinear, trilinear, bicubic, their antialiased variants and
grid_sampler 2-d/3-d. Each output element computes its source indices and
weights and reads the input through them (indirect loads, masked where a
read falls outside the input); one Pointwise per op, no index tables.

[Note: resample indices] Eager's CPU kernels (UpSampleKernel.cpp) compute, per
resampled dim, a scale in float (double for float64 inputs):
- area_pixel_compute_scale: with align_corners (in - 1) / (out - 1), 0 for a
  single output; otherwise compute_scales_value: 1 / scale when the op was
  given a scale (> 0), else in / out. The given scale matters: .vec with
  scale_factors passes them on, and F.interpolate(recompute_scale_factor=
  False) keeps them, so 1 / 1.7 is used, not in / floor(in * 1.7);
- area_pixel_compute_source_index: scale * o with align_corners, else
  scale * (o + 0.5) - 0.5, clamped at 0 except for cubic;
- nearest: floor(scale * o); nearest-exact: floor(source + 0.5); both
  capped at in - 1;
- linear: i0 = min(floor(source), in - 1), lambda = clamp(source - i0, 0, 1),
  i1 = i0 + 1 unless at the end; a dim whose output size equals its input
  size is copied (eager's special case, whatever the scale);
- cubic: i = floor(source), t = clamp(source - i, 0, 1), taps i-1..i+2
  clamped into [0, in - 1], weights of cubic convolution with A = -0.75.
The same float operations run in the kernel (no fast-math, no contraction),
so indices match eager exactly. Static nearest indices that follow a simple
pattern (a copy, a stride, o // k) are plain index expressions, with no float
math and no indirect load. Taps combine as eager's generic kernel does, the
first resampled dim outermost: sum_a w_a * (sum_b w_b * x[a, b]). bf16 values
are computed in float32 and rounded once at the end, like eager (which keeps
its weights in bf16 in one path and in float in another: the float32
reference of the coverage check accepts both).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from ..ir.nodes import Pointwise, TensorValue
from ..ir.symbols import FloorDiv
from .common import to_loader
from .context import LoweringContext
from .registry import LoweringRegistry
from .views import Expr, Index, index_value, sym

aten = torch.ops.aten

# A tap: (source index along one dim, its weight value or None for weight 1,
# a mask value or None: where false the tap adds nothing and reads nothing).
Tap = tuple[Expr, Any, Any]
# Static nearest index tables longer than this are not searched for a pattern.
_MAX_TABLE = 1 << 16
# Cubic convolution's A (OpenCV's, used by eager without antialias).
_CUBIC_A = -0.75


@dataclass(frozen=True)
class Axis:
    """One resampled dim: its sizes and the scale the op was given (None: the
    scale follows from the sizes)."""

    size_in: Expr
    size_out: Expr
    scale: float | None

    @property
    def static(self) -> bool:
        return bool(self.size_in.is_Integer and self.size_out.is_Integer)


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    """Index and weight math: float32 (eager's opmath, also for bf16 and
    integer inputs of nearest), float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _np_float(mdt: torch.dtype) -> type[np.floating]:
    return np.float64 if mdt == torch.float64 else np.float32


# -- scales and source positions ([Note: resample indices]) ---------------------


def static_scale(axis: Axis, align_corners: bool, mdt: torch.dtype) -> float:
    """area_pixel_compute_scale for static sizes, rounded as eager rounds it."""
    f = _np_float(mdt)
    n_in, n_out = int(axis.size_in), int(axis.size_out)
    if align_corners:
        return float(f(n_in - 1) / f(n_out - 1)) if n_out > 1 else 0.0
    if axis.scale is not None and axis.scale > 0:
        return float(f(1.0 / axis.scale))
    return float(f(n_in) / f(n_out))


def _scale(ops: Any, axis: Axis, align_corners: bool, mdt: torch.dtype) -> Any:
    """area_pixel_compute_scale as a value (computed in the kernel when a size
    is symbolic)."""
    if axis.static:
        return ops.constant(static_scale(axis, align_corners, mdt), mdt)
    if not align_corners and axis.scale is not None and axis.scale > 0:
        return ops.constant(float(_np_float(mdt)(1.0 / axis.scale)), mdt)
    if not align_corners:
        return ops.truediv(ops.index_expr(axis.size_in, mdt), ops.index_expr(axis.size_out, mdt))
    ratio = ops.truediv(
        ops.index_expr(axis.size_in - 1, mdt), ops.index_expr(axis.size_out - 1, mdt)
    )
    several = ops.gt(index_value(ops, axis.size_out), ops.constant(1, torch.int64))
    return ops.where(several, ratio, ops.constant(0.0, mdt))


def _source(
    ops: Any, scale: Any, o: Expr, align_corners: bool, cubic: bool, mdt: torch.dtype
) -> Any:
    """area_pixel_compute_source_index: output index |o| in input coordinates."""
    at = ops.index_expr(o, mdt)
    if align_corners:
        return ops.mul(scale, at)
    half = ops.constant(0.5, mdt)
    src = ops.sub(ops.mul(scale, ops.add(at, half)), half)
    if cubic:
        return src
    zero = ops.constant(0.0, mdt)
    return ops.where(ops.lt(src, zero), zero, src)


def _floor_index(ops: Any, value: Any, size: Expr) -> Any:
    """min(int64(floor(value)), size - 1), an int64 value."""
    whole = ops.to_dtype(ops.floor(value), torch.int64)
    return ops.minimum(whole, index_value(ops, size - 1))


def _clamp_index(ops: Any, value: Any, size: Expr) -> Any:
    """|value| (int64) clamped into [0, size - 1]."""
    low = ops.maximum(value, ops.constant(0, torch.int64))
    return ops.minimum(low, index_value(ops, size - 1))


def _lambda(ops: Any, src: Any, start: Any, mdt: torch.dtype) -> Any:
    """clamp(src - start, 0, 1): the distance past the first tap."""
    dist = ops.sub(src, ops.to_dtype(start, mdt))
    dist = ops.maximum(dist, ops.constant(0.0, mdt))
    return ops.minimum(dist, ops.constant(1.0, mdt))


# -- nearest ------------------------------------------------------------------


def nearest_table(axis: Axis, exact: bool) -> list[int]:
    """Eager's nearest source index of every output index (static sizes),
    computed in float32 as its kernel does."""
    f = np.float32
    scale = f(static_scale(axis, False, torch.float32))
    at = np.arange(int(axis.size_out)).astype(f)
    if exact:
        src = scale * (at + f(0.5)) - f(0.5)
        src = np.where(src < f(0), f(0), src)
        whole = np.floor(src + f(0.5))
    else:
        whole = np.floor(scale * at)
    return [min(int(v), int(axis.size_in) - 1) for v in whole]


def index_pattern(table: Sequence[int], o: Expr) -> Expr | None:
    """|table| as an index expression of |o| when it is a + b * o or
    a + o // k; None otherwise."""
    first = table[0]
    if len(table) == 1:
        return sympy.Integer(first)
    step = table[1] - first
    if all(v == first + step * i for i, v in enumerate(table)):
        return first + step * o
    run = next((i for i, v in enumerate(table) if v != first), len(table))
    if all(v == first + i // run for i, v in enumerate(table)):
        return first + FloorDiv(o, sympy.Integer(run))
    return None


def _nearest_index(ops: Any, o: Expr, axis: Axis, exact: bool, what: str) -> Expr:
    if axis.static and int(axis.size_out) <= _MAX_TABLE:
        pattern = index_pattern(nearest_table(axis, exact), o)
        if pattern is not None:
            return pattern
    mdt = torch.float32  # eager computes nearest indices in float for every dtype
    scale = _scale(ops, axis, False, mdt)
    if exact:
        src = ops.add(_source(ops, scale, o, False, False, mdt), ops.constant(0.5, mdt))
    else:
        src = ops.mul(scale, ops.index_expr(o, mdt))
    index = _floor_index(ops, src, axis.size_in)
    return ops.indirect_indexing(index, axis.size_in, f"{what}: source index", wrap=False)


# -- linear and cubic taps ----------------------------------------------------


def _linear_taps(
    ops: Any, o: Expr, axis: Axis, align_corners: bool, mdt: torch.dtype, what: str
) -> list[Tap]:
    if axis.static and int(axis.size_in) == int(axis.size_out):
        return [(o, None, None)]  # eager copies a dim whose size does not change
    src = _source(ops, _scale(ops, axis, align_corners, mdt), o, align_corners, False, mdt)
    first = _floor_index(ops, src, axis.size_in)
    lam1 = _lambda(ops, src, first, mdt)
    lam0 = ops.sub(ops.constant(1.0, mdt), lam1)
    second = ops.minimum(
        ops.add(first, ops.constant(1, torch.int64)), index_value(ops, axis.size_in - 1)
    )
    name = f"{what}: source index"
    i0 = ops.indirect_indexing(first, axis.size_in, name, wrap=False)
    i1 = ops.indirect_indexing(second, axis.size_in, name, wrap=False)
    return [(i0, lam0, None), (i1, lam1, None)]


def _cubic_conv1(ops: Any, x: Any, mdt: torch.dtype, a: float = _CUBIC_A) -> Any:
    """((A + 2) * x - (A + 3)) * x * x + 1, for |x| <= 1."""
    inner = ops.sub(ops.mul(ops.constant(a + 2, mdt), x), ops.constant(a + 3, mdt))
    return ops.add(ops.mul(ops.mul(inner, x), x), ops.constant(1.0, mdt))


def _cubic_conv2(ops: Any, x: Any, mdt: torch.dtype, a: float = _CUBIC_A) -> Any:
    """((A * x - 5A) * x + 8A) * x - 4A, for 1 < |x| < 2."""
    inner = ops.sub(ops.mul(ops.constant(a, mdt), x), ops.constant(5 * a, mdt))
    inner = ops.add(ops.mul(inner, x), ops.constant(8 * a, mdt))
    return ops.sub(ops.mul(inner, x), ops.constant(4 * a, mdt))


def cubic_weights(ops: Any, t: Any, mdt: torch.dtype) -> list[Any]:
    """get_cubic_upsample_coefficients: the four tap weights at distance |t|."""
    one = ops.constant(1.0, mdt)
    rest = ops.sub(one, t)
    return [
        _cubic_conv2(ops, ops.add(t, one), mdt),
        _cubic_conv1(ops, t, mdt),
        _cubic_conv1(ops, rest, mdt),
        _cubic_conv2(ops, ops.add(rest, one), mdt),
    ]


def _cubic_taps(
    ops: Any, o: Expr, axis: Axis, align_corners: bool, mdt: torch.dtype, what: str
) -> list[Tap]:
    src = _source(ops, _scale(ops, axis, align_corners, mdt), o, align_corners, True, mdt)
    start = _floor_index(ops, src, axis.size_in)
    weights = cubic_weights(ops, _lambda(ops, src, start, mdt), mdt)
    taps = []
    for j, weight in enumerate(weights):
        at = _clamp_index(ops, ops.add(start, ops.constant(j - 1, torch.int64)), axis.size_in)
        index = ops.indirect_indexing(at, axis.size_in, f"{what}: source index", wrap=False)
        taps.append((index, weight, None))
    return taps


# -- antialiased (separable) filters -------------------------------------------


def _aa_linear(ops: Any, x: Any) -> Any:
    """The triangle filter: 1 - |x| inside (-1, 1)."""
    ax = ops.abs(x)
    one = ops.constant(1.0, torch.float32)
    return ops.where(ops.lt(ax, one), ops.sub(one, ax), ops.constant(0.0, torch.float32))


def _aa_cubic(ops: Any, x: Any) -> Any:
    """Keys' cubic with A = -0.5 (PIL's, used by eager with antialias)."""
    f32, ax = torch.float32, ops.abs(x)
    far = ops.where(
        ops.lt(ax, ops.constant(2.0, f32)),
        _cubic_conv2(ops, ax, f32, -0.5),
        ops.constant(0.0, f32),
    )
    return ops.where(ops.lt(ax, ops.constant(1.0, f32)), _cubic_conv1(ops, ax, f32, -0.5), far)


def _trunc_half(ops: Any, value: Any) -> Any:
    """static_cast<int64_t>(value + 0.5), the + 0.5 in double as eager's."""
    f64 = torch.float64
    return ops.to_dtype(ops.add(ops.to_dtype(value, f64), ops.constant(0.5, f64)), torch.int64)


def _aa_window(
    ops: Any, o: Expr, scale: float, support: float, count: int, n_in: int
) -> tuple[Any, Any, Any]:
    """(center, first source index, taps in the window) of output |o|: the
    input indices within |support| of scale * (o + 0.5), computed as eager
    does (a double product stored as float, truncations in double)."""
    f32, f64, i64 = torch.float32, torch.float64, torch.int64
    half_past = ops.add(ops.index_expr(o, f64), ops.constant(0.5, f64))
    center = ops.to_dtype(ops.mul(ops.constant(scale, f64), half_past), f32)
    low = _trunc_half(ops, ops.sub(center, ops.constant(support, f32)))
    low = ops.maximum(low, ops.constant(0, i64))
    high = _trunc_half(ops, ops.add(center, ops.constant(support, f32)))
    size = ops.sub(ops.minimum(high, ops.constant(n_in, i64)), low)
    size = ops.minimum(ops.maximum(size, ops.constant(0, i64)), ops.constant(count, i64))
    return center, low, size


AAFilter = Callable[[Any, Any], Any]


def _aa_taps(
    ops: Any, o: Expr, axis: Axis, align_corners: bool, interp_size: int, filt: AAFilter, what: str
) -> list[Tap]:
    """_compute_indices_min_size_weights_aa: |count| taps from the window's
    start, filter weights normalized by their sum, taps past the window
    masked. Float32 with eager's double steps."""
    if not axis.static:
        raise ValueError(f"{what}: antialiased resampling needs static sizes")
    n_in = int(axis.size_in)
    if n_in == int(axis.size_out):
        return [(o, None, None)]  # the separable kernel skips unchanged dims
    f32, f64, i64 = torch.float32, torch.float64, torch.int64
    scale = static_scale(axis, align_corners, f32)
    support = float(np.float32(interp_size * 0.5 * (scale if scale >= 1.0 else 1.0)))
    count = int(np.ceil(support)) * 2 + 1
    invscale = float(np.float32(1.0 / scale)) if scale >= 1.0 else 1.0
    center, low, size = _aa_window(ops, o, scale, support, count, n_in)
    raw = []
    for j in range(count):
        src = ops.add(low, ops.constant(j, i64))
        # filter((j + xmin - center + 0.5) * invscale): float, then double
        dist = ops.to_dtype(ops.sub(ops.to_dtype(src, f32), center), f64)
        dist = ops.mul(ops.add(dist, ops.constant(0.5, f64)), ops.constant(invscale, f64))
        inside = ops.lt(ops.constant(j, i64), size)
        weight = ops.where(inside, filt(ops, ops.to_dtype(dist, f32)), ops.constant(0.0, f32))
        raw.append((src, weight, inside))
    total = functools.reduce(ops.add, [weight for _, weight, _ in raw])
    nonzero = ops.ne(total, ops.constant(0.0, f32))
    name = f"{what}: source index"
    return [
        (
            ops.indirect_indexing(
                _clamp_index(ops, src, axis.size_in), axis.size_in, name, wrap=False
            ),
            ops.where(nonzero, ops.truediv(weight, total), weight),
            inside,
        )
        for src, weight, inside in raw
    ]


# -- the kernel -----------------------------------------------------------------


def combine_taps(
    ops: Any, load: Callable[[Any, Index], Any], lead: Index, taps: Sequence[Sequence[Tap]]
) -> Any:
    """sum over the taps of every dim of weight * value, the first dim
    outermost (eager's Interpolate recursion)."""

    def level(k: int, index: list[Expr]) -> Any:
        if k == len(taps):
            return load(ops, index)
        acc = None
        for at, weight, mask in taps[k]:
            inner = [*index, at]
            if mask is None:
                value = level(k + 1, inner)
            else:
                value = ops.masked(mask, lambda inner=inner: level(k + 1, inner), 0.0)
            term = value if weight is None else ops.mul(value, weight)
            acc = term if acc is None else ops.add(acc, term)
        return acc

    return level(0, list(lead))


TapsFn = Callable[[Any, Expr, Axis, torch.dtype], list[Tap]]


def resample(
    ctx: LoweringContext, x: TensorValue, axes: Sequence[Axis], taps_fn: TapsFn, reads: int
) -> Pointwise:
    """The Pointwise of |x| resampled along its last len(axes) dims; taps_fn
    gives one dim's taps for an output index. An unrealized input read more
    than once per output is realized first (not recomputed |reads| times)."""
    if reads > 1:
        x = ctx.realize(x)
    dtype = x.dtype
    mdt = _math_dtype(dtype)
    floating = dtype.is_floating_point
    load = to_loader(x, mdt) if floating else x.make_loader()
    lead_dims = len(x.get_size()) - len(axes)

    def inner(ops: Any, index: Index) -> Any:
        spatial = index[lead_dims:]
        taps = [taps_fn(ops, o, axis, mdt) for o, axis in zip(spatial, axes, strict=True)]
        value = combine_taps(ops, load, index[:lead_dims], taps)
        return ops.to_dtype(value, dtype) if floating and dtype != mdt else value

    size = list(x.get_size()[:lead_dims]) + [a.size_out for a in axes]
    return Pointwise(size, dtype, inner)


# -- grid sampling ----------------------------------------------------------------
# [Note: grid sampling] grid_sampler_2d/3d read input[n, c] at the points of
# |grid| (x, y[, z] in [-1, 1], x along the last dim). Eager's 2-d CPU kernel
# is vectorized (GridSamplerKernel.cpp) and its 3-d one scalar
# (GridSampler.h); their float formulas differ slightly and are followed
# per kernel (GridAxis.vectorized): unnormalize, then border clips and
# reflection reflects (then clips) the coordinate. Bilinear reads 4 (8)
# corners with distance-product weights, nearest rounds half to even,
# bicubic (2-d only) reads 4x4 taps whose coordinates are padded one by one.
# A read outside the input is 0 (masked: never loaded).

GRID_MODES = ("bilinear", "nearest", "bicubic")
GRID_PADDINGS = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class GridAxis:
    """One sampled input dim: its size, the padding mode and eager's kernel."""

    size: Expr
    padding: str
    align_corners: bool
    vectorized: bool


def _fvalue(ops: Any, expr: Expr, mdt: torch.dtype) -> Any:
    """An integer size as a float value (static_cast<float>)."""
    return ops.constant(float(expr), mdt) if expr.is_Integer else ops.index_expr(expr, mdt)


def grid_unnormalize(ops: Any, g: Any, ax: GridAxis, mdt: torch.dtype) -> Any:
    """A grid coordinate in [-1, 1] as an input coordinate."""
    c = lambda v: ops.constant(v, mdt)  # noqa: E731
    plus = ops.add(g, c(1.0))
    if ax.vectorized:
        if ax.align_corners:  # (g + 1) * ((size - 1) / 2)
            return ops.mul(plus, ops.truediv(_fvalue(ops, ax.size - 1, mdt), c(2.0)))
        factor = ops.truediv(_fvalue(ops, ax.size, mdt), c(2.0))
        return ops.sub(ops.mul(plus, factor), c(0.5))
    if ax.align_corners:  # ((g + 1) / 2) * (size - 1)
        return ops.mul(ops.truediv(plus, c(2.0)), _fvalue(ops, ax.size - 1, mdt))
    return ops.truediv(ops.sub(ops.mul(plus, _fvalue(ops, ax.size, mdt)), c(1.0)), c(2.0))


def _clip(ops: Any, x: Any, ax: GridAxis, mdt: torch.dtype) -> Any:
    """x clamped into [0, size - 1] (NaN to 0, as the vectorized kernel)."""
    zero, top = ops.constant(0.0, mdt), _fvalue(ops, ax.size - 1, mdt)
    x = ops.where(ops.gt(x, zero), x, zero)
    return ops.where(ops.lt(x, top), x, top)


def _reflect_vectorized(ops: Any, x: Any, ax: GridAxis, mdt: torch.dtype) -> Any:
    """The 2-d kernel's reflection: trunc-based, min(extra, 2 * span - extra)."""
    c = lambda v: ops.constant(v, mdt)  # noqa: E731
    span = ax.size - 1 if ax.align_corners else ax.size
    twice = ops.mul(_fvalue(ops, span, mdt), c(2.0))
    low = None if ax.align_corners else c(-0.5)
    dist = ops.abs(x if low is None else ops.sub(x, low))
    extra = ops.sub(dist, ops.mul(ops.trunc(ops.truediv(dist, twice)), twice))
    out = ops.minimum(extra, ops.sub(twice, extra))
    if low is not None:
        return ops.add(out, low)
    if ax.size.is_Integer:  # an empty span reflects everything to 0
        return out if int(ax.size) > 1 else c(0.0)
    return ops.where(ops.gt(index_value(ops, ax.size), index_value(ops, 1)), out, c(0.0))


def _reflect_scalar(ops: Any, x: Any, ax: GridAxis, mdt: torch.dtype) -> Any:
    """GridSampler.h's reflect_coordinates: fmod, then flip on odd spans."""
    c = lambda v: ops.constant(v, mdt)  # noqa: E731
    twice_low, twice_high = (0, 2 * (ax.size - 1)) if ax.align_corners else (-1, 2 * ax.size - 1)
    if ax.size.is_Integer and twice_low == twice_high:
        return c(0.0)
    low = c(twice_low / 2)
    span = ops.truediv(_fvalue(ops, sym(twice_high - twice_low), mdt), c(2.0))
    dist = ops.abs(ops.sub(x, low))
    extra = ops.mod(dist, span)  # fmod: both positive
    flips = ops.to_dtype(ops.floor(ops.truediv(dist, span)), torch.int64)
    even = ops.eq(ops.mod(flips, index_value(ops, 2)), index_value(ops, 0))
    return ops.where(even, ops.add(extra, low), ops.add(ops.sub(span, extra), low))


def grid_pad(ops: Any, x: Any, ax: GridAxis, mdt: torch.dtype) -> Any:
    """compute_coordinates: the padding mode applied to an input coordinate."""
    if ax.padding == "border":
        return _clip(ops, x, ax, mdt)
    if ax.padding == "reflection":
        reflect = _reflect_vectorized if ax.vectorized else _reflect_scalar
        return _clip(ops, reflect(ops, x, ax, mdt), ax, mdt)
    return x


def _fetch(
    ops: Any, load: Callable[[Any, Index], Any], lead: Index, at: Sequence[tuple[Any, Expr]]
) -> Any:
    """input[lead, at...] for int64 coordinates |at| (value, size), 0 where one
    is outside its dim."""
    mask, index = None, list(lead)
    for value, size in at:
        inside = ops.logical_and(
            ops.gt(value, index_value(ops, -1)), ops.lt(value, index_value(ops, size))
        )
        mask = inside if mask is None else ops.logical_and(mask, inside)
        clamped = _clamp_index(ops, value, size)
        index.append(ops.indirect_indexing(clamped, size, "grid_sampler: corner", wrap=False))
    return ops.masked(mask, lambda: load(ops, index), 0.0)


# Reads input[n, c] at int64 coordinates (value, size), 0 outside.
Fetch = Callable[[Sequence[tuple[Any, Expr]]], Any]


def _as_index(ops: Any, value: Any) -> Any:
    return ops.to_dtype(value, torch.int64)


def _grid_bilinear(ops: Any, fetch: Fetch, coords: list[Any], axes: Sequence[GridAxis]) -> Any:
    """(Tri)linear: corner weights are products of distances to the far side."""
    mdt = torch.float32
    one = ops.constant(1.0, mdt)
    low = [ops.floor(x) for x in coords]
    starts = [_as_index(ops, f) for f in low]
    if axes[0].vectorized:  # 2-d: nw = s * e, ne = s * w, sw = n * e, se = n * w
        near = [ops.sub(x, f) for x, f in zip(coords, low, strict=True)]
        far = [ops.sub(one, d) for d in near]
    else:  # 3-d: (x1 - x) and (x - x0) with x1 = x0 + 1 as float
        near = [ops.sub(x, ops.to_dtype(i, mdt)) for x, i in zip(coords, starts, strict=True)]
        far = [
            ops.sub(ops.to_dtype(ops.add(i, index_value(ops, 1)), mdt), x)
            for x, i in zip(coords, starts, strict=True)
        ]
    acc = None
    for corner in itertools.product((0, 1), repeat=len(coords)):
        parts = [n_ if bit else f_ for bit, n_, f_ in zip(corner, near, far, strict=True)]
        if not axes[0].vectorized:
            parts.reverse()  # the 3-d kernel multiplies x first, then y, then z
        weight = functools.reduce(ops.mul, parts)
        at = [
            (ops.add(i, index_value(ops, bit)) if bit else i, ax.size)
            for bit, i, ax in zip(corner, starts, axes, strict=True)
        ]
        term = ops.mul(fetch(at), weight)
        acc = term if acc is None else ops.add(acc, term)
    return acc


def _grid_bicubic(ops: Any, fetch: Fetch, coords: list[Any], axes: Sequence[GridAxis]) -> Any:
    """2-d bicubic: 4x4 taps around floor(x), each tap's coordinate padded."""
    mdt = torch.float32
    c = lambda v: ops.constant(v, mdt)  # noqa: E731
    starts = [ops.floor(x) for x in coords]
    weights = []
    for x, f in zip(coords, starts, strict=True):
        t = ops.sub(x, f)
        weights.append(
            [
                _cubic_conv2(ops, ops.add(t, c(1.0)), mdt),
                _cubic_conv1(ops, t, mdt),
                _cubic_conv1(ops, ops.sub(c(1.0), t), mdt),
                _cubic_conv2(ops, ops.sub(c(2.0), t), mdt),
            ]
        )

    def tap(k: int, j: int) -> tuple[Any, Expr]:
        where = grid_pad(ops, ops.add(starts[k], c(float(j - 1))), axes[k], mdt)
        return _as_index(ops, where), axes[k].size

    rows = []
    for i in range(4):  # y taps outer, x taps inner (coords are (y, x))
        row = None
        for j in range(4):
            term = ops.mul(weights[1][j], fetch([tap(0, i), tap(1, j)]))
            row = term if row is None else ops.add(row, term)
        rows.append(row)
    acc = None
    for i, row in enumerate(rows):
        term = ops.mul(weights[0][i], row)
        acc = term if acc is None else ops.add(acc, term)
    return acc


def grid_sample(
    ctx: LoweringContext, x: TensorValue, grid: TensorValue, mode: int, padding: int, align: bool
) -> Pointwise:
    dims = len(x.get_size()) - 2
    what = f"grid_sampler_{dims}d"
    if dims not in (2, 3) or len(grid.get_size()) != dims + 2:
        raise ValueError(f"{what}: bad input or grid rank")
    if not 0 <= mode < len(GRID_MODES) or not 0 <= padding < len(GRID_PADDINGS):
        raise ValueError(f"{what}: unknown mode {mode} or padding {padding}")
    if GRID_MODES[mode] == "bicubic" and dims == 3:
        raise ValueError(f"{what}: bicubic sampling is 2-d only")
    x = ctx.realize(x) if GRID_MODES[mode] != "nearest" else x
    dtype, mdt = x.dtype, torch.float32
    load, load_grid = to_loader(x, mdt), to_loader(grid, mdt)
    axes = [
        GridAxis(sym(size), GRID_PADDINGS[padding], align, vectorized=dims == 2)
        for size in x.get_size()[2:]
    ]
    sample = {"bilinear": _grid_bilinear, "bicubic": _grid_bicubic}.get(GRID_MODES[mode])

    def inner(ops: Any, index: Index) -> Any:
        n, out = index[0], list(index[2:])
        # grid components are (x, y[, z]): reversed against the input's dims
        raw = [load_grid(ops, [n, *out, sym(dims - 1 - k)]) for k in range(dims)]
        coords = [grid_unnormalize(ops, g, ax, mdt) for g, ax in zip(raw, axes, strict=True)]
        if GRID_MODES[mode] != "bicubic":
            coords = [grid_pad(ops, v, ax, mdt) for v, ax in zip(coords, axes, strict=True)]
        fetch = lambda at: _fetch(ops, load, index[:2], at)  # noqa: E731
        if sample is None:  # nearest: round half to even
            at = [
                (_as_index(ops, ops.round(v)), ax.size) for v, ax in zip(coords, axes, strict=True)
            ]
            value = fetch(at)
        else:
            value = sample(ops, fetch, coords, axes)
        return value if dtype == mdt else ops.to_dtype(value, dtype)

    size = [x.get_size()[0], x.get_size()[1], *grid.get_size()[1:-1]]
    return Pointwise(size, dtype, inner)


# -- aten signatures ------------------------------------------------------------


def output_sizes(
    x: TensorValue, dims: int, output_size: Sequence[Any] | None, scales: Sequence[Any] | None
) -> list[Expr]:
    """compute_output_size: |output_size|, else int(in * scale) per dim."""
    spatial = x.get_size()[-dims:]
    if output_size is not None:
        if len(output_size) != dims:
            raise ValueError(f"expected {dims} output sizes, got {list(output_size)}")
        return [sym(s) for s in output_size]
    if scales is None or len(scales) != dims:
        raise ValueError("upsample needs an output size or one scale factor per dim")
    out = []
    for size, scale in zip(spatial, scales, strict=True):
        if size.is_Integer:
            out.append(sympy.Integer(int(int(size) * float(scale))))
        elif float(scale).is_integer():
            out.append(size * int(scale))
        else:
            out.append(sympy.floor(size * sympy.Float(float(scale))))
    return out


def make_axes(
    x: TensorValue, sizes: Sequence[Expr], scales: Sequence[float | None] | None
) -> list[Axis]:
    spatial = x.get_size()[-len(sizes) :]
    given = list(scales) if scales is not None else [None] * len(sizes)
    if len(given) != len(sizes):
        raise ValueError(f"expected {len(sizes)} scales, got {given}")
    return [
        Axis(sym(n_in), sym(n_out), None if s is None else float(s))
        for n_in, n_out, s in zip(spatial, sizes, given, strict=True)
    ]


def _check_rank(x: TensorValue, dims: int, what: str) -> None:
    if len(x.get_size()) != dims + 2:
        raise ValueError(f"{what}: expected a {dims + 2}-d input, got {len(x.get_size())}-d")


def nearest(ctx: LoweringContext, x: TensorValue, axes: Sequence[Axis], exact: bool) -> Pointwise:
    what = "upsample_nearest_exact" if exact else "upsample_nearest"

    def taps(ops: Any, o: Expr, axis: Axis, mdt: torch.dtype) -> list[Tap]:
        return [(_nearest_index(ops, o, axis, exact, what), None, None)]

    return resample(ctx, x, axes, taps, reads=1)


def linear(
    ctx: LoweringContext, x: TensorValue, axes: Sequence[Axis], align_corners: bool
) -> Pointwise:
    def taps(ops: Any, o: Expr, axis: Axis, mdt: torch.dtype) -> list[Tap]:
        return _linear_taps(ops, o, axis, align_corners, mdt, "upsample_linear")

    return resample(ctx, x, axes, taps, reads=2 ** len(axes))


def bicubic(
    ctx: LoweringContext, x: TensorValue, axes: Sequence[Axis], align_corners: bool
) -> Pointwise:
    def taps(ops: Any, o: Expr, axis: Axis, mdt: torch.dtype) -> list[Tap]:
        return _cubic_taps(ops, o, axis, align_corners, mdt, "upsample_bicubic2d")

    return resample(ctx, x, axes, taps, reads=16)


Interp = Callable[[LoweringContext, TensorValue, Sequence[Axis], bool], Pointwise]


def antialiased(interp_size: int, filt: AAFilter, what: str) -> Interp:
    """The lowering of a separable antialiased resampling (bilinear: the
    triangle filter over 2 taps, bicubic: Keys' cubic over 4, both widened by
    the downscale factor)."""

    def fn(
        ctx: LoweringContext, x: TensorValue, axes: Sequence[Axis], align_corners: bool
    ) -> Pointwise:
        def taps(ops: Any, o: Expr, axis: Axis, mdt: torch.dtype) -> list[Tap]:
            return _aa_taps(ops, o, axis, align_corners, interp_size, filt, what)

        return resample(ctx, x, axes, taps, reads=interp_size ** len(axes))

    return fn


def _register_nearest(registry: LoweringRegistry, packet: Any, dims: int, exact: bool) -> None:
    def vec(
        ctx: LoweringContext,
        x: TensorValue,
        output_size: Sequence[Any] | None,
        scale_factors: Sequence[float] | None,
    ) -> Pointwise:
        _check_rank(x, dims, str(packet))
        sizes = output_sizes(x, dims, output_size, scale_factors)
        return nearest(ctx, x, make_axes(x, sizes, scale_factors), exact)

    def default(
        ctx: LoweringContext, x: TensorValue, output_size: Sequence[Any], *scales: float | None
    ) -> Pointwise:
        _check_rank(x, dims, str(packet))
        sizes = output_sizes(x, dims, output_size, None)
        return nearest(ctx, x, make_axes(x, sizes, _scales(scales, dims)), exact)

    registry.register(packet.vec)(vec)
    registry.register(packet.default)(default)


def _register_interp(registry: LoweringRegistry, packet: Any, dims: int, fn: Interp) -> None:
    def vec(
        ctx: LoweringContext,
        x: TensorValue,
        output_size: Sequence[Any] | None,
        align_corners: bool,
        scale_factors: Sequence[float] | None,
    ) -> Pointwise:
        _check_rank(x, dims, str(packet))
        sizes = output_sizes(x, dims, output_size, scale_factors)
        return fn(ctx, x, make_axes(x, sizes, scale_factors), align_corners)

    def default(
        ctx: LoweringContext,
        x: TensorValue,
        output_size: Sequence[Any],
        align_corners: bool,
        *scales: float | None,
    ) -> Pointwise:
        _check_rank(x, dims, str(packet))
        sizes = output_sizes(x, dims, output_size, None)
        return fn(ctx, x, make_axes(x, sizes, _scales(scales, dims)), align_corners)

    registry.register(packet.vec)(vec)
    registry.register(packet.default)(default)


def _scales(scales: Sequence[float | None], dims: int) -> list[float | None]:
    """The per-dim scales of a .default overload (missing ones are None)."""
    return list(scales) + [None] * (dims - len(scales))


def register(registry: LoweringRegistry) -> None:
    for dims, packet in enumerate(
        (aten.upsample_nearest1d, aten.upsample_nearest2d, aten.upsample_nearest3d), start=1
    ):
        _register_nearest(registry, packet, dims, exact=False)
    for dims, packet in enumerate(
        (
            aten._upsample_nearest_exact1d,
            aten._upsample_nearest_exact2d,
            aten._upsample_nearest_exact3d,
        ),
        start=1,
    ):
        _register_nearest(registry, packet, dims, exact=True)
    for dims, packet in enumerate(
        (aten.upsample_linear1d, aten.upsample_bilinear2d, aten.upsample_trilinear3d), start=1
    ):
        _register_interp(registry, packet, dims, linear)
    _register_interp(registry, aten.upsample_bicubic2d, 2, bicubic)
    aa_bilinear = antialiased(2, _aa_linear, "upsample_bilinear2d_aa")
    _register_interp(registry, aten._upsample_bilinear2d_aa, 2, aa_bilinear)
    aa_bicubic = antialiased(4, _aa_cubic, "upsample_bicubic2d_aa")
    _register_interp(registry, aten._upsample_bicubic2d_aa, 2, aa_bicubic)
    for packet in (aten.grid_sampler_2d, aten.grid_sampler_3d):
        registry.register(packet.default)(grid_sample)
