"""The manifest's ``costs`` (each kernel call's bytes and FLOPs) as the text
`aotc inspect` prints: a totals line and one row per call."""

from __future__ import annotations

from typing import Any

COUNT_KEYS = ("bytes_read", "bytes_written", "flops")


def _total(records: list[dict[str, Any]], key: str) -> int | str:
    """The sum, or "+"-joined terms when some are expressions (dynamic sizes)."""
    ints = sum(r[key] for r in records if isinstance(r.get(key), int))
    exprs = [f"({r[key]})" for r in records if isinstance(r.get(key), str)]
    return " + ".join([*exprs, str(ints)]) if exprs else ints


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_costs(costs: list[dict[str, Any]], indent: str = "    ") -> list[str]:
    """Totals, then handle / kind / bytes read / bytes written / FLOPs per call."""
    if not costs:
        return ["  costs      none recorded (a package from before aotc recorded costs)"]
    calls = [c for c in costs if c.get("kind") != "copy"]
    copies = len(costs) - len(calls)
    moved = " + ".join(_count(_total(costs, k)) for k in ("bytes_read", "bytes_written"))
    head = (
        f"  costs      {len(calls)} kernel call{'' if len(calls) == 1 else 's'}"
        + (f" and {copies} copy-back{'' if copies == 1 else 's'}" if copies else "")
        + f": bytes read + written {moved}, FLOPs {_count(_total(costs, 'flops'))}"
    )
    header = ("handle", "kind", "bytes read", "bytes written", "FLOPs")
    rows = [
        (
            str(c.get("debug_handle", "?")),
            str(c.get("kind", "?")),
            *(_count(c.get(k, "?")) for k in COUNT_KEYS),
        )
        for c in costs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
        right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        return indent + "  ".join(left + right)

    return [head, line(header), *(line(r) for r in rows)]
