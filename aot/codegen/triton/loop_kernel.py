"""Triton kernels for LoopKernels, and LoopKernels as GEMM/conv epilogues.

[Note: Triton loop kernels] A LoopKernel (aot/scheduler/schedule.py) becomes
one @triton.jit function named after it. Its outer ranges are flattened into
one axis ``xindex`` tiled by XBLOCK programs; the outer variables i0, i1 ...
derive from it with ``//`` and ``%``. Every buffer it reads or writes (but
the local ones) is one pointer parameter from the buffer's start.

- A pointwise kernel (no inner ranges) is a 1-D grid of XBLOCK (1024, four
  warps) elements per program, masked at the tail; its nodes run in order on
  the whole block.
- A kernel with reductions tiles XBLOCK rows x RBLOCK inner elements
  (``rindex`` along axis 1; the inner variables r0, r1 ... derive from it).
  When the inner numel is static and at most PERSISTENT_MAX, a row fits one
  tile ("persistent"): every group of nodes runs on that tile, so loads the
  groups share (softmax's x) are made once. Otherwise each reduction group
  and each pointwise-over-inner group loops over RBLOCK chunks, reductions
  keeping running accumulators of the tile's shape (Welford's update per
  lane for mean/m2), combined across the tile at the end. Reductions of
  bfloat16/float16 values accumulate in float32 (the lowering's src_dtype).
  Reductions whose loads run along the outer axis (a sum over dim 0) get
  square tiles, so the loads coalesce along x.
- Nodes over the outer ranges alone compute one value per row ([XBLOCK, 1]);
  groups follow the CPU kernel's (aot/codegen/cpp/kernel.py): consecutive
  reductions that do not read each other share a pass.

Local buffers never touch memory, as on the CPU: a reduction's or an outer
node's value stays in its block, a pointwise node over outer + inner is
recomputed where it is read. An outer value that is also stored is read back
from its block at the aligned index; a stored buffer read back through memory
by a later group of the same program is read after a barrier (other threads
wrote it).

Index math is int32 unless some index (or numel) may exceed 2**31 - 1, or a
size is dynamic: then the program index is int64 and everything derived from
it follows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import sympy
import torch

from ...ir.nodes import ComputedBuffer, Pointwise, Reduction, WelfordReduction
from ...ir.symbols import FloorDiv, ModularIndexing, index_vars, reduction_vars
from ...ir.symbols import product as numel
from ...scheduler.bytes import record_loads
from ...scheduler.schedule import LoopKernel
from ..cpp.kernel import _accumulator_dtype
from .context import INDEX_ERRORS, TritonContext, TritonEpilogue
from .launch import TritonArg, TritonCodegenError, TritonKernel
from .ops_printer import (
    HELPERS,
    Domain,
    TritonIndexPrinter,
    TritonOpsHandler,
    TritonValue,
    TritonWriter,
    index_bound,
    triton_literal,
    triton_type,
)

POINTWISE_XBLOCK = 1024
PERSISTENT_MAX = 4096  # inner numel up to which a row is one tile
TILE_ELEMENTS = 4096  # XBLOCK * RBLOCK of a persistent tile, at most
LOOP_RBLOCK = 1024
_INT32_LIMIT = 2**31 - 1

__all__ = ["generate_epilogue", "generate_loop_kernel"]


def generate_loop_kernel(
    kernel: LoopKernel, ctx: TritonContext, debug_handle: str
) -> list[TritonKernel]:
    """|kernel| as one Triton launch ([Note: Triton loop kernels])."""
    return [_KernelGen(kernel, ctx, debug_handle).render()]


def generate_epilogue(
    kernel: LoopKernel, product: str, ctx: TritonContext, shares_product: bool
) -> TritonEpilogue:
    """|kernel| (pure pointwise, over the elements of the extern call's
    output |product| in order: [Note: epilogue fusion]) as the body a GEMM or
    convolution template runs on each output tile (see TritonEpilogue)."""
    if kernel.inner or not all(isinstance(n.data, Pointwise) for n in kernel.nodes):
        raise TritonCodegenError(f"{kernel.name}: an epilogue must be pure pointwise")
    gen = _KernelGen(kernel, ctx, kernel.name, product=product)
    return gen.render_epilogue(shares_product)


# ---------------------------------------------------------------------------


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    a, b = sympy.sympify(a), sympy.sympify(b)
    return a == b or sympy.expand(a - b) == 0


def _same_sizes(a: Sequence[sympy.Expr], b: Sequence[sympy.Expr]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


def _bind_unit_dims(variables: list[sympy.Symbol], sizes: Sequence[sympy.Expr]) -> list[sympy.Expr]:
    """Loop variables, 0 for dims of static size 1 (as the CPU kernels)."""
    return [sympy.Integer(0) if _same(s, 1) else v for v, s in zip(variables, sizes, strict=True)]


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _decompose(
    flat: sympy.Symbol, variables: Sequence[sympy.Expr], sizes: Sequence[sympy.Expr]
) -> list[tuple[sympy.Symbol, sympy.Expr]]:
    """(variable, expression of |flat|) for each live variable of a row-major
    flattening of |sizes|."""
    strides, stride = [], sympy.Integer(1)
    for size in reversed(list(sizes)):
        strides.append(stride)
        stride = stride * size
    strides.reverse()
    out = []
    for k, (var, size, st) in enumerate(zip(variables, sizes, strides, strict=True)):
        if not isinstance(var, sympy.Symbol):
            continue
        expr = FloorDiv(flat, st) if k == 0 else ModularIndexing(flat, st, size)
        out.append((var, expr))
    return out


@dataclass
class _Local:
    """A register-resident buffer: |value| (one per row) or, when None,
    |node|'s body re-evaluated at each load."""

    node: ComputedBuffer
    expected_index: sympy.Expr
    value: TritonValue | None = None
    body_vars: list[sympy.Expr] | None = None


