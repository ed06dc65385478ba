"""View, indexing and creation lowerings: golden bodies (PrintHandler), the
strided views that must stay ReinterpretViews, and every op evaluated by an
interpreting handler against torch eager, on a Buffer input (strided paths)
and on an unrealized Pointwise input (GenericView paths)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sympy
import torch
from lowering_eval import evaluate, run_nodes

from aot.ir.nodes import (
    Buffer,
    BufferKind,
    GenericView,
    Layout,
    Pointwise,
    ReinterpretView,
    TensorValue,
)
from aot.ir.ops import PrintHandler
from aot.ir.symbols import index_vars, size_symbol
from aot.lowering import creation, indexing, views
from aot.lowering.context import LoweringContext
from aot.lowering.registry import LoweringRegistry

aten = torch.ops.aten


@pytest.fixture(scope="module")
def registry() -> LoweringRegistry:
    reg = LoweringRegistry()
    for family in (views, indexing, creation):
        family.register(reg)
    return reg


def lower(
    registry: LoweringRegistry, op: Any, *args: Any, ctx: LoweringContext | None = None, **kw: Any
) -> Any:
    return registry.get(op)(ctx or LoweringContext(), *args, **kw)


def buffer(name: str, t: torch.Tensor) -> Buffer:
    return Buffer(name, t.dtype, Layout.contiguous(list(t.shape)), BufferKind.INPUT)


def unrealized(b: Buffer) -> Pointwise:
    """The same values as |b|, as an unrealized Pointwise (GenericView paths)."""
    return Pointwise(b.get_size(), b.dtype, b.make_loader())


def body(value: TensorValue) -> str:
    return str(value.make_loader()(PrintHandler(), index_vars(len(value.get_size()))))


# -- golden bodies and strided views ---------------------------------------------------


def test_permute_golden(registry: LoweringRegistry) -> None:
    x = buffer("in0", torch.zeros(4, 8))
    out = lower(registry, aten.permute.default, x, [1, 0])
    assert isinstance(out, ReinterpretView)
    assert out.layout == Layout((sympy.Integer(8), sympy.Integer(4)), (1, 8), 0)
    assert body(out) == "load(in0, i0 + 8*i1)"
    generic = lower(registry, aten.permute.default, unrealized(x), [1, 0])
    assert isinstance(generic, GenericView)
    assert body(generic) == "load(in0, i0 + 8*i1)"


I = sympy.Integer  # noqa: E741


@pytest.mark.parametrize(
    "op,args,sizes,strides,offset",
    [
        (aten.expand.default, ([3, 4, 8],), (3, 4, 8), (0, 8, 1), 0),
        (aten.expand.default, ([-1, 8],), (4, 8), (8, 1), 0),
        (aten.select.int, (1, -3), (4,), (8,), 5),
        (aten.slice.Tensor, (1, 1, 100, 3), (4, 3), (8, 3), 1),
        (aten.slice.Tensor, (0, -2, 2**63 - 1), (2, 8), (8, 1), 16),
        (aten.unsqueeze.default, (-1,), (4, 8, 1), (8, 1, 1), 0),
        (aten.transpose.int, (0, -1), (8, 4), (1, 8), 0),
        (aten.t.default, (), (8, 4), (1, 8), 0),
        (aten.diagonal.default, (1,), (4,), (9,), 1),
        (aten.unfold.default, (1, 4, 2), (4, 3, 4), (8, 2, 1), 0),
        (aten.view.default, ([2, 2, 8],), (2, 2, 8), (16, 8, 1), 0),
        (aten.view.default, ([-1],), (32,), (1,), 0),
        (aten.as_strided.default, ([2, 2], [1, 8], 3), (2, 2), (1, 8), 3),
    ],
)
def test_strided_views_stay_reinterpret(
    registry: LoweringRegistry, op: Any, args: tuple, sizes: tuple, strides: tuple, offset: int
) -> None:
    x = buffer("in0", torch.zeros(4, 8))
    out = lower(registry, op, x, *args)
    assert isinstance(out, ReinterpretView) and out.data is x
    assert out.layout == Layout(tuple(map(I, sizes)), tuple(map(I, strides)), I(offset))


def test_squeeze_of_view_keeps_strides(registry: LoweringRegistry) -> None:
    x = buffer("in0", torch.zeros(4, 1, 8))
    perm = lower(registry, aten.permute.default, x, [2, 1, 0])
    out = lower(registry, aten.squeeze.dims, perm, [1])
    assert isinstance(out, ReinterpretView)
    assert out.layout.sizes == (8, 4) and out.layout.strides == (1, 8)
    assert lower(registry, aten.squeeze.dim, x, 0) is x  # size 4: nothing to squeeze


def test_view_of_split_slice_has_strides(registry: LoweringRegistry) -> None:
    # GPT's q/k/v: split of a [2, 32, 192] buffer, then view as heads.
    qkv = buffer("buf0", torch.zeros(2, 32, 192))
    q, k, v = lower(registry, aten.split_with_sizes.default, qkv, [64, 64, 64], 2)
    heads = lower(registry, aten.view.default, k, [2, 32, 4, 16])
    assert isinstance(heads, ReinterpretView)
    assert heads.layout == Layout((I(2), I(32), I(4), I(16)), (I(6144), I(192), I(16), I(1)), I(64))


def test_reshape_of_noncontiguous_uses_floordiv_and_modular_indexing(
    registry: LoweringRegistry,
) -> None:
    x = buffer("in0", torch.zeros(4, 6))
    xt = lower(registry, aten.permute.default, x, [1, 0])  # [6, 4], strides (1, 6)
    out = lower(registry, aten.view.default, xt, [24])
    assert isinstance(out, GenericView)
    text = body(out)
    assert "FloorDiv(i0, 4)" in text and "ModularIndexing(i0, 1, 4)" in text
    # Grouped: only the merged dims are unflattened, the others stay plain.
    y = unrealized(buffer("in1", torch.zeros(2, 3, 4, 5)))
    merged = lower(registry, aten.view.default, y, [6, 20])
    assert body(merged) == (
        "load(in1, 60*FloorDiv(i0, 3) + 5*FloorDiv(i1, 5) + 20*ModularIndexing(i0, 1, 3)"
        " + ModularIndexing(i1, 1, 5))"
    )


def test_reshape_symbolic(registry: LoweringRegistry) -> None:
    s0 = size_symbol("s0")
    x = Buffer("in0", torch.float32, Layout.contiguous([s0, I(8)]), BufferKind.INPUT)
    flat = lower(registry, aten.view.default, x, [-1])
    assert isinstance(flat, ReinterpretView) and flat.layout.sizes == (8 * s0,)
    back = lower(registry, aten.view.default, flat, [s0, 2, 4])
    assert back.layout.strides == (8, 4, 1)
    tail = lower(registry, aten.slice.Tensor, x, 0, 1, 2**63 - 1)
    assert tail.layout.sizes == (s0 - 1, 8) and tail.layout.offset == 8
    arange = lower(registry, aten.arange.start_step, 0, s0)
    assert arange.get_size() == [s0] and arange.dtype == torch.int64
    assert body(arange) == "index_expr(i0, int64)"


# -- numerics against eager ------------------------------------------------------------

X = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4) - 7.5

VIEW_CASES: list[tuple[str, Callable[[torch.Tensor], Any], Any, tuple, dict]] = [
    ("view", lambda t: t.view(6, 4), aten.view.default, ([6, 4],), {}),
    ("view_split", lambda t: t.view(2, 3, 2, 2), aten.view.default, ([2, 3, 2, 2],), {}),
    ("view_merge_all", lambda t: t.reshape(-1), aten.view.default, ([-1],), {}),
    ("view_regroup", lambda t: t.reshape(4, 6), aten.view.default, ([4, 6],), {}),
    ("view_ones", lambda t: t.reshape(1, 2, 1, 12, 1), aten.view.default, ([1, 2, 1, 12, 1],), {}),
    ("permute", lambda t: t.permute(2, 0, 1), aten.permute.default, ([2, 0, 1],), {}),
    ("transpose", lambda t: t.transpose(0, 2), aten.transpose.int, (0, 2), {}),
    ("expand", lambda t: t[:, :1].expand(5, 2, 3, 4), None, (), {}),
    ("unsqueeze", lambda t: t.unsqueeze(1), aten.unsqueeze.default, (1,), {}),
    ("select", lambda t: t.select(1, -1), aten.select.int, (1, -1), {}),
    ("slice_step", lambda t: t[:, :, 1::2], aten.slice.Tensor, (2, 1, 2**63 - 1, 2), {}),
    ("slice_neg", lambda t: t[:, -2:], aten.slice.Tensor, (1, -2, 2**63 - 1), {}),
    ("slice_clamp", lambda t: t[:, 1:50], aten.slice.Tensor, (1, 1, 50), {}),
    ("slice_empty", lambda t: t[:, 5:9], aten.slice.Tensor, (1, 5, 9), {}),
    ("diagonal", lambda t: t.diagonal(-1, 1, 2), aten.diagonal.default, (-1, 1, 2), {}),
    ("unfold", lambda t: t.unfold(2, 2, 1), aten.unfold.default, (2, 2, 1), {}),
    ("repeat", lambda t: t.repeat(2, 1, 1, 2), aten.repeat.default, ([2, 1, 1, 2],), {}),
    ("flip", lambda t: t.flip(0, 2), aten.flip.default, ([0, 2],), {}),
    ("pad", lambda t: torch.nn.functional.pad(t, (1, 2, 0, 1)), None, (), {}),
    ("pad_crop", lambda t: torch.nn.functional.pad(t, (-1, 1, 1, -1), value=2.5), None, (), {}),
    ("pad_only_crop", lambda t: torch.nn.functional.pad(t, (-1, -1)), None, (), {}),
]


def _lower_case(registry: LoweringRegistry, name: str, op: Any, args: tuple, x: Any) -> Any:
    if name == "expand":
        narrow = lower(registry, aten.slice.Tensor, x, 1, 0, 1)
        return lower(registry, aten.expand.default, narrow, [5, 2, 3, 4])
    if name.startswith("pad"):
        pad = {"pad": [1, 2, 0, 1], "pad_crop": [-1, 1, 1, -1], "pad_only_crop": [-1, -1]}[name]
        value = 2.5 if name == "pad_crop" else 0.0
        return lower(registry, aten.constant_pad_nd.default, x, pad, value)
    return lower(registry, op, x, *args)


@pytest.mark.parametrize("as_pointwise", [False, True], ids=["buffer", "pointwise"])
@pytest.mark.parametrize("case", VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_views_match_eager(registry: LoweringRegistry, case: tuple, as_pointwise: bool) -> None:
    name, eager, op, args, _ = case
    x = buffer("in0", X)
    value = _lower_case(registry, name, op, args, unrealized(x) if as_pointwise else x)
    got = evaluate(value, {"in0": X.reshape(-1)})
    torch.testing.assert_close(got, eager(X), rtol=0, atol=0)


@pytest.mark.parametrize("as_pointwise", [False, True], ids=["buffer", "pointwise"])
def test_view_chains_match_eager(registry: LoweringRegistry, as_pointwise: bool) -> None:
    x = buffer("in0", X)
    v = unrealized(x) if as_pointwise else x
    a = lower(registry, aten.permute.default, v, [2, 0, 1])  # [4, 2, 3]
    b = lower(registry, aten.view.default, a, [2, 2, 6])
    c = lower(registry, aten.slice.Tensor, b, 2, 1, 6, 2)
    d = lower(registry, aten.view.default, c, [-1])
    expect = X.permute(2, 0, 1).reshape(2, 2, 6)[:, :, 1:6:2].reshape(-1)
    torch.testing.assert_close(evaluate(d, {"in0": X.reshape(-1)}), expect, rtol=0, atol=0)
    pieces = lower(registry, aten.split.Tensor, v, 3, 2)
    assert [p.get_size()[2] for p in pieces] == [3, 1]
    unbound = lower(registry, aten.unbind.int, v, 1)
    torch.testing.assert_close(evaluate(unbound[2], {"in0": X.reshape(-1)}), X[:, 2])


def test_zero_dim_views(registry: LoweringRegistry) -> None:
    v = torch.tensor([2.0, -1.0, 5.0])
    for as_pointwise in (False, True):
        x = buffer("v", v)
        x = unrealized(x) if as_pointwise else x
        s = lower(registry, aten.select.int, x, 0, -1)  # 0-d
        assert s.get_size() == []
        cases = [
            (lower(registry, aten.unsqueeze.default, s, 0), v[-1].unsqueeze(0)),
            (lower(registry, aten.expand.default, s, [2, 2]), v[-1].expand(2, 2)),
            (lower(registry, aten.view.default, s, [1, 1]), v[-1].view(1, 1)),
            (lower(registry, aten.permute.default, s, []), v[-1]),
        ]
        for value, expect in cases:
            torch.testing.assert_close(evaluate(value, {"v": v}), expect, rtol=0, atol=0)
        one = lower(registry, aten.slice.Tensor, x, 0, 1, 2)
        scalar = lower(registry, aten.view.default, one, [])
        torch.testing.assert_close(evaluate(scalar, {"v": v}), v[1], rtol=0, atol=0)


def test_aliases_are_the_same_value(registry: LoweringRegistry) -> None:
    x = buffer("in0", torch.zeros(2))
    for op in (aten.clone.default, aten.alias.default, aten.lift_fresh_copy.default):
        assert lower(registry, op, x) is x
    assert lower(registry, aten.clone.default, x, memory_format=torch.contiguous_format) is x


def test_cat_matches_eager(registry: LoweringRegistry) -> None:
    a, b = torch.randn(2, 3), torch.randn(2, 5)
    c = torch.arange(4, dtype=torch.int64).reshape(2, 2)
    bufs = {"a": a.reshape(-1), "b": b.reshape(-1), "c": c.reshape(-1)}
    va, vb, vc = buffer("a", a), unrealized(buffer("b", b)), buffer("c", c)
    empty = buffer("e", torch.zeros(0))
    out = lower(registry, aten.cat.default, [va, empty, vb, vc], -1)
    assert out.dtype == torch.float32
    expect = torch.cat([a, b, c], 1)
    torch.testing.assert_close(evaluate(out, bufs), expect, rtol=0, atol=0)
    rows = lower(registry, aten.cat.default, [va, va], 0)
    torch.testing.assert_close(evaluate(rows, bufs), torch.cat([a, a]), rtol=0, atol=0)
    assert "masked(" in body(out)


# -- indexing ---------------------------------------------------------------------------


def test_embedding(registry: LoweringRegistry) -> None:
    w = torch.randn(10, 4)
    idx = torch.tensor([[1, 9, 0], [3, 3, 8]])
    wb, ib = buffer("w", w), buffer("idx", idx)
    out = lower(registry, aten.embedding.default, wb, ib)
    assert body(out) == "load(w, i2 + 4*ind0)"  # ind0: the indirect (checked) index
    got = evaluate(out, {"w": w.reshape(-1), "idx": idx.reshape(-1)})
    torch.testing.assert_close(got, torch.nn.functional.embedding(idx, w))
    # Too large, and negative: eager's embedding does not wrap negative ids.
    for bad in (torch.tensor([[1, 10, 0], [0, 0, 0]]), torch.tensor([[1, 2, 0], [0, -1, 0]])):
        with pytest.raises(IndexError, match="embedding: index"):
            evaluate(out, {"w": w.reshape(-1), "idx": bad.reshape(-1)})


INDEX_CASES = [
    ("single", lambda t, i, j: t[i], lambda i, j: [i]),
    ("middle", lambda t, i, j: t[:, j], lambda i, j: [None, j]),
    ("adjacent", lambda t, i, j: t[:, i, j], lambda i, j: [None, i, j]),
    ("split", lambda t, i, j: t[i, :, j], lambda i, j: [i, None, j]),
    ("broadcast", lambda t, i, j: t[i.view(3, 1), :, j.view(1, 3)], lambda i, j: "bcast"),
]


@pytest.mark.parametrize("case", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_index_tensor(registry: LoweringRegistry, case: tuple) -> None:
    name, eager, make = case
    x = torch.randn(3, 5, 6)
    i, j = torch.tensor([0, -1, 2]), torch.tensor([4, 0, 2])
    bufs = {"x": x.reshape(-1), "i": i, "j": j}
    vi, vj = buffer("i", i), buffer("j", j)
    indices = make(vi, vj)
    if indices == "bcast":
        indices = [
            lower(registry, aten.view.default, vi, [3, 1]),
            None,
            lower(registry, aten.view.default, vj, [1, 3]),
        ]
    out = lower(registry, aten.index.Tensor, buffer("x", x), indices)
    torch.testing.assert_close(evaluate(out, bufs), eager(x, i, j), rtol=0, atol=0)


def test_index_select_and_gather(registry: LoweringRegistry) -> None:
    x = torch.randn(3, 4, 5)
    i = torch.tensor([3, 0, 3, 2])
    g = torch.randint(0, 4, (3, 2, 5))
    bufs = {"x": x.reshape(-1), "i": i, "g": g.reshape(-1)}
    xb = buffer("x", x)
    sel = lower(registry, aten.index_select.default, xb, 1, buffer("i", i))
    torch.testing.assert_close(evaluate(sel, bufs), x.index_select(1, i), rtol=0, atol=0)
    # Negative indices are out of range for index_select and gather, as in eager.
    with pytest.raises(IndexError, match="index_select: index"):
        evaluate(sel, {**bufs, "i": torch.tensor([3, 0, -2, 2])})
    gat = lower(registry, aten.gather.default, xb, -2, buffer("g", g))
    torch.testing.assert_close(evaluate(gat, bufs), x.gather(1, g), rtol=0, atol=0)
    with pytest.raises(IndexError, match="gather: index"):
        evaluate(gat, {**bufs, "g": (g + 4).reshape(-1)})
    with pytest.raises(IndexError, match="gather: index"):
        evaluate(gat, {**bufs, "g": (g - 4).reshape(-1)})


@pytest.mark.parametrize("count", [2, 12], ids=["unrolled", "reduction"])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_index_put(
    registry: LoweringRegistry, accumulate: bool, count: int, dtype: torch.dtype
) -> None:
    cache = torch.randn(2, 16, 3).to(dtype)
    # Distinct positions (eager leaves duplicate writes unordered); accumulate repeats some.
    pos = torch.randperm(16)[:count]
    if accumulate:
        pos[-1] = pos[0]
    vals = torch.randn(2, count, 3)  # float32 values into a bf16 cache: rounded on write
    given = vals.to(dtype) if accumulate else vals
    bufs = {"c": cache.reshape(-1), "p": pos, "v": given.reshape(-1)}
    ctx = LoweringContext()
    out = lower(
        registry,
        aten.index_put.default,
        buffer("c", cache),
        [None, buffer("p", pos)],
        buffer("v", given),
        accumulate,
        ctx=ctx,
    )
    assert len(ctx.nodes) == (0 if count <= indexing.MAX_UNROLLED_INDICES else 1)
    run_nodes(ctx.nodes, bufs)
    got = evaluate(out, bufs)
    written = vals.to(dtype)
    expect = cache.float().index_put((torch.arange(2).view(2, 1), pos), written.float(), accumulate)
    torch.testing.assert_close(got, expect.to(dtype))


def test_index_put_out_of_range(registry: LoweringRegistry) -> None:
    ctx = LoweringContext()
    x, pos = torch.zeros(4), torch.arange(12) % 5
    out = lower(
        registry, aten.index_put.default, buffer("x", x), [buffer("p", pos)], buffer("v", x[:1]),
        ctx=ctx,
    )  # fmt: skip
    with pytest.raises(IndexError, match="index_put"):
        run_nodes(ctx.nodes, {"x": x, "p": pos, "v": x[:1]})
    del out


def test_bf16_bodies_compute_in_float32(registry: LoweringRegistry) -> None:
    a = torch.randn(2, 3).bfloat16()
    b = torch.randn(2, 2)
    bufs = {"a": a.reshape(-1), "b": b.reshape(-1)}
    both = lower(registry, aten.cat.default, [buffer("a", a), buffer("a", a)], 1)
    assert both.dtype == torch.bfloat16
    assert torch.equal(evaluate(both, bufs), torch.cat([a, a], 1))
    mixed = lower(registry, aten.cat.default, [buffer("a", a), buffer("b", b)], 1)
    assert torch.equal(evaluate(mixed, bufs), torch.cat([a, b], 1))
    padded = lower(registry, aten.constant_pad_nd.default, buffer("a", a), [1, 1], 0.1)
    expect = torch.nn.functional.pad(a, (1, 1), value=0.1)
    assert torch.equal(evaluate(padded, bufs), expect)
    filled = lower(registry, aten.full.default, [3], 0.1, dtype=torch.bfloat16)
    assert torch.equal(evaluate(filled, {}), torch.full((3,), 0.1, dtype=torch.bfloat16))
    row = torch.randn(3)
    sel = lower(registry, aten.select_scatter.default, buffer("a", a), buffer("r", row), 0, 1)
    assert torch.equal(evaluate(sel, {**bufs, "r": row}), a.select_scatter(row.bfloat16(), 0, 1))


def test_slice_and_select_scatter(registry: LoweringRegistry) -> None:
    x, src = torch.randn(4, 7), torch.randn(4, 3)
    row = torch.randn(7)
    bufs = {"x": x.reshape(-1), "s": src.reshape(-1), "r": row}
    xb = buffer("x", x)
    out = lower(registry, aten.slice_scatter.default, xb, buffer("s", src), 1, 1, 7, 2)
    expect = x.slice_scatter(src, 1, 1, 7, 2)
    torch.testing.assert_close(evaluate(out, bufs), expect, rtol=0, atol=0)
    out = lower(registry, aten.select_scatter.default, xb, buffer("r", row), 0, -1)
    torch.testing.assert_close(evaluate(out, bufs), x.select_scatter(row, 0, -1), rtol=0, atol=0)
    same = buffer("s", src)
    full = lower(registry, aten.slice_scatter.default, buffer("y", src), same, 0)
    assert full is same


# -- creation ---------------------------------------------------------------------------


CREATION_CASES = [
    (aten.arange.start_step, (2, 11, 3), {}, torch.arange(2, 11, 3)),
    (aten.arange.start_step, (5, -4, -2), {}, torch.arange(5, -4, -2)),
    (aten.arange.start_step, (0.5, 2.0, 0.25), {}, torch.arange(0.5, 2.0, 0.25)),
    (aten.arange.default, (6,), {"dtype": torch.float32}, torch.arange(6, dtype=torch.float32)),
    (aten.arange.start, (3, 6), {}, torch.arange(3, 6)),
    (aten.full.default, ([2, 3], 7), {}, torch.full((2, 3), 7)),
    (aten.full.default, ([2], float("-inf")), {}, torch.full((2,), float("-inf"))),
    (aten.full.default, ([2], True), {}, torch.full((2,), True)),
    (aten.zeros.default, ([3],), {"dtype": torch.int32}, torch.zeros(3, dtype=torch.int32)),
    (aten.ones.default, ([2, 2],), {}, torch.ones(2, 2)),
    (aten.empty.memory_format, ([2],), {"dtype": torch.int64}, torch.zeros(2, dtype=torch.int64)),
    (aten.scalar_tensor.default, (3,), {}, torch.scalar_tensor(3)),
]


@pytest.mark.parametrize("op,args,kwargs,expect", CREATION_CASES)
def test_creation(
    registry: LoweringRegistry, op: Any, args: tuple, kwargs: dict, expect: torch.Tensor
) -> None:
    out = lower(registry, op, *args, device=torch.device("cpu"), pin_memory=False, **kwargs)
    assert out.dtype == expect.dtype
    torch.testing.assert_close(evaluate(out, {}), expect, rtol=0, atol=0)


def test_like_creation(registry: LoweringRegistry) -> None:
    x = buffer("x", torch.zeros(2, 3, dtype=torch.int32))
    for op, args, value in [
        (aten.zeros_like.default, (), 0),
        (aten.ones_like.default, (), 1),
        (aten.full_like.default, (9,), 9),
        (aten.empty_like.default, (), 0),
    ]:
        out = lower(registry, op, x, *args)
        assert out.dtype == torch.int32 and out.get_size() == [2, 3]
        assert torch.equal(evaluate(out, {}), torch.full((2, 3), value, dtype=torch.int32))
    new = lower(registry, aten.new_ones.default, x, [4], dtype=torch.float32)
    assert torch.equal(evaluate(new, {}), torch.ones(4))
