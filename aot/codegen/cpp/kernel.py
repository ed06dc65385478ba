"""C++ source of one LoopKernel: ``static int32_t <name>(const KernelContext&)``.

[Note: C++ loop kernels] The loop structure is LoopKernel's (see its
docstring): the outer ranges run in parallel through aotc_rt::parallel_for,
flattened (``x`` decomposed into i0, i1 ... with ``/`` and ``%``); for each
outer index the nodes run in order:
- Reductions accumulate over the inner ranges r0, r1 ... Consecutive
  reductions that do not read each other share one loop (and its loads).
  Floating sum/prod/max/min accumulate in 16 lanes over the innermost inner
  dim (a fixed-size lane loop that g++ vectorises without -ffast-math, since
  the order of operations is written out; it also sums more accurately than
  one running total), then combine the lanes. The outputs of one Welford
  reduction share one accumulator (mean, m2, weight; per lane, merged with
  Chan's formula): one pass writes both ([Note: multi-output reductions]).
- Pointwise nodes over outer + inner loop over the inner ranges; consecutive
  ones that do not read each other's memory share a loop.
- Pointwise nodes over outer compute one element.
A kernel of only pointwise nodes with two or more outer dims runs the last
one as the inner loop (rows in parallel, a unit-stride loop inside), so g++
can vectorise it.

Buffers in LoopKernel.local never touch memory: a reduction's (or an outer
pointwise's) value is a C++ local that later loads at the aligned index read;
a pointwise node over outer + inner is recomputed at each load site (bodies
are pure; CSE folds repeats within a loop body). Values are converted to the
buffer's dtype exactly as a store and load would, so results do not depend on
what the scheduler kept local. An outer value that is also stored (a
reduction the graph reads elsewhere) stays in its register for later aligned
reads in the kernel.

A kernel whose outer ranges are statically empty has an empty body ([Note:
empty tensors] in aot/ir/symbols.py).

Indirect indices are bounds-checked (aotc_rt::checked_index); after the loop
the kernel returns AOTC_ABI_OUT_OF_RANGE with a message naming its debug
handle. All index arithmetic is int64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import sympy
import torch

from ...ir.graph import LoweredGraph
from ...ir.nodes import (
    WELFORD_OUTPUTS,
    ComputedBuffer,
    ExternKernel,
    Pointwise,
    Reduction,
    WelfordReduction,
)
from ...ir.ops import PrintHandler
from ...ir.symbols import FloorDiv, ModularIndexing, index_vars, product, reduction_vars
from ...scheduler.schedule import LoopKernel
from .ops_printer import (
    CodegenError,
    CppIndexPrinter,
    CppOpsHandler,
    CppValue,
    CppWriter,
    c_string,
    cpp_literal,
    cpp_type,
)

# Each parallel chunk gets at least this many elements of work.
GRAIN_ELEMENTS = 4096
# Accumulator lanes of vectorisable floating reductions.
LANES = 16
_LANE_TYPES = ("sum", "prod", "max", "min")
_LOOP_VAR = re.compile(r"[ir]\d+")

__all__ = ["EpilogueCode", "generate_epilogue", "generate_loop_kernel", "graph_buffer_dtypes"]


def graph_buffer_dtypes(graph: LoweredGraph) -> dict[str, torch.dtype]:
    """Element dtype of every buffer of |graph| (inputs, constants, computed
    and extern outputs): what generate_loop_kernel's |buffer_dtypes| needs."""
    dtypes = {b.name: b.dtype for b in graph.inputs}
    dtypes.update({c.buffer.name: c.buffer.dtype for c in graph.constants})
    for node in graph.nodes:
        for buffer in node.outputs if isinstance(node, ExternKernel) else [node]:
            dtypes[buffer.name] = buffer.dtype
    return dtypes


def generate_loop_kernel(
    kernel: LoopKernel,
    buffer_ids: dict[str, int],
    size_expr: Callable[[sympy.Expr], str],
    debug_handle: str,
    buffer_dtypes: Mapping[str, torch.dtype] | None = None,
) -> str:
    """The C++ function for |kernel|.

    |buffer_ids|: index into ctx.buf of every buffer the kernel reads or
    writes (local buffers need none). |size_expr|: C++ text of a size symbol
    (e.g. "ctx.sym[0]"); each is read once at the top of the function.
    |debug_handle|: "<kernel>:<N>", in the provenance comment and in errors.
    |buffer_dtypes|: dtypes of the buffers the kernel reads that it does not
    compute itself (inputs, constants, earlier kernels' outputs; see
    graph_buffer_dtypes)."""
    return _KernelPrinter(kernel, buffer_ids, size_expr, debug_handle, buffer_dtypes or {}).render()


