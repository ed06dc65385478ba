"""The scatter family (aot/lowering/scatter.py, aotc_cpu_scatter.h) end to end:
scatter / scatter_add / scatter_reduce / index_reduce and index_put / index_add
/ put compiled by aotc, run by the C++ runtime and compared with eager in
float32, bfloat16 and int64; duplicates (last write wins), determinism across
thread counts, out-of-range indices as run-time errors, dynamic sizes; and the
lowering's routing of index_put between gathers and the kernel."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.export import Dim

from aot.ir.nodes import ExternKernel
from aot.lowering import build_registry, indexing
from aot.lowering.context import LoweringContext

aten = torch.ops.aten
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:index_reduce\(\) is in beta:UserWarning"),
]

DTYPES = [torch.float32, torch.bfloat16, torch.int64]
REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _values(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.randint(-4, 5, shape, generator=gen).to(dtype)


def _distinct_rows(rows: int, size: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """rows x count indices in [0, size), distinct within each row."""
    return torch.argsort(torch.rand(rows, size, generator=gen), dim=1)[:, :count].contiguous()


def _compare(actual: Any, expected: Any, exact: bool) -> None:
    from aot.testing import assert_close_to_eager

    if exact:
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert a.dtype == e.dtype, (i, a.dtype, e.dtype)
            torch.testing.assert_close(a, e, rtol=0, atol=0, equal_nan=True, msg=f"output {i}")
    else:
        assert_close_to_eager(actual, expected, None, None)


def _run(model: torch.nn.Module, runs: list[tuple[Any, ...]], dynamic: Any = None) -> list[Any]:
    from aot.testing import AOTCRunnerUtil

    return AOTCRunnerUtil.run_multiple(model.eval(), runs, dynamic_shapes=dynamic)


# -- scatter, scatter_add, scatter_reduce -------------------------------------------


class ScatterOps(torch.nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.scalar = 2.5 if dtype.is_floating_point else 3

    def forward(self, x, i0, i1, ip, src0, src1):  # type: ignore[no-untyped-def]
        out = [
            x.scatter(1, ip, src1),  # index [6, 3] into a bigger src [6, 4]
            x.scatter(-1, ip, self.scalar),
            x.scatter(0, i0, src0, reduce="add"),
            x.scatter(1, i1, src1, reduce="multiply"),
            x.scatter(1, i1, self.scalar, reduce="multiply"),
            torch.zeros(6, 5, dtype=self.dtype).scatter_add(0, i0, src0),
            # Transposed (strided) self, index and src.
            x.t().scatter_add(0, i1.t(), src1.t()),
        ]
        for reduce in REDUCTIONS:
            for include_self in (True, False):
                out.append(x.scatter_reduce(0, i0, src0, reduce, include_self=include_self))
        out.append(x.scatter_reduce(-1, i1, src1, "amin", include_self=False))
        return tuple(out)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scatter_ops(native_build: Any, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    x = _values((6, 5), dtype, gen)
    i0 = torch.randint(0, 6, (4, 5), generator=gen)  # dim 0, duplicates
    i1 = torch.randint(0, 5, (6, 3), generator=gen)  # dim 1, duplicates
    ip = _distinct_rows(6, 5, 3, gen)  # dim 1, distinct per row (plain scatter)
    src0, src1 = _values((5, 5), dtype, gen), _values((6, 4), dtype, gen)
    inputs = (x, i0, i1, ip, src0, src1)
    model = ScatterOps(dtype)
    with torch.no_grad():
        expected = model(*inputs)
    (actual,) = _run(model, [inputs])
    # bf16 too: the kernel accumulates in float32 and rounds once per element,
    # in index order, as eager's CPU kernel does.
    _compare(actual, expected, exact=True)


# -- index_put, index_add, index_reduce, put --------------------------------------------


class IndexPutOps(torch.nn.Module):
    def forward(self, x, pos, rpos, j, k, perm, v, w, u, vb, s, p):  # type: ignore[no-untyped-def]
        return (
            # 40 positions with duplicates and negatives: the scatter kernel.
            x.index_put((pos,), v, accumulate=True),
            # Non-adjacent index tensors around a full slice: batch dims lead.
            aten.index_put(x, [pos, None, j], w, True),
            # An index after a full slice: the batch dim sits in the middle.
            aten.index_put(x, [None, k], u, True),
            x.index_put((pos,), vb, accumulate=True),  # values broadcast (stride 0)
            # index_add and index_reduce take no negative indices in eager.
            x.index_add(0, rpos, v, alpha=2),  # decomposes into index_put(accumulate)
            x.index_put((perm,), v[:20]),  # 20 distinct positions, no accumulate
            x.index_reduce(0, rpos, v, "amax"),
            x.index_reduce(0, rpos, v, "mean", include_self=False),
            x.index_reduce(0, rpos[:12], v[:12], "prod"),
            x.put(p, s, accumulate=True),
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_index_put_ops(native_build: Any, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    x = _values((24, 4, 3), dtype, gen)
    pos = torch.randint(-24, 24, (40,), generator=gen)
    pos[:3] = torch.tensor([5, 5, -19])  # -19 wraps to 5: three hits
    inputs = (
        x,
        pos,
        pos % 24,
        torch.randint(0, 3, (40,), generator=gen),  # j
        torch.randint(-4, 4, (30,), generator=gen),  # k
        torch.randperm(24, generator=gen)[:20],  # perm
        _values((40, 4, 3), dtype, gen),  # v
        _values((40, 4), dtype, gen),  # w
        _values((24, 30, 3), dtype, gen),  # u
        _values((1, 3), dtype, gen),  # vb
        _values((50,), dtype, gen),  # s
        torch.randint(-288, 288, (5, 10), generator=gen),  # p
    )
    model = IndexPutOps()
    with torch.no_grad():
        expected = model(*inputs)
    (actual,) = _run(model, [inputs])
    # bf16 index_put(accumulate) and index_reduce round after every step, in
    # index order, in eager and in the kernel. index_add differs: eager has
    # its own kernel, the graph an index_put; it compares with tolerances.
    exact = [n for n in range(len(expected)) if not (dtype == torch.bfloat16 and n == 4)]
    _compare([actual[n] for n in exact], [expected[n] for n in exact], exact=True)
    _compare(actual, expected, exact=False)


# -- semantics: duplicates, determinism, errors --------------------------------------------


class Semantics(torch.nn.Module):
    def forward(self, x, i, src, big_i, big_src, rows, row_vals):  # type: ignore[no-untyped-def]
        return (
            torch.zeros(4, 6).scatter_add(0, i, src),
            torch.zeros(4, 6).scatter(0, i, src),  # duplicate indices: last write wins
            torch.zeros(4, 6).index_put((i.flatten(),), src.flatten()[:, None].expand(-1, 6)),
            # Big enough that the kernels split work across threads.
            torch.zeros(64).scatter_add(0, big_i, big_src),
            torch.zeros(64, 32).index_put((rows,), row_vals, accumulate=True),
            x.scatter_add(0, torch.zeros((), dtype=torch.int64), x),  # 0-d
            # values broadcast along the non-indexed dim (stride 0)
            torch.zeros(4, 6).index_put((i.flatten(),), src.reshape(30, 1), accumulate=True),
        )


def _semantics_inputs(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    i = torch.randint(0, 4, (5, 6), generator=gen)
    src = torch.randn(5, 6, generator=gen)
    big_i = torch.randint(0, 64, (40000,), generator=gen)
    big_src = torch.randn(40000, generator=gen)
    rows = torch.randint(0, 64, (3000,), generator=gen)
    row_vals = torch.randn(3000, 32, generator=gen)
    x = torch.tensor(1.5)
    return (x, i, src, big_i, big_src, rows, row_vals)


def _last_write(i: torch.Tensor, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter along dim 0 and index_put over the flattened positions,
    keeping the last write in index order."""
    along = torch.zeros(4, 6)
    for r in range(i.shape[0]):
        for c in range(i.shape[1]):
            along[i[r, c], c] = src[r, c]
    flat = torch.zeros(4, 6)
    for pos, val in zip(i.flatten().tolist(), src.flatten().tolist(), strict=True):
        flat[pos] = val
    return along, flat


