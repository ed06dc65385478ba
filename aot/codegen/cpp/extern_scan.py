"""C++ emission for the scan extern kernels (aotc_cpu_scan.h)."""

from __future__ import annotations

from collections.abc import Callable

from .extern_calls import Operands

EMITTERS: dict[str, Callable[[Operands], list[str]]] = {}