@dataclass
class EpilogueCode:
    """A LoopKernel as the epilogue of an extern call ([Note: epilogue
    fusion]): |setup| declares its pointers and sizes in the extern's
    function, |functor| defines ``auto epilogue = [&](int64_t row, int64_t c0,
    int64_t c1) {...};`` over one row segment, and |returns| ends the
    function once the extern succeeded (reporting index errors)."""

    setup: list[str]
    functor: list[str]
    returns: list[str]


def generate_epilogue(
    kernel: LoopKernel,
    buffer_ids: dict[str, int],
    size_expr: Callable[[sympy.Expr], str],
    debug_handle: str,
    buffer_dtypes: Mapping[str, torch.dtype] | None = None,
) -> EpilogueCode:
    """|kernel| (pure pointwise over two or more dims, aot/scheduler/
    epilogue.py) as the row-segment functor an extern kernel calls: the
    parallel rows become the functor's |row| argument and the last dim's loop
    runs over [c0, c1)."""
    printer = _KernelPrinter(kernel, buffer_ids, size_expr, debug_handle, buffer_dtypes or {})
    return printer.render_epilogue()


# ---------------------------------------------------------------------------


@dataclass
class _Local:
    """A register-resident buffer: |value| (scalar per outer index) or, when
    None, |node|'s body re-evaluated at each load."""

    node: ComputedBuffer
    expected_index: sympy.Expr
    value: CppValue | None = None
    body_vars: list[sympy.Expr] | None = None


@dataclass
class _Group:
    kind: str  # "reduction", "loop" (pointwise over outer + inner) or "outer"
    nodes: list[ComputedBuffer]


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    a, b = sympy.sympify(a), sympy.sympify(b)
    return a == b or sympy.expand(a - b) == 0