def test_duplicates_determinism_and_out_of_range(native_build: Any) -> None:
    from aot import runtime
    from aot.testing import AOTCRunnerUtil

    gen = torch.Generator().manual_seed(3)
    good = _semantics_inputs(gen)
    model = Semantics().eval()
    path = AOTCRunnerUtil.compile(model, good)
    fn = AOTCRunnerUtil.load(path)
    compiled = fn.model  # type: ignore[attr-defined]

    with torch.no_grad():
        expected = model(*good)
    actual = fn(*good)
    along, flat = _last_write(good[1], good[2])
    assert torch.equal(actual[1], along)
    assert torch.equal(actual[2], flat)
    for n in (0, 3, 4, 5, 6):
        torch.testing.assert_close(actual[n], expected[n])
    # No atomics: the same bits whatever the thread count.
    one = compiled.run(good, num_threads=1)
    two = compiled.run(good, num_threads=2)
    for a, b, c in zip(one, two, actual, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)

    def bad(n: int, at: tuple[int, ...], value: int) -> tuple[torch.Tensor, ...]:
        inputs = [t.clone() for t in good]
        inputs[n][at] = value
        return tuple(inputs)

    cases = [
        (bad(1, (2, 3), 4), "index 4 out of range [0, 4) for scatter_add: index"),
        (bad(1, (0, 0), -1), "index -1 out of range [0, 4) for scatter_add: index"),
        (bad(3, (7,), 64), "index 64 out of range [0, 64) for scatter_add: index"),
        (bad(5, (9,), -65), "index -65 out of range [0, 64) for index_put: index"),
    ]
    for inputs, message in cases:
        with pytest.raises(runtime.AotcError) as error:
            fn(*inputs)
        assert error.value.code == "OUT_OF_RANGE", error.value.message
        assert message in error.value.message, error.value.message
        assert "extern" in error.value.message  # the kernel's debug handle
    # The model still works afterwards.
    again = fn(*good)
    for a, c in zip(again, actual, strict=True):
        assert torch.equal(a, c)


