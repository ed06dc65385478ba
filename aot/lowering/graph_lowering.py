"""lower_graph: an ExportedProgram (after decompositions) to a LoweredGraph.

[Note: graph lowering] One walk over the FX graph in order:
- placeholders: user inputs become INPUT buffers "in0", "in1", ... with
  contiguous layouts (the ABI makes inputs contiguous); parameters, buffers
  and lifted constants become Constants, one per storage (tied weights are
  stored once), kind STATE when the program mutates them;
- dynamic sizes: torch's symbols are renamed s0, s1, ... in the order they
  appear in the inputs' dims; each must appear alone in some input dim (the
  runtime reads it there); every other symbolic input dim, and every repeat
  of a symbol, is a dim_relation the runtime checks;
- symbolic scalars (sym_size, SymInt arithmetic) become sympy expressions
  taken from the node's meta value; shape assertions are skipped (the
  runtime checks ranges and relations);
- every other call_function goes through the registry with ctx.origins set
  to the node's name. Each result is checked against export's meta value
  (dtype and sizes) so that a wrong lowering fails here, naming its node,
  instead of producing a wrong kernel;
- outputs are distinct contiguous COMPUTED buffers: a value that is an
  input, a constant, a view, unrealized or already returned is copied.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import sympy
import torch
from torch.export.graph_signature import InputKind, OutputKind

from ..ir.graph import Constant, LoweredGraph, SymbolInfo
from ..ir.nodes import (
    Buffer,
    BufferKind,
    GenericView,
    Layout,
    Pointwise,
    Reduction,
    ReinterpretView,
    TensorValue,
)
from ..ir.symbols import FloorDiv, ModularIndexing, size_symbol
from .context import LoweringContext
from .registry import LoweringRegistry, UnsupportedOpError
from .views import known_eq

aten = torch.ops.aten
INT64_MAX = 2**63 - 1

# Nodes that only assert facts about shapes; export already proved them.
_SKIPPED = {
    getattr(getattr(aten, op), overload)
    for op, overload in (
        ("_assert_scalar", "default"),
        ("_assert_tensor_metadata", "default"),
        ("sym_constrain_range", "default"),
        ("sym_constrain_range_for_size", "default"),
        ("_assert_async", "msg"),
    )
    if hasattr(aten, op)
}


class LoweringError(Exception):
    """A lowering failed on a node; names the node and its op. The frontend
    adds the model.py line from |stack_trace|."""

    def __init__(self, node: str, target: Any, message: str, stack_trace: str | None = None):
        self.node = node
        self.target = target
        self.stack_trace = stack_trace
        super().__init__(f"lowering node {node!r} ({target}) failed: {message}")


def lower_graph(
    program: torch.export.ExportedProgram,
    name: str,
    registry: LoweringRegistry,
    device: str = "cpu",
) -> LoweredGraph:
    """Lowers |program| (decomposed, CPU) into a LoweredGraph named |name| for
    a package on |device|."""
    return _GraphLowering(program, name, registry, device).run()


class _GraphLowering:
    def __init__(
        self,
        program: torch.export.ExportedProgram,
        name: str,
        registry: LoweringRegistry,
        device: str = "cpu",
    ) -> None:
        self.program = program
        self.name = name
        self.registry = registry
        self.ctx = LoweringContext(device)
        self.env: dict[torch.fx.Node, Any] = {}
        self.mutation_values: set[str] = set()  # set by run()
        self.inputs: list[Buffer] = []
        self.input_names: list[str] = []
        self.input_index: dict[str, int] = {}  # placeholder name -> user input index
        self.constants: list[Constant] = []
        self.constant_of: dict[str, Constant] = {}  # FQN -> Constant (tied share one)
        self.symbols: list[SymbolInfo] = []
        self.dim_relations: list[tuple[int, int, sympy.Expr]] = []
        self.rename: dict[sympy.Symbol, sympy.Symbol] = {}
        self._converted: dict[sympy.Basic, sympy.Expr] = {}

    # -- driver -----------------------------------------------------------------------

    def run(self) -> LoweredGraph:
        graph = self.program.graph_module.graph
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        specs = self.program.graph_signature.input_specs
        if len(specs) != len(placeholders):
            raise LoweringError("<inputs>", "placeholder", "input specs do not match the graph")
        self._symbols(placeholders, specs)
        mutated = {
            s.target
            for s in self.program.graph_signature.output_specs
            if s.kind == OutputKind.BUFFER_MUTATION
        }
        storages: dict[tuple[Any, ...], Constant] = {}
        for node, spec in zip(placeholders, specs, strict=True):
            self._placeholder(node, spec, mutated, storages)
        # A mutation's new value is realized where it is computed, so later
        # readers load it instead of recomputing it from the old value (which
        # lets the scheduler write it in place, [Note: in-place mutations]).
        (output_node,) = [n for n in graph.nodes if n.op == "output"]
        self.mutation_values = {
            arg.name
            for arg, spec in zip(
                output_node.args[0], self.program.graph_signature.output_specs, strict=False
            )
            if isinstance(arg, torch.fx.Node)
            and spec.kind in (OutputKind.BUFFER_MUTATION, OutputKind.USER_INPUT_MUTATION)
        }
        outputs: list[Buffer] = []
        input_mutations: list[tuple[int, Buffer]] = []
        state_mutations: list[tuple[str, Buffer]] = []
        for node in graph.nodes:
            if node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                self._outputs(node, outputs, input_mutations, state_mutations)
            elif node.op != "placeholder":
                raise LoweringError(node.name, node.op, f"{node.op} nodes are not supported")
        return LoweredGraph(
            name=self.name,
            inputs=self.inputs,
            input_names=self.input_names,
            constants=self.constants,
            nodes=list(self.ctx.nodes),
            outputs=outputs,
            output_names=[f"output{k}" for k in range(len(outputs))],
            symbols=self.symbols,
            dim_relations=self.dim_relations,
            input_mutations=input_mutations,
            state_mutations=state_mutations,
        )

    # -- symbols ----------------------------------------------------------------------

    def _symbols(self, placeholders: list[torch.fx.Node], specs: Sequence[Any]) -> None:
        """Names torch's size symbols s0, s1, ... and records where to read them."""
        user = [
            n for n, s in zip(placeholders, specs, strict=True) if s.kind == InputKind.USER_INPUT
        ]
        tensors = [(k, n) for k, n in enumerate(u for u in user if _is_tensor(u.meta.get("val")))]
        dims = [
            (k, d, _raw(size))
            for k, node in tensors
            for d, size in enumerate(node.meta["val"].shape)
        ]
        first: dict[sympy.Symbol, tuple[int, int]] = {}
        for k, d, expr in dims:
            if isinstance(expr, sympy.Symbol) and expr not in first:
                first[expr] = (k, d)
                self.rename[expr] = size_symbol(f"s{len(self.rename)}")
        for k, d, expr in dims:
            for free in sorted(expr.free_symbols, key=str):
                if free not in first:
                    raise LoweringError(
                        tensors[k][1].name,
                        "placeholder",
                        f"dynamic size {free} appears only inside {expr} (input dim {d}); "
                        "give that input dim its own torch.export.Dim",
                    )
        ranges = self.program.range_constraints
        for torch_sym, (k, d) in first.items():
            low, high = 0, INT64_MAX
            if torch_sym in ranges:
                r = ranges[torch_sym]
                low = int(r.lower) if _finite(r.lower) else 0
                high = int(r.upper) if _finite(r.upper) else INT64_MAX
            self.symbols.append(SymbolInfo(self.rename[torch_sym], k, d, low, high))
        for k, d, expr in dims:
            if expr.free_symbols and first.get(expr) != (k, d):
                self.dim_relations.append((k, d, self.expr(expr)))

    def expr(self, value: Any) -> sympy.Expr:
        """A torch size expression (SymInt, sympy or int) in aotc's symbols and functions."""
        raw = _raw(value)
        if raw not in self._converted:
            self._converted[raw] = self._convert(raw)
        return self._converted[raw]

    def _convert(self, expr: sympy.Basic) -> sympy.Expr:
        if isinstance(expr, sympy.Symbol):
            if expr not in self.rename:
                raise ValueError(
                    f"size {expr} depends on tensor data (data-dependent shapes are not supported)"
                )
            return self.rename[expr]
        if expr.is_Number or isinstance(expr, sympy.logic.boolalg.BooleanAtom):
            return expr
        args = [self._convert(a) for a in expr.args]
        kind = type(expr).__name__
        if kind in ("FloorDiv", "CleanDiv"):
            return FloorDiv(*args)
        if kind == "ModularIndexing":
            return ModularIndexing(*args)
        if kind in ("Mod", "PythonMod"):
            return ModularIndexing(args[0], sympy.Integer(1), args[1])
        if kind == "Identity":
            return args[0]
        if kind == "PowByNatural":
            return sympy.Pow(args[0], args[1])
        if kind == "CeilDiv":
            return FloorDiv(args[0] + args[1] - 1, args[1])
        if kind in ("Max", "Min"):  # sympy's or torch's own classes
            return (sympy.Max if kind == "Max" else sympy.Min)(*args)
        if isinstance(expr, sympy.Add | sympy.Mul | sympy.Pow):
            return expr.func(*args)
        if expr.is_Relational or isinstance(expr, sympy.logic.boolalg.BooleanFunction):
            return expr.func(*args)
        raise ValueError(f"unsupported size expression {expr} ({kind})")

    # -- placeholders -----------------------------------------------------------------

    def _placeholder(
        self,
        node: torch.fx.Node,
        spec: Any,
        mutated: set[str],
        storages: dict[tuple[Any, ...], Constant],
    ) -> None:
        val = node.meta.get("val")
        if spec.kind == InputKind.USER_INPUT:
            if not _is_tensor(val):
                if isinstance(val, torch.SymInt | torch.SymFloat | torch.SymBool):
                    raise LoweringError(node.name, "placeholder", "symbolic scalar inputs")
                self.env[node] = val  # a Python constant export specialised
                return
            sizes = [self.expr(s) for s in val.shape]
            buffer = Buffer(
                self.ctx.new_name("in"),
                val.dtype,
                Layout.contiguous(sizes),
                BufferKind.INPUT,
                (node.name,),
            )
            self.input_index[node.name] = len(self.inputs)
            self.inputs.append(buffer)
            self.input_names.append(str(node.target))
            self.env[node] = buffer
            return
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            persistent = spec.kind == InputKind.PARAMETER or spec.persistent is not False
            table = self.program.state_dict if persistent else self.program.constants
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            table = self.program.constants
        else:
            raise LoweringError(node.name, "placeholder", f"{spec.kind.name} inputs")
        tensor = table[spec.target]
        if not isinstance(tensor, torch.Tensor):
            raise LoweringError(node.name, "placeholder", f"constant {spec.target} is no tensor")
        tensor = tensor.detach()
        key: tuple[Any, ...] = (
            tensor.data_ptr(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            tensor.dtype,
        )
        if tensor.numel() == 0:
            key = (id(tensor),)
        const = storages.get(key)
        kind = BufferKind.STATE if spec.target in mutated else BufferKind.CONSTANT
        if const is None:
            buffer = Buffer(
                self.ctx.new_name("const"),
                tensor.dtype,
                Layout.contiguous([sympy.Integer(s) for s in tensor.shape]),
                kind,
                (node.name,),
            )
            const = Constant(spec.target, buffer, tensor.contiguous())
            storages[key] = const
            self.constants.append(const)
        elif kind == BufferKind.STATE:
            const.buffer.kind = kind
        self.constant_of[spec.target] = const
        self.env[node] = const.buffer

    # -- call_function ----------------------------------------------------------------

    def _call(self, node: torch.fx.Node) -> None:
        target = node.target
        val = node.meta.get("val")
        if target in _SKIPPED:
            self.env[node] = None
            return
        if target is operator.getitem:
            self.env[node] = self._arg(node.args[0])[node.args[1]]
            return
        if (
            isinstance(val, torch.SymInt | torch.SymFloat | torch.SymBool)
            or (
                isinstance(val, int | float | bool)
                and not isinstance(target, torch._ops.OpOverload)
            )
            or target in (aten.sym_size.int, aten.sym_numel.default, aten.sym_stride.int)
        ):
            self.env[node] = self._guarded(node, lambda: self.expr(val))
            return
        try:
            lowering = self.registry.get(target)
            args = [self._arg(a) for a in node.args]
            kwargs = {k: self._arg(v) for k, v in node.kwargs.items()}
            # The kernel that computes this node also computes the unrealized
            # values it reads ([Note: inlined origins]).
            inlined = self.ctx.inlined_origins([*args, *kwargs.values()])
            self.ctx.start_node(node.name, (*inlined, node.name))
            result = lowering(self.ctx, *args, **kwargs)
            if isinstance(result, Reduction):
                result = self.ctx.reduce(result)
            result = self._check(result, val)
            if node.name in self.mutation_values and _is_value(result):
                result = self._computed(result)
            self.ctx.note_inlined(result, self.ctx.live_origins())
        except UnsupportedOpError as e:
            e.node = node.name  # type: ignore[attr-defined]  (as LoweringError.node)
            if hasattr(e, "add_note"):
                e.add_note(f"while lowering node {node.name!r} ({target})")
            raise
        except LoweringError:
            raise
        except Exception as e:
            raise LoweringError(
                node.name, target, f"{type(e).__name__}: {e}", node.meta.get("stack_trace")
            ) from e
        self.env[node] = result

    def _guarded(self, node: torch.fx.Node, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:
            raise LoweringError(node.name, node.target, str(e), node.meta.get("stack_trace")) from e

    def _arg(self, arg: Any) -> Any:
        if isinstance(arg, torch.fx.Node):
            return self.env[arg]
        if isinstance(arg, list | tuple):
            return type(arg)(self._arg(a) for a in arg)
        if isinstance(arg, torch.SymInt | torch.SymFloat | torch.SymBool):
            return self.expr(arg)
        return arg

    def _check(self, result: Any, val: Any) -> Any:
        """|result| against export's meta value: same dtype and sizes. Sizes that
        differ only in form (Min, FloorDiv) take export's form, which knows the
        symbols' ranges; sizes that differ at some point of the ranges fail."""
        if isinstance(result, list | tuple) and isinstance(val, list | tuple):
            if len(result) != len(val):
                raise ValueError(f"{len(result)} results where export has {len(val)}")
            return type(result)(self._check(r, v) for r, v in zip(result, val, strict=True))
        if not _is_tensor(val) or not _is_value(result):
            return result
        if result.dtype != val.dtype:
            raise ValueError(f"result dtype {result.dtype}, export says {val.dtype}")
        have = result.get_size()
        want = [self.expr(s) for s in val.shape]
        if len(have) != len(want):
            raise ValueError(f"result sizes {have}, export says {want}")
        if all(a == b for a, b in zip(have, want, strict=True)):
            return result
        for a, b in zip(have, want, strict=True):
            if not self._same_size(a, b):
                raise ValueError(f"result sizes {have}, export says {want}")
        return _resized(result, want)

    def _same_size(self, a: sympy.Expr, b: sympy.Expr) -> bool:
        if known_eq(a, b):
            return True
        free = sorted(a.free_symbols | b.free_symbols, key=str)
        info = {s.symbol: s for s in self.symbols}
        if any(s not in info for s in free):
            return False
        for pick in (
            lambda s: s.low,
            lambda s: min(s.high, s.low + 7),
            lambda s: min(s.high, 4096),
        ):
            point = {s: sympy.Integer(max(pick(info[s]), 1)) for s in free}
            if a.subs(point) != b.subs(point):
                return False
        return True

    # -- outputs ----------------------------------------------------------------------

    def _outputs(
        self,
        node: torch.fx.Node,
        outputs: list[Buffer],
        input_mutations: list[tuple[int, Buffer]],
        state_mutations: list[tuple[str, Buffer]],
    ) -> None:
        returned = node.args[0]
        specs = self.program.graph_signature.output_specs
        if len(returned) != len(specs):
            raise LoweringError(node.name, "output", "output specs do not match the graph")
        used: set[str] = set()
        for arg, spec in zip(returned, specs, strict=True):
            where = arg.name if isinstance(arg, torch.fx.Node) else "output"
            value = self._arg(arg)
            if value is None and spec.kind == OutputKind.USER_OUTPUT:
                continue  # forward returned None (a model that only mutates): no buffer
            self.ctx.start_node(where, self.ctx.inlined_origins(value) or (where,))
            if not _is_value(value):
                raise LoweringError(where, "output", f"non-tensor output {value!r}")
            if spec.kind == OutputKind.USER_OUTPUT:
                buffer = self._distinct(value, used)
                used.add(buffer.name)
                outputs.append(buffer)
            elif spec.kind == OutputKind.BUFFER_MUTATION:
                const = self.constant_of[spec.target]
                if value is not const.buffer:
                    state_mutations.append((const.name, self._computed(value)))
            elif spec.kind == OutputKind.USER_INPUT_MUTATION:
                index = self.input_index[spec.target]
                if value is not self.inputs[index]:
                    input_mutations.append((index, self._computed(value)))
            else:
                raise LoweringError(where, "output", f"{spec.kind.name} outputs")

    def _computed(self, value: TensorValue) -> Buffer:
        """|value| as a contiguous COMPUTED buffer (copied if it is anything else)."""
        if isinstance(value, ReinterpretView) and _whole(value):
            value = value.data
        if (
            isinstance(value, Buffer)
            and value.kind == BufferKind.COMPUTED
            and value.layout.is_contiguous()
        ):
            return value
        return self.ctx.compute(value.get_size(), value.dtype, value.make_loader())

    def _distinct(self, value: TensorValue, used: set[str]) -> Buffer:
        buffer = self._computed(value)
        if buffer.name in used:
            buffer = self.ctx.compute(buffer.get_size(), buffer.dtype, buffer.make_loader())
        return buffer


def _raw(value: Any) -> sympy.Basic:
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return value.node.expr
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool):
        return sympy.true if value else sympy.false
    return sympy.sympify(value)


def _finite(bound: Any) -> bool:
    return isinstance(bound, int) or bool(getattr(bound, "is_Integer", False))


def _is_tensor(val: Any) -> bool:
    return isinstance(val, torch.Tensor)


def _is_value(value: Any) -> bool:
    return isinstance(value, Buffer | ReinterpretView | Pointwise | GenericView)


def _whole(view: ReinterpretView) -> bool:
    """True when |view| is its buffer's whole contiguous layout."""
    have, base = view.layout, view.data.layout
    return (
        have.offset == 0
        and have.is_contiguous()
        and len(have.sizes) == len(base.sizes)
        and all(known_eq(a, b) for a, b in zip(have.sizes, base.sizes, strict=True))
    )


def _resized(value: TensorValue, sizes: list[sympy.Expr]) -> TensorValue:
    """|value| with sizes proven equal to its own written differently."""
    if isinstance(value, ReinterpretView):
        return ReinterpretView(
            value.data, Layout(tuple(sizes), value.layout.strides, value.layout.offset)
        )
    if isinstance(value, GenericView):
        return GenericView(value.data, sizes, value.reindex)
    if isinstance(value, Pointwise):
        return Pointwise(sizes, value.dtype, value.inner_fn)
    return value
