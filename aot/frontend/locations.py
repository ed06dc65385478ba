"""Where a graph node comes from: its model.py line and a one-line description.

[Note: stack traces] torch.export records node.meta["stack_trace"] as a
traceback-style string, outermost frame first:

    File "/path/model.py", line 16, in forward
        return self.fc2(self.norm(self.act(self.fc1(x))))
    File ".../torch/nn/modules/linear.py", line 134, in forward
        return F.linear(input, self.weight, self.bias)

For module internals the innermost frame is inside torch/nn, so the location
we report is the innermost frame inside the user's model file (or, for a
module compiled from memory, the innermost frame outside the torch package;
for a model that is a torch module itself, the innermost frame). Decompositions
copy the stack trace of the node they replace; nodes without one (parameters,
some export bookkeeping) report "(no stack trace)".
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

NO_STACK_TRACE = "(no stack trace)"
_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>.+?)\s*$')
_MAX_ARG_CHARS = 40


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    code: str  # the source line, stripped ("" when unknown)


def parse_stack_trace(stack_trace: str | None) -> list[Frame]:
    """The frames of a node's stack_trace, outermost first."""
    frames: list[Frame] = []
    if not stack_trace:
        return frames
    lines = stack_trace.splitlines()
    for i, text in enumerate(lines):
        match = _FRAME_RE.match(text)
        if match is None:
            continue
        code = ""
        if i + 1 < len(lines) and _FRAME_RE.match(lines[i + 1]) is None:
            code = lines[i + 1].strip()
        line = int(match["line"])
        if not code:
            code = linecache.getline(match["file"], line).strip()
        frames.append(Frame(match["file"], line, match["fn"], code))
    return frames


@cache
def _realpath(path: str) -> str:
    return os.path.realpath(path)


@cache
def _torch_dir() -> str:
    return _realpath(os.path.dirname(torch.__file__)) + os.sep


def in_torch(frame: Frame) -> bool:
    """Whether |frame| is in the torch package's own code."""
    return _realpath(frame.file).startswith(_torch_dir())


def user_frame(frames: list[Frame], source_path: Path | str | None) -> Frame | None:
    """The innermost frame in |source_path|; else the innermost frame outside
    the torch package (a module compiled from memory has no model file); else
    the innermost frame."""
    if source_path is not None:
        wanted = _realpath(str(source_path))
        for frame in reversed(frames):
            if _realpath(frame.file) == wanted:
                return frame
    for frame in reversed(frames):
        if not in_torch(frame):
            return frame
    # A model that is a torch module itself (nn.TransformerEncoderLayer): the
    # innermost frame still names the line of torch that made the node.
    return frames[-1] if frames else None


def module_source_file(module: torch.nn.Module) -> Path | None:
    """The file that defines |module|'s class: the "model file" of a module
    compiled from memory, for its locations and provenance. None for torch's
    own modules and for classes without a file (defined in exec'd code)."""
    try:
        path = inspect.getsourcefile(type(module))
    except (TypeError, OSError):
        return None
    if path is None or not os.path.isfile(path) or _realpath(path).startswith(_torch_dir()):
        return None
    return Path(path)


def format_frame(frame: Frame, source_path: Path | str | None = None) -> str:
    """Formats |frame| as "model.py:23 (x = self.fc(x))": the bare file name
    for a frame in the model file (or in any user file when there is no model
    file), a path from the torch package ("torch/nn/modules/linear.py:134
    (...)") for torch's own code, the full path otherwise."""
    real = _realpath(frame.file)
    torch_dir = _torch_dir()
    if real.startswith(torch_dir):
        name = "torch/" + real[len(torch_dir) :]
    elif source_path is None or real == _realpath(str(source_path)):
        name = os.path.basename(frame.file)
    else:
        name = frame.file
    code = f" ({frame.code})" if frame.code else ""
    return f"{name}:{frame.line}{code}"


def node_location(node: torch.fx.Node, source_path: Path | str | None) -> str:
    """Where |node| comes from, as "model.py:23 (x = self.fc(x))": the
    innermost frame of its stack trace inside |source_path| (user_frame has
    the fallbacks); "(no stack trace)" when it has none."""
    frames = parse_stack_trace(node.meta.get("stack_trace"))
    frame = user_frame(frames, source_path)
    if frame is None:
        return NO_STACK_TRACE
    return format_frame(frame, source_path)


def target_name(target: Any) -> str:
    """The name of a node's target: "aten.addmm.default" for an aten
    overload, "operator.getitem" for a Python callable, else the string."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if callable(target):
        module = getattr(target, "__module__", None) or ""
        module = module.removeprefix("_")  # _operator -> operator
        qualname = getattr(target, "__qualname__", repr(target))
        return f"{module}.{qualname}" if module else qualname
    return str(target)


def describe_value(value: Any) -> str:
    """A FakeTensor as "float32[8, 16]"; tuples of them in parentheses."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"{dtype}[{', '.join(str(s) for s in value.shape)}]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe_value(v) for v in value) + ")"
    return str(value)


def _describe_arg(arg: Any) -> str:
    if isinstance(arg, torch.fx.Node):
        return arg.name
    if isinstance(arg, (tuple, list)):
        return "[" + ", ".join(_describe_arg(a) for a in arg) + "]"
    text = str(arg) if isinstance(arg, torch.dtype) else repr(arg)
    return text if len(text) <= _MAX_ARG_CHARS else text[: _MAX_ARG_CHARS - 3] + "..."


def node_text(node: torch.fx.Node) -> str:
    """One line per node, as graph text: "addmm_1 = aten.addmm.default(
    p_fc2_bias, getitem, permute_1) -> float32[8, 16]", that is name, op,
    arguments by node name, and the value's dtype and shape when known."""
    if node.op == "placeholder":
        head = f"{node.name} = placeholder"
    elif node.op == "get_attr":
        head = f"{node.name} = attribute {node.target!r}"
    else:
        args = [_describe_arg(a) for a in node.args]
        args += [f"{k}={_describe_arg(v)}" for k, v in node.kwargs.items()]
        name = "output" if node.op == "output" else target_name(node.target)
        head = f"{node.name} = {name}({', '.join(args)})"
    value = node.meta.get("val")
    return head if value is None or node.op == "output" else f"{head} -> {describe_value(value)}"


def describe_node(node: torch.fx.Node) -> str:
    """node_text() for error messages: "node 'addmm_1' = aten.addmm...."."""
    text = node_text(node)
    return f"node '{node.name}'{text[len(node.name) :]}"
