"""lower_graph on small exported programs: inputs, constants (tied weights
once, buffers, lifted constants), dynamic symbols, outputs that never alias
inputs, constants or each other, mutations, errors; and the lowered graph run
by an interpreter against eager."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lowering_eval import run_graph
from torch.export import Dim

from aot.ir.graph import LoweredGraph
from aot.ir.nodes import BufferKind, ComputedBuffer, Pointwise, TensorValue
from aot.ir.symbols import size_symbol
from aot.lowering import creation, indexing, views
from aot.lowering.context import LoweringContext
from aot.lowering.graph_lowering import LoweringError, lower_graph
from aot.lowering.registry import LoweringRegistry, UnsupportedOpError

aten = torch.ops.aten
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _binary(name: str) -> Any:
    """A minimal test-only lowering of aten.add/mul.Tensor (same dtype, broadcasting)."""

    def lower(ctx: LoweringContext, a: Any, b: Any, alpha: Any = 1) -> Pointwise:
        if not isinstance(b, TensorValue.__args__):  # type: ignore[attr-defined]
            value = b

            def scalar(ops: Any, idx: Any) -> Any:
                return getattr(ops, name)(load_a(ops, idx), ops.constant(value, a.dtype))

            load_a = a.make_loader()
            return Pointwise(a.get_size(), a.dtype, scalar)
        shape = indexing.broadcast_shapes(a.get_size(), b.get_size())
        la = views.expand(a, shape).make_loader()
        lb = views.expand(b, shape).make_loader()
        return Pointwise(shape, a.dtype, lambda ops, i: getattr(ops, name)(la(ops, i), lb(ops, i)))

    return lower


@pytest.fixture(scope="module")
def registry() -> LoweringRegistry:
    reg = LoweringRegistry()
    for family in (views, indexing, creation):
        family.register(reg)
    reg.register(aten.add.Tensor)(_binary("add"))
    reg.register(aten.mul.Tensor)(_binary("mul"))
    reg.register(aten.copy.default)(lambda ctx, dst, src, *a: views.expand(src, dst.get_size()))
    return reg


def export(module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.export.ExportedProgram:
    return torch.export.export(module.eval(), args, **kwargs).run_decompositions()


def check_outputs(graph: LoweredGraph) -> None:
    """Outputs: distinct, contiguous, computed by this graph."""
    names = [b.name for b in graph.outputs]
    assert len(set(names)) == len(names)
    computed = {n.name for n in graph.nodes if isinstance(n, ComputedBuffer)}
    for b in graph.outputs:
        assert b.kind == BufferKind.COMPUTED and b.layout.is_contiguous() and b.name in computed


def run_and_compare(graph: LoweredGraph, module: torch.nn.Module, *args: torch.Tensor) -> None:
    check_outputs(graph)
    with torch.no_grad():
        expect = module(*args)
    expect = list(expect) if isinstance(expect, tuple | list) else [expect]
    got = run_graph(graph, args)
    assert len(got) == len(expect)
    for g, e in zip(got, expect, strict=True):
        torch.testing.assert_close(g, e)


class Views(torch.nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = x.transpose(0, 1).reshape(4, -1)  # [8, 4] -> not a view: GenericView
        z = torch.cat([x[:, :2], x[:, 6:]], 1) + 1.0
        e = torch.nn.functional.embedding(idx, x)
        return y, z, e, x.unsqueeze(0).expand(2, 4, 8)


def test_views_module(registry: LoweringRegistry) -> None:
    x, idx = torch.randn(4, 8), torch.tensor([[3, 0], [1, 1]])
    graph = lower_graph(export(Views(), x, idx), "views", registry)
    assert graph.name == "views"
    assert graph.input_names == ["x", "idx"]
    assert [b.name for b in graph.inputs] == ["in0", "in1"]
    assert [b.kind for b in graph.inputs] == [BufferKind.INPUT] * 2
    assert graph.inputs[1].dtype == torch.int64
    assert graph.output_names == ["output0", "output1", "output2", "output3"]
    assert all(n.origins for n in graph.nodes)
    run_and_compare(graph, Views(), x, idx)


class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(6, 4)
        self.head = torch.nn.Linear(4, 6, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("shift", torch.ones(4), persistent=False)
        self.table = torch.tensor([1.0, 2.0, 3.0, 4.0])  # lifted constant

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.emb(idx) * self.scale + self.shift + self.table
        return h, self.head.weight, self.scale.view(2, 2)


def test_constants_tied_buffers_lifted(registry: LoweringRegistry) -> None:
    module = Tied()
    idx = torch.tensor([0, 5, 2])
    graph = lower_graph(export(module, idx), "tied", registry)
    names = [c.name for c in graph.constants]
    assert "emb.weight" in names and "head.weight" not in names  # tied: stored once
    assert {"scale", "shift", "table"} <= set(names)
    assert len(graph.constants) == 4
    assert len({c.buffer.name for c in graph.constants}) == 4
    for c in graph.constants:
        assert c.buffer.kind == BufferKind.CONSTANT
        assert c.value.is_contiguous() and not c.value.requires_grad
    emb = next(c for c in graph.constants if c.name == "emb.weight")
    torch.testing.assert_close(emb.value, module.emb.weight.detach())
    # Returned constants (and views of them) are copied, never aliased.
    constant_names = {c.buffer.name for c in graph.constants}
    assert not constant_names & {b.name for b in graph.outputs}
    run_and_compare(graph, module, idx)


class Aliasing(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = x + x
        return x, x.t(), y, y, y.view(-1), x.clone()


def test_outputs_never_alias(registry: LoweringRegistry) -> None:
    x = torch.randn(3, 5)
    graph = lower_graph(export(Aliasing(), x), "alias", registry)
    assert len(graph.outputs) == 6
    assert not {b.name for b in graph.inputs} & {b.name for b in graph.outputs}
    run_and_compare(graph, Aliasing(), x)


class Mutating(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cache", torch.zeros(2, 5, 3))
        self.register_buffer("steps", torch.zeros(1))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        self.cache[:, pos] = x
        self.steps.add_(torch.ones(1))
        out.copy_(x[:, 0] * 2.0)
        return self.cache + 0.0


def test_mutations(registry: LoweringRegistry) -> None:
    module = Mutating()
    x, pos, out = torch.randn(2, 1, 3), torch.tensor([3]), torch.zeros(2, 3)
    program = export(module, x, pos, out)
    graph = lower_graph(program, "mut", registry)
    kinds = {c.name: c.buffer.kind for c in graph.constants}
    assert kinds == {"cache": BufferKind.STATE, "steps": BufferKind.STATE}
    assert sorted(name for name, _ in graph.state_mutations) == ["cache", "steps"]
    assert [index for index, _ in graph.input_mutations] == [2]
    for _, buffer in graph.state_mutations + graph.input_mutations:
        assert buffer.kind == BufferKind.COMPUTED and buffer.layout.is_contiguous()
    # Run it: the interpreter gives every buffer, including the mutation values.
    fresh = Mutating()
    expect_out = torch.zeros(2, 3)
    expect = fresh(x, pos, expect_out)
    buffers: dict[str, torch.Tensor] = {}
    got = run_graph(graph, [x, pos, out], buffers=buffers)
    torch.testing.assert_close(got[0], expect)
    state = {name: buffers[b.name] for name, b in graph.state_mutations}
    torch.testing.assert_close(state["cache"], fresh.cache.reshape(-1))
    torch.testing.assert_close(state["steps"], fresh.steps)
    written = buffers[graph.input_mutations[0][1].name]
    torch.testing.assert_close(written, expect_out.reshape(-1))
    check_outputs(graph)


class Dynamic(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = x.shape[0]
        pos = torch.arange(b)
        return x.reshape(b * 4, -1), torch.cat([x, y], 0)[1:], pos


def test_dynamic_symbols(registry: LoweringRegistry) -> None:
    x, y = torch.randn(4, 4, 2), torch.randn(4, 4, 2)
    s = Dim("s", min=3, max=64)
    program = export(Dynamic(), x, y, dynamic_shapes=({0: s}, {0: s}))
    graph = lower_graph(program, "dyn", registry)
    s0 = size_symbol("s0")
    assert [(i.symbol, i.input_index, i.dim, i.low, i.high) for i in graph.symbols] == [
        (s0, 0, 0, 3, 64)
    ]
    assert graph.inputs[0].layout.sizes == (s0, 4, 2)
    assert graph.dim_relations == [(1, 0, s0)]  # y's dim 0 must equal s0
    sizes = [b.get_size() for b in graph.outputs]
    assert sizes == [[4 * s0, 2], [2 * s0 - 1, 4, 2], [s0]]
    x5, y5 = torch.randn(5, 4, 2), torch.randn(5, 4, 2)
    got = run_graph(graph, [x5, y5], {s0: 5})
    for g, e in zip(got, Dynamic()(x5, y5), strict=True):
        torch.testing.assert_close(g, e)


class Slices(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x[:5], x[-2:], x[1:-1], x.view(-1, 2)


def test_sizes_take_exports_form(registry: LoweringRegistry) -> None:
    """x[:5] on a dim of at least 6 is 5, not Min(5, s0): export's range knowledge."""
    s = Dim("s", min=6, max=64)
    graph = lower_graph(
        export(Slices(), torch.randn(16, 4), dynamic_shapes=({0: s},)), "sl", registry
    )
    s0 = size_symbol("s0")
    assert [b.get_size() for b in graph.outputs] == [
        [5, 4],
        [2, 4],
        [s0 - 2, 4],
        [2 * s0, 2],
    ]
    x = torch.randn(9, 4)
    for got, want in zip(run_graph(graph, [x], {s0: 9}), Slices()(x), strict=True):
        torch.testing.assert_close(got, want)


