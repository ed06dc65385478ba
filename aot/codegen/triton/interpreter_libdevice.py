"""CUDA libdevice functions for Triton's interpreter (TRITON_INTERPRET=1).

Generated kernels call ``triton.language.extra.libdevice`` for the math
Triton has no op for ([Note: Triton loop bodies] in ops_printer.py). On a GPU
the compiler binds those names to CUDA's libdevice; the interpreter has no
binding (the stubs return None), so install() replaces the stubs with
element-wise torch functions on the interpreter's numpy blocks. Tests only:
compilation runs in worker processes that never import this module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "exp": torch.exp,
    "expm1": torch.expm1,
    "log": torch.log,
    "log1p": torch.log1p,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "erf": torch.erf,
    "erfc": torch.erfc,
    "erfinv": torch.erfinv,
    "erfcx": torch.special.erfcx,
    "normcdfinv": torch.special.ndtri,
    "lgamma": torch.lgamma,
    "asin": torch.asin,
    "acos": torch.acos,
    "asinh": torch.asinh,
    "acosh": torch.acosh,
    "atanh": torch.atanh,
    "atan2": torch.atan2,
    "pow": torch.pow,
    "fmod": torch.fmod,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "trunc": torch.trunc,
    "nearbyint": torch.round,
    "rint": torch.round,
    "copysign": torch.copysign,
    "hypot": torch.hypot,
    "nextafter": torch.nextafter,
    "cyl_bessel_i0": torch.special.i0,
    "cyl_bessel_i1": torch.special.i1,
    "j0": torch.special.bessel_j0,
    "j1": torch.special.bessel_j1,
    "y0": torch.special.bessel_y0,
    "y1": torch.special.bessel_y1,
}

_installed = False


def _wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., object]:
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    def call(*args: object, **_: object) -> object:
        ref = next(a for a in args if isinstance(a, tl.tensor))
        np_dtype = ref.handle.data.dtype
        arrays = [
            torch.from_numpy(np.array(a.handle.data, copy=True))
            if isinstance(a, tl.tensor)
            else torch.tensor(a, dtype=torch.from_numpy(np.zeros(0, np_dtype)).dtype)
            for a in args
        ]
        result = fn(*arrays).numpy().astype(np_dtype)
        scalar = ref.dtype.scalar if hasattr(ref.dtype, "scalar") else ref.dtype
        handle = TensorHandle(np.ascontiguousarray(result), scalar)
        shape = list(result.shape)
        return tl.tensor(handle, tl.block_type(scalar, shape) if shape else scalar)

    return call


def install() -> None:
    """Replaces the libdevice stubs with interpreter implementations (once)."""
    global _installed
    if _installed:
        return
    from triton.language.extra import libdevice

    for name, fn in _FUNCTIONS.items():
        setattr(libdevice, name, _wrap(fn))
    _installed = True
