"""aotc's decomposition table: torch.export's default decompositions minus the
ops aotc lowers itself (as one kernel, a template or a fused reduction).

[Note: kept ops] What the default table does with each op, checked on
torch 2.13 (`op in torch.export.default_decompositions()`):

- aten.scaled_dot_product_attention: IN the default table. Its decomposition
  goes through _scaled_dot_product_flash_attention_for_cpu's math path, which
  materialises the S x S score matrix and its softmax (and decomposes
  differently per device). aotc lowers attention as one fused kernel, so it is
  removed. The backend-specific variants (_scaled_dot_product_flash_attention
  _for_cpu, ..._efficient_attention, ...) keep their decompositions: export
  never produces them from F.scaled_dot_product_attention, and a model that
  calls one directly gets a correct (materialised) graph rather than an op
  no lowering knows.
- aten.native_layer_norm, aten._native_batch_norm_legit_no_training,
  aten.gelu, aten.addmm, aten.convolution, aten.max_pool2d_with_indices,
  aten.avg_pool2d, aten.embedding: core ATen ops, NOT in the 2.13 table (the
  composites above them, layer_norm, batch_norm, linear, conv2d, max_pool2d,
  decompose INTO them). They are listed anyway so that a torch release which
  adds a decomposition for one of them (2.11 to 2.13 are supported) cannot
  silently split it into pieces aotc would have to fuse back: aotc lowers a
  norm as one Welford reduction, addmm and convolution as templates with
  fused epilogues, gelu as one pointwise op (erf or tanh form), pooling as
  one window loop, and embedding as a bounds-checked gather.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

aten = torch.ops.aten

# Op packets (all overloads) that reach lowering as they come; see [Note: kept ops].
AOTC_LOWERED_OPS: tuple[Any, ...] = (
    aten.scaled_dot_product_attention,
    aten.native_layer_norm,
    aten._native_batch_norm_legit_no_training,
    aten.gelu,
    aten.addmm,
    aten.convolution,
    aten.max_pool2d_with_indices,
    aten.avg_pool2d,
    aten.embedding,
    # Its decomposition indexes with a 0-d tensor, which export cannot trace
    # on some inputs; aotc lowers take as one bounds-checked gather.
    aten.take,
    # Resampling: one gather-and-weigh kernel each (aot/lowering/resample.py)
    # instead of the index arithmetic their decompositions spell out.
    aten.upsample_nearest1d,
    aten.upsample_nearest2d,
    aten.upsample_nearest3d,
    aten._upsample_nearest_exact1d,
    aten._upsample_nearest_exact2d,
    aten._upsample_nearest_exact3d,
    aten.upsample_linear1d,
    aten.upsample_bilinear2d,
    aten.upsample_trilinear3d,
    aten.upsample_bicubic2d,
    aten._upsample_bilinear2d_aa,
    aten._upsample_bicubic2d_aa,
    # Their decompositions compute in float64 from unrounded endpoints; eager
    # rounds to the result dtype first ([Note: linspace numerics] in
    # aot/lowering/creation.py).
    aten.linspace,
    aten.logspace,
)


def aotc_decomposition_table() -> dict[Any, Callable[..., Any]]:
    """torch.export.default_decompositions() without AOTC_LOWERED_OPS; pass
    it to ExportedProgram.run_decompositions. A fresh table on every call."""
    table = torch.export.default_decompositions()
    for packet in AOTC_LOWERED_OPS:
        for overload in packet.overloads():
            table.pop(getattr(packet, overload), None)
    return table