def test_derived_input_dim(registry: LoweringRegistry) -> None:
    s = Dim("s", min=3, max=64)
    program = export(Dynamic(), torch.randn(4, 4, 2), torch.randn(8, 4, 2),
                     dynamic_shapes=({0: s}, {0: 2 * s}))  # fmt: skip
    graph = lower_graph(program, "dyn2", registry)
    s0 = size_symbol("s0")
    assert graph.dim_relations == [(1, 0, 2 * s0)]
    only_derived = torch.export.export(
        Dynamic(), (torch.randn(8, 4, 2), torch.randn(8, 4, 2)), dynamic_shapes=({0: 2 * s}, None)
    )
    with pytest.raises(LoweringError, match="appears only inside"):
        lower_graph(only_derived, "bad", registry)


class Bad(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x.view(2, 8)).view(-1)


def test_errors(registry: LoweringRegistry) -> None:
    program = export(Bad(), torch.randn(4, 4))
    with pytest.raises(UnsupportedOpError, match="aten.sin"):
        lower_graph(program, "bad", registry)

    broken = LoweringRegistry()
    views.register(broken)
    broken.register(aten.sin.default)(lambda ctx, x: 1 / 0)
    with pytest.raises(LoweringError, match=r"'sin'.*aten.sin.default.*ZeroDivisionError"):
        lower_graph(program, "bad", broken)

    wrong = LoweringRegistry()
    views.register(wrong)
    wrong.register(aten.sin.default)(lambda ctx, x: views.permute(x, [1, 0]))
    with pytest.raises(LoweringError, match="export says"):
        lower_graph(program, "bad", wrong)