# -- dynamic sizes ---------------------------------------------------------------------


class Dynamic(torch.nn.Module):
    def forward(self, x, pos, v, i, src):  # type: ignore[no-untyped-def]
        return (
            x.index_put((pos,), v, accumulate=True),
            x.scatter_reduce(0, i, src, "mean", include_self=False),
        )


def test_dynamic_sizes(native_build: Any) -> None:
    gen = torch.Generator().manual_seed(4)

    def inputs(n: int, m: int) -> tuple[torch.Tensor, ...]:
        return (
            torch.randn(m, 3, generator=gen),
            torch.randint(0, m, (n,), generator=gen),
            torch.randn(n, 3, generator=gen),
            torch.randint(0, m, (n, 3), generator=gen),
            torch.randn(n, 3, generator=gen),
        )

    n, m = Dim("n", min=2, max=512), Dim("m", min=2, max=512)
    dynamic = ({0: m}, {0: n}, {0: n}, {0: n}, {0: n})
    runs = [inputs(20, 7), inputs(300, 33)]
    model = Dynamic().eval()
    actual = _run(model, runs, dynamic)
    for got, args in zip(actual, runs, strict=True):
        with torch.no_grad():
            _compare(got, model(*args), exact=False)


# -- lowering: routing and refusals ---------------------------------------------------------


def _input(name: str, t: torch.Tensor) -> Any:
    from aot.ir.nodes import Buffer, BufferKind, Layout

    return Buffer(name, t.dtype, Layout.contiguous(list(t.shape)), BufferKind.INPUT)


@pytest.mark.parametrize(
    ("count", "dtype", "extern"),
    [
        (indexing.MAX_REDUCTION_INDICES, torch.float32, False),
        (indexing.MAX_REDUCTION_INDICES + 1, torch.float32, True),
        (indexing.MAX_REDUCTION_INDICES + 1, torch.bool, False),  # no kernel for bool
    ],
)
def test_index_put_routing(count: int, dtype: torch.dtype, extern: bool) -> None:
    registry = build_registry()
    ctx = LoweringContext()
    x, pos, v = torch.zeros(40, 3, dtype=dtype), torch.arange(count), torch.zeros(count, 3)
    registry.get(aten.index_put.default)(
        ctx, _input("x", x), [_input("p", pos)], _input("v", v.to(dtype)), True
    )
    kinds = [n.kind for n in ctx.nodes if isinstance(n, ExternKernel)]
    assert kinds == (["index_put"] if extern else [])


def test_refusals() -> None:
    registry = build_registry()
    scatter_add = registry.get(aten.scatter_add.default)
    x, i = torch.zeros(3, 2, dtype=torch.float16), torch.zeros(3, 2, dtype=torch.int64)
    with pytest.raises(NotImplementedError, match="scatter_add: aotc's scatter kernels take"):
        scatter_add(LoweringContext(), _input("x", x), 0, _input("i", i), _input("s", x))
    with pytest.raises(TypeError, match="index must be int64 or int32"):
        scatter_add(
            LoweringContext(), _input("x", x.float()), 0, _input("i", i.short()), _input("s", x)
        )
    with pytest.raises(ValueError, match="index size 4 exceeds self size 2 in dim 1"):
        big = torch.zeros(3, 4, dtype=torch.int64)
        scatter_add(
            LoweringContext(), _input("x", x.float()), 0, _input("i", big), _input("s", big.float())
        )
    deep = torch.zeros([1] * 9)
    with pytest.raises(NotImplementedError, match="rank 9"):
        scatter_add(
            LoweringContext(), _input("x", deep), 0, _input("i", deep.long()), _input("s", deep)
        )
