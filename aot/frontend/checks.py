"""Refusals: what the frontend will not capture, each with a hint.

Before export: a module in training mode, weights or inputs off the CPU,
example inputs that are not a tuple. After export (on the graph as captured,
and again after decompositions): random ops, and tensors whose shape depends
on input values (unbacked SymInts), which aotc cannot plan before a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

from .errors import FrontendError
from .locations import describe_node, node_location

_MAX_LISTED = 5

TRAINING_MODE_MESSAGE = (
    "the model is in training mode; call model.eval() (aotc compiles inference graphs)"
)

# Ops that draw random numbers, by aten name. Ops tagged
# torch.Tag.nondeterministic_seeded are refused too; this list covers a
# release that misses a tag.
RANDOM_OPS = frozenset(
    {
        "bernoulli", "cauchy", "exponential", "geometric", "log_normal", "multinomial",
        "native_dropout", "normal", "poisson", "rand", "rand_like", "randint",
        "randint_like", "randn", "randn_like", "randperm", "rrelu_with_noise",
        "rrelu_with_noise_functional", "uniform", "_fused_dropout", "_standard_gamma",
    }
)  # fmt: skip
# Ops whose randomness is switched by an argument: dropout(x, p, train) is
# deterministic (a clone) with train=False, attention with dropout_p=0.
_SWITCH_ARGS = ("train", "dropout_p")

RANDOM_HINT = (
    "aotc compiles deterministic inference graphs. Hint: call model.eval() (dropout "
    "then becomes the identity) and pass training=self.training to functional "
    "dropout; if the model needs noise, make it an input returned by get_example_inputs()"
)
DATA_DEPENDENT_HINT = (
    "aotc plans output and workspace sizes from the input shapes before a run, so "
    "every shape must follow from them. Hint: use a fixed-size formulation "
    "(torch.where(mask, x, 0) instead of x[mask]; topk with a fixed k instead of "
    "nonzero or unique)"
)


def refuse_training_mode(module: torch.nn.Module) -> None:
    """FrontendError if |module| or any submodule is in training mode."""
    training = [name or "(the model itself)" for name, m in module.named_modules() if m.training]
    if training:
        shown = ", ".join(repr(n) for n in training[:_MAX_LISTED])
        more = f" and {len(training) - _MAX_LISTED} more" if len(training) > _MAX_LISTED else ""
        raise FrontendError(f"{TRAINING_MODE_MESSAGE}; in training mode: {shown}{more}")


def refuse_non_cpu_tensors(module: torch.nn.Module, example_inputs: tuple[Any, ...]) -> None:
    """FrontendError for a parameter, buffer or example input off the CPU:
    export always runs on CPU and the target device is an export option."""
    named = [*module.named_parameters(), *module.named_buffers()]
    for name, tensor in named:
        if tensor.device.type != "cpu":
            raise FrontendError(
                f"{name!r} is on {tensor.device}; aotc captures the model on CPU (the target "
                "device is an export option): build the model on the CPU in get_model()"
            )
    for i, value in enumerate(_leaves(example_inputs)):
        if isinstance(value, torch.Tensor) and value.device.type != "cpu":
            raise FrontendError(
                f"example input {i} is on {value.device}; aotc captures the model on CPU (the "
                "target device is an export option): return CPU tensors from get_example_inputs()"
            )


def check_program(program: torch.export.ExportedProgram, source_path: Path | None) -> None:
    """Refuses random ops and data-dependent shapes in |program|'s graph."""
    _refuse_random_ops(program.graph, source_path)
    _refuse_data_dependent_shapes(program, source_path)


def is_random(node: torch.fx.Node) -> bool:
    """Whether |node| draws random numbers (dropout only when training)."""
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return False
    name = target.name().split("::")[-1].split(".")[0].rstrip("_")  # in-place: bernoulli_
    tagged = torch.Tag.nondeterministic_seeded in target.tags
    if not (tagged or name in RANDOM_OPS or name == "scaled_dot_product_attention"):
        return False
    for arg in _SWITCH_ARGS:
        present, value = _argument(node, target, arg)
        if present:
            # native_dropout's train is optional: None means training.
            return value is None or bool(value)
    return name != "scaled_dot_product_attention"


def _refuse_random_ops(graph: torch.fx.Graph, source_path: Path | None) -> None:
    found = [n for n in graph.nodes if is_random(n)]
    if found:
        raise FrontendError(
            f"random ops are not supported:\n{_list_nodes(found, source_path)}\n{RANDOM_HINT}"
        )


def _refuse_data_dependent_shapes(
    program: torch.export.ExportedProgram, source_path: Path | None
) -> None:
    origins: dict[Any, torch.fx.Node] = {}  # unbacked symbol -> the node that made it
    offenders: dict[torch.fx.Node, set[str]] = {}  # origin node -> its symbols in shapes
    for node in program.graph.nodes:
        value = node.meta.get("val")
        for symbol in _unbacked(value):
            origins.setdefault(symbol, node)
        for tensor in _leaves(value):
            if isinstance(tensor, torch.Tensor):
                for symbol in _unbacked(tensor):
                    offenders.setdefault(origins[symbol], set()).add(str(symbol))
    if not offenders:
        return
    outputs = _data_dependent_outputs(program)
    plural = "s" if len(outputs) > 1 else ""
    reach = f"; it reaches output{plural} {', '.join(outputs)}" if outputs else ""
    lines = [
        f"{_where(n, source_path)} (size {', '.join(sorted(s))} depends on input values)"
        for n, s in offenders.items()
    ]
    raise FrontendError(
        f"data-dependent shapes are not supported{reach}:\n"
        + "\n".join(f"  {line}" for line in lines[:_MAX_LISTED])
        + f"\n{DATA_DEPENDENT_HINT}"
    )


def _data_dependent_outputs(program: torch.export.ExportedProgram) -> list[str]:
    """Indices of the user outputs whose shape depends on input values."""
    user_outputs = list(program.graph_signature.user_outputs)
    found = []
    for arg in program.graph.output_node().args[0]:
        if isinstance(arg, torch.fx.Node) and arg.name in user_outputs:
            if _unbacked(arg.meta.get("val")):
                found.append(str(user_outputs.index(arg.name)))
    return found


def _unbacked(value: Any) -> set[Any]:
    """The unbacked symbols in a node's value (none for values sympy cannot read)."""
    try:
        return set(free_unbacked_symbols(value))
    except (AssertionError, TypeError):
        return set()


def _argument(node: torch.fx.Node, target: Any, name: str) -> tuple[bool, Any]:
    """(present in the schema, value) of argument |name| of |node|."""
    for i, arg in enumerate(target._schema.arguments):
        if arg.name != name:
            continue
        if name in node.kwargs:
            return True, node.kwargs[name]
        if i < len(node.args):
            return True, node.args[i]
        return True, arg.default_value if arg.has_default_value() else None
    return False, None


def _where(node: torch.fx.Node, source_path: Path | None) -> str:
    return f"{node_location(node, source_path)}: {describe_node(node)}"


def _list_nodes(nodes: list[torch.fx.Node], source_path: Path | None) -> str:
    lines = [f"  {_where(n, source_path)}" for n in nodes[:_MAX_LISTED]]
    if len(nodes) > _MAX_LISTED:
        lines.append(f"  ... and {len(nodes) - _MAX_LISTED} more")
    return "\n".join(lines)


def _leaves(value: Any) -> list[Any]:
    """The leaves of nested tuples, lists and dicts."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]