# -- end to end: through the scheduler, codegen, build and the C++ runtime -----------------


class E2EViews(torch.nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pad = torch.nn.functional.pad(x, (1, 2, 0, 1), value=3.0)
        cat = torch.cat([x[:, :2], x.flip(0)[:, 6:]], 1)
        return x.t().reshape(4, -1), cat, x[idx], pad, x.repeat(2, 1)[:, ::3], x


class E2EIndex(torch.nn.Module):
    def forward(
        self, x: torch.Tensor, i: torch.Tensor, j: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        g = torch.gather(x, 2, j.view(1, 1, 3).expand(3, 5, 3))
        return x[i, :, j], x[:, j], g, x.index_select(1, j)


class E2ECache(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cache", torch.zeros(2, 16, 3))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        self.cache[:, pos] = x
        return self.cache.clone()


class E2EArange(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = x.shape[0]
        pos = torch.arange(n, dtype=x.dtype).unsqueeze(1)
        return x + pos, torch.full_like(x, 2.0), x[1:].reshape(-1)


def _e2e_cases() -> dict[str, tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]], Any]]:
    torch.manual_seed(0)
    xb = torch.randn(4, 8).bfloat16()
    ids = torch.tensor([3, 0, -1])
    dyn = ({0: Dim("n", min=3, max=64)},)
    return {
        "views": (E2EViews(), [(torch.randn(4, 8), ids)], None),
        "views_bf16": (E2EViews(), [(xb, ids)], None),
        "index": (E2EIndex(), [(torch.randn(4, 5, 6), ids, torch.tensor([4, 0, 2]))], None),
        # Decode steps write one position each; state persists between runs.
        "cache_decode": (
            E2ECache(),
            [(torch.randn(2, 1, 3), torch.tensor([k])) for k in (5, 9)],
            None,
        ),
        "cache_prefill": (E2ECache(), [(torch.randn(2, 12, 3), torch.randperm(16)[:12])], None),
        "arange_dynamic": (E2EArange(), [(torch.randn(6, 3),), (torch.randn(11, 3),)], dyn),
    }


@pytest.mark.parametrize("case", list(_e2e_cases()))
def test_end_to_end(native_build: Any, case: str) -> None:
    import copy

    from aot.testing import AOTCRunnerUtil, assert_close_to_eager

    module, runs, dynamic = _e2e_cases()[case]
    eager = copy.deepcopy(module).eval()
    with torch.no_grad():
        expected = [eager(*args) for args in runs]
    actual = AOTCRunnerUtil.run_multiple(
        copy.deepcopy(module).eval(), runs, dynamic_shapes=dynamic, example_inputs=runs[0]
    )
    for got, want in zip(actual, expected, strict=True):
        assert_close_to_eager(got, want, None, None)