@dataclass
class _Group:
    kind: str  # "reduction" | "loop" | "outer"
    nodes: list[ComputedBuffer]


_X = sympy.Symbol("xindex", integer=True, nonnegative=True)
_R = sympy.Symbol("rindex", integer=True, nonnegative=True)

# Placeholders of an epilogue body for the template's names.
_EPI_INDEX, _EPI_VALUE, _EPI_MASK = "__epi_index__", "__epi_value__", "__epi_mask__"


class _KernelGen:
    def __init__(
        self,
        kernel: LoopKernel,
        ctx: TritonContext,
        debug_handle: str,
        product: str | None = None,
    ) -> None:
        self.kernel = kernel
        self.ctx = ctx
        self.debug_handle = debug_handle
        self.product = product
        self.prefix = "epi_" if product is not None else ""
        self.nodes = {node.name: node for node in kernel.nodes}
        dtypes = dict(ctx.buffer_dtypes)
        dtypes.update({node.name: node.dtype for node in kernel.nodes})
        self.size_args: dict[sympy.Symbol, str] = {}
        self.pointers: dict[str, str] = {}
        self.writer = TritonWriter(indent=1, prefix=f"{self.prefix}tmp")
        self.index = TritonIndexPrinter(self._symbol_name)
        outer, inner = list(kernel.outer), list(kernel.inner)
        self.outer, self.inner = outer, inner
        self.outer_vars = _bind_unit_dims(index_vars(len(outer)), outer)
        self.inner_vars = _bind_unit_dims(reduction_vars(len(inner)), inner)
        self.reduction = bool(inner) or any(isinstance(n.data, Reduction) for n in kernel.nodes)
        self.xnumel = numel(outer)
        self.rnumel = numel(inner)
        if product is not None:
            self.x_domain = Domain(_EPI_MASK, "epi_zero")
        elif self.reduction:
            self.x_domain = Domain("xmask", "xzero")
        else:
            self.x_domain = Domain("xmask", "xzero")
        self.r_domain = Domain("xrmask", "xrzero", ("i", "r"), base_mask="xmask")
        self.ops = TritonOpsHandler(
            self.writer,
            self.index,
            dtypes,
            self._pointer,
            self.x_domain,
            self._load_local,
            errors_pointer=f"{self.prefix}index_errors",
        )
        self.locals: dict[str, _Local] = {}
        self.stored_scalars: dict[str, _Local] = {}
        self._read_cache: dict[str, set[str]] = {}
        self.persistent = True
        self._tile_open = False  # the persistent tile's lines are emitted
        self.xblock = 1
        self.rblock = 1
        self.num_warps = 4
        if self.reduction:
            self._plan_reduction()

    # -- names -------------------------------------------------------------------
    def _symbol_name(self, symbol: sympy.Symbol) -> str:
        name = symbol.name
        if re.fullmatch(r"[ir]\d+", name):
            return self.prefix + name
        if name in ("xindex", "rindex") or name in self.ops.indirect:
            return f"{self.prefix}x" if name == "xindex" and self.prefix else name
        if symbol not in self.size_args:
            if symbol not in set(self.ctx.size_symbols):
                raise TritonCodegenError(f"{self.kernel.name}: unknown size symbol {name}")
            self.size_args[symbol] = self.prefix + name
        return self.size_args[symbol]

    def _pointer(self, name: str) -> str:
        pointer = self.pointers.get(name)
        if pointer is None:
            base = f"{self.prefix}p_" + re.sub(r"\W", "_", name)
            pointer, n = base, 1
            while pointer in self.pointers.values():
                pointer, n = f"{base}_{n}", n + 1
            self.pointers[name] = pointer
        return pointer

    # -- structure (as aot/codegen/cpp/kernel.py) --------------------------------
    def _node_vars(self, node: ComputedBuffer) -> list[sympy.Expr]:
        data, kernel = node.data, self.kernel
        if isinstance(data, Reduction):
            if not _same_sizes(data.ranges, self.outer) or not _same_sizes(
                data.reduction_ranges, self.inner
            ):
                raise TritonCodegenError(
                    f"{kernel.name}: reduction {node.name} over {data.ranges} x "
                    f"{data.reduction_ranges} does not match the kernel's loops "
                    f"{self.outer} x {self.inner}"
                )
            return self.outer_vars
        if _same_sizes(data.ranges, self.outer):
            return self.outer_vars
        if _same_sizes(data.ranges, self.outer + self.inner):
            return self.outer_vars + self.inner_vars
        raise TritonCodegenError(
            f"{kernel.name}: pointwise {node.name} over {data.ranges} matches neither the "
            f"outer ranges {self.outer} nor outer + inner"
        )

    def _is_loop_node(self, node: ComputedBuffer) -> bool:
        return (
            self.reduction
            and not isinstance(node.data, Reduction)
            and len(self._node_vars(node)) > len(self.outer_vars)
        )

    def _loads(self, node: ComputedBuffer) -> list:
        variables = self._node_vars(node)
        return record_loads(node.data, variables, self.inner_vars)

    def _reads(self, name: str) -> set[str]:
        if name not in self._read_cache:
            self._read_cache[name] = set()
            reads = {load.name for load in self._loads(self.nodes[name])}
            for read in list(reads):
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

    def _inner_contiguous(self) -> bool:
        """Whether the reductions' loads run along the innermost inner dim
        (rows), rather than along the outer dims (a sum over dim 0)."""
        live = [v for v in self.inner_vars if isinstance(v, sympy.Symbol)]
        if not live:
            return True
        last = live[-1]
        seen = False
        for node in self.kernel.nodes:
            if not isinstance(node.data, Reduction):
                continue
            for load in self._loads(node):
                if last not in load.index.free_symbols:
                    continue
                seen = True
                if sympy.expand(load.index).coeff(last) == 1:
                    return True
        return not seen

    def _plan_reduction(self) -> None:
        r_static = self.rnumel.is_Integer
        x_static = self.xnumel.is_Integer
        rnumel = int(self.rnumel) if r_static else None
        contiguous = self._inner_contiguous()
        if r_static and rnumel <= PERSISTENT_MAX and (contiguous or rnumel <= 64):
            self.persistent = True
            self.rblock = _next_pow2(max(rnumel, 1))
            xblock = max(1, TILE_ELEMENTS // self.rblock)
            if x_static:
                xblock = min(xblock, _next_pow2(max(int(self.xnumel), 1)))
            self.xblock = min(xblock, 1024)
        else:
            self.persistent = False
            if contiguous:
                self.xblock = 1
                self.rblock = (
                    LOOP_RBLOCK if rnumel is None else min(LOOP_RBLOCK, _next_pow2(max(rnumel, 1)))
                )
            else:
                self.xblock, self.rblock = 64, 64
        tile = self.xblock * self.rblock
        # Persistent tiles hold a row in registers: more warps for bigger ones;
        # looped tiles stream, four to eight warps keep the loads in flight.
        self.num_warps = min(8, max(1 if self.persistent else 4, tile // 512))

    # -- locals ------------------------------------------------------------------
    def _load_local(
        self, ops: TritonOpsHandler, name: str, index: sympy.Expr
    ) -> TritonValue | None:
        if self.product is not None and name == self.product:
            return self._product_value()
        if name not in self.kernel.local:
            stored = self.stored_scalars.get(name)
            if stored is not None and _same(index, stored.expected_index):
                return stored.value
            return None
        local = self.locals.get(name)
        if local is None:
            raise TritonCodegenError(
                f"{self.kernel.name}: local buffer {name} is read before a node computes it"
            )
        if local.value is not None:
            if not _same(index, local.expected_index):
                raise TritonCodegenError(
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

    def _product_value(self) -> TritonValue:
        """The template's value, rounded to the product's dtype as if stored."""
        dtype = self.ops.buffer_dtypes[self.product]
        value = TritonValue(_EPI_VALUE, torch.float32)
        return self.ops.to_dtype(value, dtype)

    @staticmethod
    def _unflatten(node: ComputedBuffer, index: sympy.Expr) -> list[sympy.Expr]:
        layout = node.layout
        flat = index - layout.offset
        out: list[sympy.Expr] = []
        for k, (size, stride) in enumerate(zip(layout.sizes, layout.strides, strict=True)):
            out.append(FloorDiv(flat, stride) if k == 0 else ModularIndexing(flat, stride, size))
        return out

    def _register_inline_locals(self) -> None:
        for node in self.kernel.nodes:
            if node.name in self.kernel.local and self._is_loop_node(node):
                variables = self._node_vars(node)
                expected = node.layout.index(variables)
                self.locals[node.name] = _Local(node, expected, body_vars=variables)

    # -- emission ----------------------------------------------------------------
    def _comment(self, node: ComputedBuffer, what: str) -> None:
        origins = f" <- {', '.join(node.origins)}" if node.origins else ""
        local = " (local)" if node.name in self.kernel.local else ""
        self.writer.line(f"# {node.name}{local}: {what}{origins}")

    def _finish(self, node: ComputedBuffer, value: TritonValue) -> None:
        """Stores a node's per-row value, or keeps it in its block."""
        self.ops.domain = self.x_domain
        value = self.ops.to_dtype(value, node.dtype)
        local = _Local(node, node.layout.index(self.outer_vars), value=value)
        if node.name in self.kernel.local:
            self.locals[node.name] = local
        else:
            self.ops.store(node.name, node.layout.index(self.outer_vars), value)
            self.stored_scalars[node.name] = local

    def _emit_outer(self, node: ComputedBuffer) -> None:
        self.ops.domain = self.x_domain
        self._comment(node, "pointwise")
        self._finish(node, node.data.inner_fn(self.ops, self.outer_vars))

    def _tile(self, stack: ExitStack) -> None:
        """Opens a tile of the inner ranges: the persistent one (once) or a
        chunk of the loop."""
        w = self.writer
        if self.persistent:
            if self._tile_open:
                self.ops.domain = self.r_domain
                return
            self._tile_open = True
            w.line("rindex = rbase")
        else:
            stack.enter_context(w.block("for roffset in range(0, rnumel, RBLOCK):"))
            w.line("rindex = roffset + rbase")
        w.line("rmask = rindex < rnumel")
        w.line("xrmask = xmask & rmask")
        w.line("xrzero = xzero + rindex * 0")
        for var, expr in _decompose(_R, self.inner_vars, self.inner):
            w.line(f"{var} = {self.index(expr)}")
        self.ops.domain = self.r_domain

    def _emit_loop(self, nodes: list[ComputedBuffer]) -> None:
        for node in nodes:
            self._comment(node, "pointwise over the inner ranges")
        with ExitStack() as stack:
            self._tile(stack)
            for node in nodes:
                variables = self._node_vars(node)
                value = node.data.inner_fn(self.ops, variables)
                self.ops.store(node.name, node.layout.index(variables), value)
        self.ops.domain = self.x_domain

    def _accumulators(self, nodes: list[ComputedBuffer]) -> list[_Accumulator]:
        accs: list[_Accumulator] = []
        welford: dict[str, _Accumulator] = {}
        for node in nodes:
            data = node.data
            if not isinstance(data, WelfordReduction):
                accs.append(_Accumulator(self, node))
                continue
            acc = welford.get(data.group)
            if acc is None:
                if data.output_index != 0:
                    raise TritonCodegenError(
                        f"{self.kernel.name}: Welford output {node.name} is not in the pass "
                        f"of its group {data.group}"
                    )
                acc = welford[data.group] = _Accumulator(self, node)
                accs.append(acc)
            else:
                acc.outputs.append(node)
        return accs

    def _emit_reductions(self, nodes: list[ComputedBuffer]) -> None:
        accs = self._accumulators(nodes)
        for acc in accs:
            for node in acc.outputs:
                self._comment(node, f"{acc.kind} over {self.inner}")
        if not self.persistent:
            for acc in accs:
                acc.init_loop()
        with ExitStack() as stack:
            self._tile(stack)
            for acc in accs:
                value = acc.node.data.inner_fn(self.ops, self.outer_vars, self.inner_vars)
                value = self.ops.to_dtype(value, acc.dtype)
                if self.persistent:
                    acc.reduce_tile(value)
                else:
                    acc.update_loop(value)
        self.ops.domain = self.x_domain
        for acc in accs:
            results = acc.results() if self.persistent else acc.finish_loop()
            for node, value in results:
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

    # -- widths ----------------------------------------------------------------
    def _needs_int64(self, extra: Sequence[sympy.Expr] = ()) -> bool:
        ranges: dict[sympy.Symbol, int] = {}
        for var, size in [
            *zip(self.outer_vars, self.outer, strict=True),
            *zip(self.inner_vars, self.inner, strict=True),
        ]:
            if isinstance(var, sympy.Symbol):
                if not sympy.sympify(size).is_Integer:
                    return True
                ranges[var] = int(size)
        for name, size in self.ops.indirect.items():
            if not size.is_Integer:
                return True
            ranges[sympy.Symbol(name, integer=True, nonnegative=True)] = int(size)
        exprs = [*self.ops.index_exprs, *extra]
        for expr in exprs:
            bound = index_bound(expr, ranges)
            if bound is None or bound > _INT32_LIMIT:
                return True
        return False

    # -- assembly ------------------------------------------------------------------
    def _header(self) -> list[str]:
        origins: list[str] = []
        for node in self.kernel.nodes:
            origins.extend(o for o in node.origins if o not in origins)
        out = [f"# {self.debug_handle}"]
        if origins:
            out.append(f"# origins: {', '.join(origins)}")
        return out

    def _helpers_source(self) -> str:
        return "".join(HELPERS[name] + "\n" for name in self.ops.helpers)

    def _args(self) -> list[TritonArg]:
        args = []
        for name in dict.fromkeys([*self.ops.loaded, *self.ops.stored]):
            args.append(
                TritonArg(
                    self._pointer(name), "pointer", buffer=name, dtype=self.ops.buffer_dtypes[name]
                )
            )
        for symbol, name in self.size_args.items():
            args.append(TritonArg(name, "size", value=symbol))
        if self.ops.index_checks:
            args.append(
                TritonArg(
                    self.ops.errors_pointer, "pointer", buffer=INDEX_ERRORS, dtype=torch.int64
                )
            )
        return args

    def render(self) -> TritonKernel:
        kernel = self.kernel
        self._body()
        body = self.writer.lines
        xblock = self.xblock if self.reduction else POINTWISE_XBLOCK
        if not self.reduction and self.xnumel.is_Integer:
            xblock = min(POINTWISE_XBLOCK, _next_pow2(max(int(self.xnumel), 1)))
        num_warps = self.num_warps if self.reduction else max(1, min(4, xblock // 128))
        wide = self._needs_int64(
            [self.xnumel + xblock, self.rnumel + self.rblock, self.xnumel * self.rnumel]
        )
        xnumel, rnumel = self.index(self.xnumel), self.index(self.rnumel)
        lines = [f"    xnumel = {xnumel}"]
        pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
        lines.append(f"    xoffset = {pid} * XBLOCK")
        if self.reduction:
            lines.append(f"    rnumel = {rnumel}")
            lines.append("    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]")
            rbase = "tl.arange(0, RBLOCK)[None, :]"
            lines.append(f"    rbase = {rbase}.to(tl.int64)" if wide else f"    rbase = {rbase}")
        else:
            lines.append("    xindex = xoffset + tl.arange(0, XBLOCK)")
        lines.append("    xmask = xindex < xnumel")
        lines.append("    xzero = xindex * 0")
        for var, expr in _decompose(_X, self.outer_vars, self.outer):
            lines.append(f"    {var} = {self.index(expr)}")
        lines.extend(body)
        args = self._args()
        constexprs: dict[str, int | float | bool] = {"XBLOCK": xblock}
        if self.reduction:
            constexprs["RBLOCK"] = self.rblock
        params = [a.name for a in args] + [f"{c}: tl.constexpr" for c in constexprs]
        source = "\n".join(
            [
                *self._header(),
                "import triton",
                "import triton.language as tl",
                "from triton.language.extra import libdevice",
                "",
                self._helpers_source(),
                "@triton.jit",
                f"def {kernel.name}({', '.join(params)}):",
                *lines,
                "",
            ]
        )
        grid = FloorDiv(self.xnumel + xblock - 1, xblock) if self.xnumel != 0 else sympy.Integer(0)
        return TritonKernel(
            name=kernel.name,
            source=source,
            args=args,
            grid=(sympy.sympify(grid), sympy.Integer(1), sympy.Integer(1)),
            constexprs=constexprs,
            num_warps=num_warps,
            num_stages=1,
            writes=set(self.ops.stored),
            index_checks=list(self.ops.index_checks),
        )

    def render_epilogue(self, shares_product: bool) -> TritonEpilogue:
        self.writer = TritonWriter(indent=0, prefix="epi_tmp")
        self.ops.writer = self.writer
        self._body()
        wide = self._needs_int64([self.xnumel])
        x = "epi_x"
        lines = [f"{x} = ({_EPI_INDEX}).to(tl.int64)" if wide else f"{x} = {_EPI_INDEX}"]
        lines.append(f"epi_zero = {x} * 0")
        for var, expr in _decompose(_X, self.outer_vars, self.outer):
            lines.append(f"{self.prefix}{var} = {self.index(expr)}")
        lines.extend(self.writer.lines)
        header = f"# epilogue {self.kernel.name}: {', '.join(n.name for n in self.kernel.nodes)}"
        lines.insert(0, header)
        helpers = self._helpers_source()
        if any("libdevice." in line for line in lines) or "libdevice." in helpers:
            helpers = "from triton.language.extra import libdevice\n" + helpers
        placeholder = re.compile(rf"\b({_EPI_INDEX}|{_EPI_VALUE}|{_EPI_MASK})\b")

        def body(index: str, value: str, mask: str) -> list[str]:
            names = {_EPI_INDEX: index, _EPI_VALUE: value, _EPI_MASK: f"({mask})"}
            return [placeholder.sub(lambda m: names[m.group(1)], line) for line in lines]

        return TritonEpilogue(
            args=self._args(),
            body=body,
            shares_product=shares_product,
            helpers=helpers,
            index_checks=list(self.ops.index_checks),
        )


class _Accumulator:
    """The accumulator(s) of one reduction node (all outputs of a Welford
    reduction share one) and their Triton."""

    def __init__(self, gen: _KernelGen, node: ComputedBuffer) -> None:
        self.gen = gen
        self.node = node
        self.outputs: list[ComputedBuffer] = [node]
        data: Reduction = node.data  # type: ignore[assignment]
        self.kind = data.reduction_type
        self.dtype = _accumulator_dtype(data)
        if self.dtype == torch.bool and self.kind in ("sum", "max"):
            self.kind = "any"
        elif self.dtype == torch.bool and self.kind in ("prod", "min"):
            self.kind = "all"
        if self.dtype == torch.bool and self.kind in ("argmax", "argmin"):
            self.dtype = torch.int8
        self.name = gen.writer.new_name("acc")

    @property
    def w(self) -> TritonWriter:
        return self.gen.writer

    def _helper(self, name: str) -> str:
        self.gen.ops.helpers.setdefault(name)
        return name

    def _identity(self) -> str:
        kind, dtype = self.kind, self.dtype
        if kind in ("any", "all"):
            return "0" if kind == "any" else "1"
        if kind in ("sum", "welford"):
            return "0"
        if kind == "prod":
            return "1"
        big = float("inf") if dtype.is_floating_point else None
        if kind in ("max", "argmax"):
            value = -big if big else torch.iinfo(dtype).min
        else:
            value = big if big else torch.iinfo(dtype).max
        return triton_literal(value, dtype)

    def _value(self, value: TritonValue) -> str:
        if self.kind in ("any", "all"):
            return f"{value.expr}.to(tl.int8)"
        return value.expr

    def _combine_fn(self) -> str | None:
        if self.kind == "prod":
            return self._helper("_aotc_prod")
        if self.kind in ("max", "min"):
            return self._helper("_aotc_maximum" if self.kind == "max" else "_aotc_minimum")
        return None

    def _finish(self, reduced: str) -> TritonValue:
        """A reduced [XBLOCK] block as the [XBLOCK, 1] value of the result."""
        t = triton_type(self.dtype)
        if self.kind in ("any", "all"):
            return self.gen.writer.emit(f"({reduced})[:, None] != 0", torch.bool)
        return self.gen.writer.emit(f"({reduced})[:, None].to({t})", self.dtype)

    def _reduce(self, block: str) -> str:
        kind = self.kind
        if kind == "sum":
            return f"tl.sum({block}, 1)"
        if kind == "any":
            return f"tl.max({block}, 1)"
        if kind == "all":
            return f"tl.min({block}, 1)"
        return f"tl.reduce({block}, 1, {self._combine_fn()})"

    # -- persistent: the whole row in one tile ---------------------------------
    def reduce_tile(self, value: TritonValue) -> None:
        w, mask = self.w, "xrmask"
        v = self._value(value)
        if self.kind == "welford":
            n = self.gen.index(self.gen.rnumel)
            total = w.new_name("sum")
            w.line(f"{total} = tl.sum(tl.where({mask}, {v}, 0.0), 1)[:, None]")
            mean = w.new_name("mean")
            w.line(f"{mean} = {total} / {n}")
            dev = w.new_name("dev")
            w.line(f"{dev} = tl.where({mask}, {v} - {mean}, 0.0)")
            m2 = w.new_name("m2")
            w.line(f"{m2} = tl.sum({dev} * {dev}, 1)[:, None]")
            self._results = [TritonValue(mean, self.dtype), TritonValue(m2, self.dtype)]
            return
        if self.kind in ("argmax", "argmin"):
            helper = self._helper(f"_aotc_{self.kind}")
            index = w.new_name("index")
            w.line(
                f"_, {index} = tl.reduce((tl.where({mask}, {v}, {self._identity()}), "
                f"tl.where({mask}, rindex + xrzero, 2147483647)), 1, {helper})"
            )
            self._results = [w.emit(f"{index}[:, None].to(tl.int64)", torch.int64)]
            return
        block = f"tl.where({mask}, {v}, {self._identity()})"
        self._results = [self._finish(self._reduce(block))]

    def results(self) -> list[tuple[ComputedBuffer, TritonValue]]:
        out = []
        for node in self.outputs:
            index = getattr(node.data, "output_index", 0) if self.kind == "welford" else 0
            out.append((node, self._results[index]))
        return out

    # -- looped: running accumulators of the tile's shape ----------------------------
    def _tile_of(self, fill: str, dtype: torch.dtype) -> str:
        return f"tl.full([XBLOCK, RBLOCK], {fill}, {triton_type(dtype)})"

    def init_loop(self) -> None:
        w, name = self.w, self.name
        if self.kind == "welford":
            for part in ("mean", "m2", "weight"):
                w.line(f"{name}_{part} = {self._tile_of('0', self.dtype)}")
            return
        if self.kind in ("any", "all"):
            w.line(f"{name} = {self._tile_of(self._identity(), torch.int8)}")
            return
        w.line(f"{name} = {self._tile_of('0', self.dtype)} + {self._identity()}")
        if self.kind in ("argmax", "argmin"):
            w.line(f"{name}_index = {self._tile_of('2147483647', torch.int64)}")

    def update_loop(self, value: TritonValue) -> None:
        w, name, mask = self.w, self.name, "xrmask"
        v = self._value(value)
        kind = self.kind
        if kind == "welford":
            weight = w.new_name("weight")
            w.line(f"{weight} = {name}_weight + 1")
            delta = w.new_name("delta")
            w.line(f"{delta} = {v} - {name}_mean")
            mean = w.new_name("mean")
            w.line(f"{mean} = {name}_mean + {delta} / {weight}")
            w.line(f"{name}_m2 = tl.where({mask}, {name}_m2 + {delta} * ({v} - {mean}), {name}_m2)")
            w.line(f"{name}_mean = tl.where({mask}, {mean}, {name}_mean)")
            w.line(f"{name}_weight = tl.where({mask}, {weight}, {name}_weight)")
            return
        if kind in ("argmax", "argmin"):
            helper = self._helper(f"_aotc_{kind}")
            nv, ni = w.new_name("value"), w.new_name("index")
            w.line(f"{nv}, {ni} = {helper}({name}, {name}_index, {v}, rindex + xrzero)")
            w.line(f"{name} = tl.where({mask}, {nv}, {name})")
            w.line(f"{name}_index = tl.where({mask}, {ni}, {name}_index)")
            return
        if kind == "sum":
            combined = f"{name} + {v}"
        elif kind == "any":
            combined = f"tl.maximum({name}, {v})"
        elif kind == "all":
            combined = f"tl.minimum({name}, {v})"
        elif kind == "prod":
            combined = f"{name} * {v}"
        else:
            combined = f"{self._combine_fn()}({name}, {v})"
        w.line(f"{name} = tl.where({mask}, {combined}, {name})")

    def finish_loop(self) -> list[tuple[ComputedBuffer, TritonValue]]:
        w, name = self.w, self.name
        if self.kind == "welford":
            helper = self._helper("_aotc_welford_combine")
            mean, m2, weight = w.new_name("mean"), w.new_name("m2"), w.new_name("weight")
            w.line(
                f"{mean}, {m2}, {weight} = tl.reduce(({name}_mean, {name}_m2, {name}_weight), "
                f"1, {helper})"
            )
            nan = triton_literal(float("nan"), self.dtype)
            mean_v = w.emit(f"tl.where({weight} > 0, {mean}, {nan})[:, None]", self.dtype)
            self._results = [mean_v, w.emit(f"{m2}[:, None]", self.dtype)]
        elif self.kind in ("argmax", "argmin"):
            helper = self._helper(f"_aotc_{self.kind}")
            index = w.new_name("index")
            w.line(f"_, {index} = tl.reduce(({name}, {name}_index), 1, {helper})")
            self._results = [w.emit(f"{index}[:, None].to(tl.int64)", torch.int64)]
        else:
            self._results = [self._finish(self._reduce(name))]
        return self.results()