def _same_sizes(a: Sequence[sympy.Expr], b: Sequence[sympy.Expr]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


def _bind_unit_dims(variables: list[sympy.Symbol], sizes: Sequence[sympy.Expr]) -> list[sympy.Expr]:
    """Loop variables, with 0 for dims of static size 1 (so every body and
    every aligned-load check sees the same index)."""
    return [sympy.Integer(0) if _same(s, 1) else v for v, s in zip(variables, sizes, strict=True)]


class _ReadRecorder(PrintHandler):
    """Records the buffers a body loads (masked bodies included)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: set[str] = set()

    def load(self, name: str, index: sympy.Expr) -> str:
        self.reads.add(name)
        return name


class _KernelPrinter:
    def __init__(
        self,
        kernel: LoopKernel,
        buffer_ids: Mapping[str, int],
        size_expr: Callable[[sympy.Expr], str],
        debug_handle: str,
        buffer_dtypes: Mapping[str, torch.dtype],
    ) -> None:
        self.kernel = kernel
        self.buffer_ids = buffer_ids
        self.size_expr = size_expr
        self.debug_handle = debug_handle
        self.nodes = {node.name: node for node in kernel.nodes}
        dtypes = dict(buffer_dtypes)
        dtypes.update({node.name: node.dtype for node in kernel.nodes})
        self.size_locals: dict[sympy.Symbol, str] = {}
        self.pointers: dict[str, str] = {}
        self.writer = CppWriter(indent=3)
        self.index = CppIndexPrinter(self._symbol_name)
        self.ops = CppOpsHandler(self.writer, self.index, dtypes, self._pointer, self._load_local)
        self.locals: dict[str, _Local] = {}
        self.stored_scalars: dict[str, _Local] = {}  # outer values also in memory
        self._read_cache: dict[str, set[str]] = {}
        self.row_segment = False  # epilogue: the last loop runs over [c0, c1)
        self._plan_loops()

    # -- names -------------------------------------------------------------------
    def _symbol_name(self, symbol: sympy.Symbol) -> str:
        name = symbol.name
        if _LOOP_VAR.fullmatch(name) or name == "x" or name in self.ops.indirect_names:
            return name
        local = self.size_locals.get(symbol)
        if local is None:
            local = name if re.fullmatch(r"s\d+", name) else f"ks{len(self.size_locals)}"
            self.size_locals[symbol] = local
        return local

    def _pointer(self, name: str) -> str:
        pointer = self.pointers.get(name)
        if pointer is None:
            base = "p_" + re.sub(r"\W", "_", name)
            pointer, n = base, 1
            while pointer in self.pointers.values():
                pointer, n = f"{base}_{n}", n + 1
            self.pointers[name] = pointer
        return pointer

    # -- loop structure ------------------------------------------------------------
    def _plan_loops(self) -> None:
        kernel = self.kernel
        outer, inner = list(kernel.outer), list(kernel.inner)
        self.outer_vars = _bind_unit_dims(index_vars(len(outer)), outer)
        self.inner_vars = _bind_unit_dims(reduction_vars(len(inner)), inner)
        pure = not inner and all(isinstance(n.data, Pointwise) for n in kernel.nodes)
        if pure and len(outer) >= 2:
            # Rows in parallel, the last outer dim as a unit-stride inner loop.
            self.par_sizes, self.par_vars = outer[:-1], self.outer_vars[:-1]
            self.loop_sizes, self.loop_vars = outer[-1:], self.outer_vars[-1:]
        else:
            self.par_sizes, self.par_vars = outer, self.outer_vars
            self.loop_sizes, self.loop_vars = inner, self.inner_vars

    def _node_vars(self, node: ComputedBuffer) -> list[sympy.Expr]:
        """The index a node's body is called with, checked against its ranges."""
        data, kernel = node.data, self.kernel
        if isinstance(data, Reduction):
            if not _same_sizes(data.ranges, kernel.outer) or not _same_sizes(
                data.reduction_ranges, kernel.inner
            ):
                raise CodegenError(
                    f"{kernel.name}: reduction {node.name} over {data.ranges} x "
                    f"{data.reduction_ranges} does not match the kernel's loops "
                    f"{kernel.outer} x {kernel.inner}"
                )
            return self.outer_vars
        if _same_sizes(data.ranges, kernel.outer):
            return self.outer_vars
        if _same_sizes(data.ranges, list(kernel.outer) + list(kernel.inner)):
            return self.outer_vars + self.inner_vars
        raise CodegenError(
            f"{kernel.name}: pointwise {node.name} over {data.ranges} matches neither the "
            f"outer ranges {kernel.outer} nor outer + inner {kernel.outer + kernel.inner}"
        )

    def _is_loop_node(self, node: ComputedBuffer) -> bool:
        """A pointwise node that runs inside the inner loop (not once per
        parallel index)."""
        return len(self._node_vars(node)) > len(self.par_vars)

    def _reads(self, name: str) -> set[str]:
        """Buffers node |name| reads, through the bodies of local nodes too."""
        if name not in self._read_cache:
            self._read_cache[name] = set()  # (DAG: no cycles; guards recursion)
            node = self.nodes[name]
            recorder = _ReadRecorder()
            variables = self._node_vars(node)
            if isinstance(node.data, Reduction):
                node.data.inner_fn(recorder, variables, self.inner_vars)
            else:
                node.data.inner_fn(recorder, variables)
            reads = set(recorder.reads)
            for read in recorder.reads:
                if read in self.kernel.local and read in self.nodes:
                    reads |= self._reads(read)
            self._read_cache[name] = reads
        return self._read_cache[name]

    def _groups(self) -> list[_Group]:
        groups: list[_Group] = []
        for node in self.kernel.nodes:
            if isinstance(node.data, Reduction):
                kind = "reduction"
            elif self._is_loop_node(node):
                if node.name in self.kernel.local:
                    continue  # recomputed where it is read
                kind = "loop"
            else:
                kind = "outer"
            last = groups[-1] if groups else None
            if (
                kind != "outer"
                and last is not None
                and last.kind == kind
                and not any(m.name in self._reads(node.name) for m in last.nodes)
            ):
                last.nodes.append(node)
            else:
                groups.append(_Group(kind, [node]))
        return groups

    # -- locals ------------------------------------------------------------------
    def _load_local(self, ops: CppOpsHandler, name: str, index: sympy.Expr) -> CppValue | None:
        if name not in self.kernel.local:
            # A value this kernel stored at the current outer index is still
            # in a register; other indices read memory.
            stored = self.stored_scalars.get(name)
            if stored is not None and _same(index, stored.expected_index):
                return stored.value
            return None
        local = self.locals.get(name)
        if local is None:
            raise CodegenError(
                f"{self.kernel.name}: local buffer {name} is read before a node computes it"
            )
        if local.value is not None:
            if not _same(index, local.expected_index):
                raise CodegenError(
                    f"{self.kernel.name}: local buffer {name} is read at {index}, not at the "
                    f"aligned index {local.expected_index}"
                )
            return local.value
        node = local.node
        if _same(index, local.expected_index):
            variables = local.body_vars
        else:  # read elsewhere in the row: recompute there (bodies are pure)
            variables = self._unflatten(node, index)
        return ops.to_dtype(node.data.inner_fn(ops, variables), node.dtype)

    @staticmethod
    def _unflatten(node: ComputedBuffer, index: sympy.Expr) -> list[sympy.Expr]:
        layout = node.layout
        flat = index - layout.offset
        out: list[sympy.Expr] = []
        for k, (size, stride) in enumerate(zip(layout.sizes, layout.strides, strict=True)):
            out.append(FloorDiv(flat, stride) if k == 0 else ModularIndexing(flat, stride, size))
        return out

    # -- emission ----------------------------------------------------------------
    def _comment(self, node: ComputedBuffer, what: str) -> None:
        origins = f" <- {', '.join(node.origins)}" if node.origins else ""
        local = " (local)" if node.name in self.kernel.local else ""
        self.writer.line(f"// {node.name}{local}: {what}{origins}")

    def _finish(self, node: ComputedBuffer, value: CppValue) -> None:
        """Stores a node's value at the outer index, or keeps it local."""
        value = self.ops.to_dtype(value, node.dtype)
        local = _Local(node, node.layout.index(self.outer_vars), value=value)
        if node.name in self.kernel.local:
            self.locals[node.name] = local
        else:
            self._store(node, self.outer_vars, value)
            self.stored_scalars[node.name] = local

    def _store(self, node: ComputedBuffer, variables: list[sympy.Expr], value: CppValue) -> None:
        if node.name not in self.buffer_ids:
            raise CodegenError(f"{self.kernel.name}: buffer {node.name} has no buffer id")
        self.ops.store(node.name, node.layout.index(variables), value)

    def _loops(
        self, stack: ExitStack, sizes: Sequence[sympy.Expr], variables: Sequence[sympy.Expr]
    ) -> None:
        """Opens one `for` per loop variable (unit dims bound to 0 have none)."""
        for size, var in zip(sizes, variables, strict=True):
            if isinstance(var, sympy.Symbol):
                begin, end = "0", self.index(size)
                if self.row_segment and sizes is self.loop_sizes:
                    begin, end = "c0", "c1"
                header = f"for (int64_t {var} = {begin}; {var} < {end}; ++{var}) {{"
                stack.enter_context(self.writer.block(header))

    def _emit_outer(self, node: ComputedBuffer) -> None:
        self._comment(node, "pointwise")
        self._finish(node, node.data.inner_fn(self.ops, self.outer_vars))

    def _emit_loop(self, nodes: list[ComputedBuffer]) -> None:
        for node in nodes:
            self._comment(node, "pointwise over the inner loop")
        with ExitStack() as stack:
            self._loops(stack, self.loop_sizes, self.loop_vars)
            for node in nodes:
                variables = self._node_vars(node)
                self._store(node, variables, node.data.inner_fn(self.ops, variables))

    def _register_inline_locals(self) -> None:
        for node in self.kernel.nodes:
            if node.name in self.kernel.local and isinstance(node.data, Pointwise):
                variables = self._node_vars(node)
                if self._is_loop_node(node):
                    expected = node.layout.index(variables)
                    self.locals[node.name] = _Local(node, expected, body_vars=variables)
                    self._comment(node, "pointwise, recomputed where it is read")

    def _accumulators(self, nodes: list[ComputedBuffer]) -> list[_Accumulator]:
        """One accumulator per reduction, the outputs of one Welford
        reduction sharing theirs ([Note: multi-output reductions])."""
        accs: list[_Accumulator] = []
        welford: dict[str, _WelfordAccumulator] = {}
        for node in nodes:
            data = node.data
            if not isinstance(data, WelfordReduction):
                accs.append(_Accumulator(self, node))
                continue
            acc = welford.get(data.group)
            if acc is None:
                if data.output_index != 0:
                    raise CodegenError(
                        f"{self.kernel.name}: Welford output {node.name} is not in the loop "
                        f"of its group {data.group}"
                    )
                acc = welford[data.group] = _WelfordAccumulator(self, node)
                accs.append(acc)
            else:
                acc.outputs.append(node)
        return accs

    def _emit_reductions(self, nodes: list[ComputedBuffer]) -> None:
        accs = self._accumulators(nodes)
        for acc in accs:
            for node in acc.output_nodes():
                self._comment(node, f"{acc.describe(node)} over {list(self.kernel.inner)}")
        loop_vars = [v for v in self.inner_vars if isinstance(v, sympy.Symbol)]
        loop_sizes = [
            s for s, v in zip(self.kernel.inner, self.inner_vars, strict=True) if v in loop_vars
        ]
        last_size = loop_sizes[-1] if loop_sizes else None
        lanes = (
            last_size is not None
            and all(a.lanes for a in accs)
            and not (last_size.is_Integer and int(last_size) < 2 * LANES)
        )
        if not lanes:
            for acc in accs:
                acc.init_scalar()
            with ExitStack() as stack:
                self._loops(stack, loop_sizes, loop_vars)
                for acc in accs:
                    acc.update(None)
        else:
            for acc in accs:
                acc.init_lanes()
            last, size = loop_vars[-1], self.index(last_size)
            end = self.writer.new_name(f"{last}_end")
            self.writer.line(f"const int64_t {end} = {size} - {size} % {LANES};")
            writer = self.writer
            with ExitStack() as stack:
                self._loops(stack, loop_sizes[:-1], loop_vars[:-1])
                base = f"{last}b"
                with writer.block(
                    f"for (int64_t {base} = 0; {base} < {end}; {base} += {LANES}) {{"
                ):
                    with writer.block(f"for (int64_t lane = 0; lane < {LANES}; ++lane) {{"):
                        position, indent = writer.placeholder(), writer.indent
                        for acc in accs:
                            acc.update("lane")
                        if _uses(writer.lines[position + 1 :], str(last)):
                            writer.set_line(
                                position, f"const int64_t {last} = {base} + lane;", indent
                            )
                with writer.block(f"for (int64_t {last} = {end}; {last} < {size}; ++{last}) {{"):
                    for acc in accs:
                        acc.update("0")
            for acc in accs:
                acc.combine_lanes()
        for acc in accs:
            for node, value in acc.results():
                self._finish(node, value)

    def _body(self) -> None:
        self._register_inline_locals()
        for group in self._groups():
            if group.kind == "reduction":
                self._emit_reductions(group.nodes)
            elif group.kind == "loop":
                self._emit_loop(group.nodes)
            else:
                self._emit_outer(group.nodes[0])

    # -- assembly ------------------------------------------------------------------
    def _grain(self) -> str:
        work = product([s for s in self.loop_sizes])
        if work.is_Integer:
            return str(max(1, math.ceil(GRAIN_ELEMENTS / max(int(work), 1))))
        return f"std::max<int64_t>(1, {GRAIN_ELEMENTS} / std::max<int64_t>(1, {self.index(work)}))"

    def _decompose(self) -> tuple[str, list[tuple[str, str]]]:
        """The parallel loop variable and the lines that derive i0, i1 ..."""
        symbols = [(v, s) for v, s in zip(self.par_vars, self.par_sizes, strict=True)]
        live = [(v, s) for v, s in symbols if isinstance(v, sympy.Symbol)]
        if len(live) == 1 and len(symbols) == 1:
            return str(live[0][0]), []
        x = sympy.Symbol("x", integer=True, nonnegative=True)
        lines, stride = [], sympy.Integer(1)
        strides = []
        for _, size in reversed(symbols):
            strides.append(stride)
            stride = stride * size
        strides.reverse()
        for k, ((var, size), st) in enumerate(zip(symbols, strides, strict=True)):
            if not isinstance(var, sympy.Symbol):
                continue
            expr = FloorDiv(x, st) if k == 0 else ModularIndexing(x, st, size)
            lines.append((str(var), f"const int64_t {var} = {self.index(expr)};"))
        return "x", lines

    def render(self) -> str:
        kernel = self.kernel
        out = self._header()
        if product(list(kernel.outer)) == 0:
            # Nothing to write; an empty inner range under a non-empty outer
            # one is an ordinary kernel ([Note: empty tensors]).
            out += ["  (void)ctx;  // empty", "  return AOTC_ABI_OK;", "}"]
            return "\n".join(out) + "\n"
        self._body()
        body = self.writer.lines
        loop_var, decompose = self._decompose()
        numel = self.index(product(list(self.par_sizes)))
        grain = self._grain()
        for symbol, local in self.size_locals.items():
            out.append(f"  const int64_t {local} = {self.size_expr(symbol)};")
        for name in dict.fromkeys([*self.ops.loaded, *self.ops.stored]):
            out.append(self._pointer_decl(name, written=name in self.ops.stored))
        for error in self.ops.index_errors.values():
            out.append(f"  aotc_rt::IndexError {error};")
        out.append(
            f"  aotc_rt::parallel_for(ctx, 0, {numel}, {grain}, [&](int64_t begin, int64_t end) {{"
        )
        out.append(f"    for (int64_t {loop_var} = begin; {loop_var} < end; ++{loop_var}) {{")
        out.extend("      " + line for var, line in decompose if _uses(body, var))
        out.extend(line for line in body if line)  # (unused placeholders are empty)
        out.append("    }")
        out.append("  });")
        out.extend(self._returns())
        out.append("}")
        return "\n".join(out) + "\n"

    def render_epilogue(self) -> EpilogueCode:
        if self.loop_sizes != list(self.kernel.outer[-1:]) or len(self.kernel.outer) < 2:
            raise CodegenError(
                f"{self.kernel.name}: an epilogue must be pure pointwise over two or more dims"
            )
        self.row_segment = True
        self._body()
        body = self.writer.lines
        loop_var, decompose = self._decompose()
        setup = [f"// epilogue {self.kernel.name}: {', '.join(n.name for n in self.kernel.nodes)}"]
        for symbol, local in self.size_locals.items():
            setup.append(f"const int64_t {local} = {self.size_expr(symbol)};")
        for name in dict.fromkeys([*self.ops.loaded, *self.ops.stored]):
            setup.append(self._pointer_decl(name, written=name in self.ops.stored).strip())
        setup += [f"aotc_rt::IndexError {error};" for error in self.ops.index_errors.values()]
        functor = [f"auto epilogue = [&](int64_t {loop_var}, int64_t c0, int64_t c1) {{"]
        functor += ["  " + line for var, line in decompose if _uses(body, var)]
        functor += [line[4:] for line in body if line]  # two levels shallower than a kernel
        functor.append("};")
        return EpilogueCode(setup, functor, [line.strip() for line in self._returns()])

    def _header(self) -> list[str]:
        """The comments and the signature line."""
        kernel = self.kernel
        origins: list[str] = []
        for node in kernel.nodes:
            origins.extend(o for o in node.origins if o not in origins)
        out = [f"// {self.debug_handle}"]
        if origins:
            out.append(f"// origins: {', '.join(origins)}")
        if kernel.bytes_read != 0 or kernel.bytes_written != 0:
            out.append(f"// bytes: read {kernel.bytes_read}, written {kernel.bytes_written}")
        out.append(f"static int32_t {kernel.name}(const aotc_rt::KernelContext& ctx) {{")
        return out

    def _pointer_decl(self, name: str, written: bool) -> str:
        if name not in self.buffer_ids:
            raise CodegenError(f"{self.kernel.name}: buffer {name} has no buffer id")
        ctype = cpp_type(self.ops.buffer_dtypes[name])
        const = "" if written else "const "
        return (
            f"  {const}{ctype}* {self._pointer(name)} = "
            f"static_cast<{const}{ctype}*>(ctx.buf[{self.buffer_ids[name]}]);"
        )

    def _returns(self) -> list[str]:
        handle = c_string(self.debug_handle)
        errors = list(self.ops.index_errors.items())
        if not errors:
            return ["  return AOTC_ABI_OK;"]
        out = []
        for what, error in errors[:-1]:
            out.append(
                f"  if (const int32_t code = {error}.report(ctx, {handle}, {c_string(what)})) "
                "return code;"
            )
        what, error = errors[-1]
        out.append(f"  return {error}.report(ctx, {handle}, {c_string(what)});")
        return out


class _Accumulator:
    """The accumulator(s) of one reduction node and their C++."""

    def __init__(self, printer: _KernelPrinter, node: ComputedBuffer) -> None:
        self.printer = printer
        self.node = node
        self.data: Reduction = node.data  # type: ignore[assignment]
        self.kind = self.data.reduction_type
        self.dtype = _accumulator_dtype(self.data)
        self.ctype = cpp_type(self.dtype)
        self.lanes = self.dtype.is_floating_point and self.kind in _LANE_TYPES
        self.name = printer.writer.new_name("acc")
        self.lane_array: str | None = None

    @property
    def writer(self) -> CppWriter:
        return self.printer.writer

    def _identity(self) -> str:
        kind, dtype, ctype = self.kind, self.dtype, self.ctype
        if kind in ("any", "all"):
            return "false" if kind == "any" else "true"
        if dtype == torch.bool:
            return "false" if kind in ("sum", "max") else "true"
        if kind == "sum":
            return cpp_literal(0, dtype)
        if kind == "prod":
            return cpp_literal(1, dtype)
        if kind in ("max", "argmax"):
            return f"aotc_math::max_identity<{ctype}>()"
        return f"aotc_math::min_identity<{ctype}>()"

    def init_scalar(self) -> None:
        self.writer.line(f"{self.ctype} {self.name} = {self._identity()};")
        if self.kind in ("argmax", "argmin"):
            self.writer.line(f"int64_t {self.name}_index = 0;")

    def init_lanes(self) -> None:
        self.lane_array = f"{self.name}_lanes"
        self.writer.line(f"{self.ctype} {self.lane_array}[{LANES}];")
        self.writer.line(
            f"for (int lane = 0; lane < {LANES}; ++lane) {self.lane_array}[lane] = "
            f"{self._identity()};"
        )

    def _combine(self, acc: str, value: str) -> str:
        kind, dtype, ctype = self.kind, self.dtype, self.ctype
        if kind == "any" or (dtype == torch.bool and kind in ("sum", "max")):
            return f"{acc} || {value}"
        if kind == "all" or (dtype == torch.bool and kind in ("prod", "min")):
            return f"{acc} && {value}"
        if kind == "sum":
            return (
                f"{acc} + {value}"
                if dtype.is_floating_point
                else f"aotc_math::wrapping_add({acc}, {value})"
            )
        if kind == "prod":
            return (
                f"{acc} * {value}"
                if dtype.is_floating_point
                else f"aotc_math::wrapping_mul({acc}, {value})"
            )
        if kind == "max":
            return f"aotc_math::maximum<{ctype}>({acc}, {value})"
        return f"aotc_math::minimum<{ctype}>({acc}, {value})"

    def update(self, lane: str | None) -> None:
        """Evaluates the body at the current inner index and combines it."""
        printer = self.printer
        ops = printer.ops
        value = self.data.inner_fn(ops, printer.outer_vars, printer.inner_vars)
        value = ops.to_dtype(value, self.dtype)
        if self.kind in ("argmax", "argmin"):
            inner = list(printer.kernel.inner)
            flat = _flat_index(printer.inner_vars, inner)
            self.writer.line(
                f"aotc_math::{self.kind}_combine<{self.ctype}>({self.name}, {self.name}_index, "
                f"{value.expr}, {printer.index(flat)});"
            )
            return
        target = self.name if lane is None else f"{self.lane_array}[{lane}]"
        self.writer.line(f"{target} = {self._combine(target, value.expr)};")

    def combine_lanes(self) -> None:
        self.writer.line(f"{self.ctype} {self.name} = {self.lane_array}[0];")
        self.writer.line(
            f"for (int lane = 1; lane < {LANES}; ++lane) {self.name} = "
            f"{self._combine(self.name, f'{self.lane_array}[lane]')};"
        )

    def result(self) -> CppValue:
        if self.kind in ("argmax", "argmin"):
            return CppValue(f"{self.name}_index", torch.int64)
        return CppValue(self.name, self.dtype)

    def output_nodes(self) -> list[ComputedBuffer]:
        return [self.node]

    def results(self) -> list[tuple[ComputedBuffer, CppValue]]:
        """(node, value) of every output this accumulator computes (after
        the loop; may emit lines)."""
        return [(self.node, self.result())]

    def describe(self, node: ComputedBuffer) -> str:
        return self.kind


class _WelfordAccumulator(_Accumulator):
    """(mean, m2, weight) of one Welford reduction, for all its outputs
    (|outputs|, in the kernel's order). Lanes run Welford's update each on
    their share of the innermost dim, then merge with Chan's formula
    (aotc_math::welford_update / welford_combine)."""

    _PARTS = ("mean", "m2", "weight")

    def __init__(self, printer: _KernelPrinter, node: ComputedBuffer) -> None:
        super().__init__(printer, node)
        # Statistics accumulate in double, as ATen's CPU var/std do: in float32
        # a running mean near 1e4 loses the variance's low bits (measured:
        # 3e-4 error against eager's 3e-8 on 1e4 + randn).
        self.dtype = torch.float64
        self.ctype = cpp_type(self.dtype)
        self.outputs: list[ComputedBuffer] = [node]
        self.lanes = True

    def _vars(self, suffix: str = "", lane: str | None = None) -> list[str]:
        at = "" if lane is None else f"[{lane}]"
        return [f"{self.name}_{part}{suffix}{at}" for part in self._PARTS]

    def init_scalar(self) -> None:
        zero = cpp_literal(0, self.dtype)
        for var in self._vars():
            self.writer.line(f"{self.ctype} {var} = {zero};")

    def init_lanes(self) -> None:
        self.lane_array = "lanes"
        zero = cpp_literal(0, self.dtype)
        for var in self._vars("_lanes"):
            self.writer.line(f"{self.ctype} {var}[{LANES}];")
            self.writer.line(f"for (int lane = 0; lane < {LANES}; ++lane) {var}[lane] = {zero};")

    def update(self, lane: str | None) -> None:
        printer = self.printer
        value = self.data.inner_fn(printer.ops, printer.outer_vars, printer.inner_vars)
        value = printer.ops.to_dtype(value, self.dtype)
        targets = self._vars() if lane is None else self._vars("_lanes", lane)
        self.writer.line(
            f"aotc_math::welford_update<{self.ctype}>({', '.join(targets)}, {value.expr});"
        )

    def combine_lanes(self) -> None:
        for var, lane0 in zip(self._vars(), self._vars("_lanes", "0"), strict=True):
            self.writer.line(f"{self.ctype} {var} = {lane0};")
        merged = ", ".join(self._vars() + self._vars("_lanes", "lane"))
        self.writer.line(
            f"for (int lane = 1; lane < {LANES}; ++lane) "
            f"aotc_math::welford_combine<{self.ctype}>({merged});"
        )

    def output_nodes(self) -> list[ComputedBuffer]:
        return list(self.outputs)

    def results(self) -> list[tuple[ComputedBuffer, CppValue]]:
        mean, m2, weight = self._vars()
        out = []
        for node in self.outputs:
            if node.data.output_index == 0:  # type: ignore[union-attr]
                name = self.writer.new_name("mean")
                self.writer.line(
                    f"const {self.ctype} {name} = "
                    f"aotc_math::welford_mean<{self.ctype}>({mean}, {weight});"
                )
                out.append((node, CppValue(name, self.dtype)))
            else:
                out.append((node, CppValue(m2, self.dtype)))
        return out

    def describe(self, node: ComputedBuffer) -> str:
        index = node.data.output_index  # type: ignore[union-attr]
        return f"welford {WELFORD_OUTPUTS[index]} (of {self.node.name})"


def _accumulator_dtype(data: Reduction) -> torch.dtype:
    kind, src = data.reduction_type, data.src_dtype
    if kind in ("any", "all"):
        return torch.bool
    if src in (torch.bfloat16, torch.float16):
        return torch.float32
    if kind in ("sum", "prod") and not src.is_floating_point:
        # Integer sums accumulate in the result's type (sum(int32) -> int64).
        if not data.dtype.is_floating_point and data.dtype != torch.bool:
            return data.dtype
    return src


def _uses(lines: Sequence[str], name: str) -> bool:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return any(pattern.search(line) for line in lines)


def _flat_index(variables: Sequence[sympy.Expr], sizes: Sequence[sympy.Expr]) -> sympy.Expr:
    flat, stride = sympy.Integer(0), sympy.Integer(1)
    for var, size in reversed(list(zip(variables, sizes, strict=True))):
        flat += var * stride
        stride = stride * size
    return flat
