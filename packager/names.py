"""Archive paths: the package layout, and the rules that keep names safe to extract."""

from __future__ import annotations

import re

ALIGNMENT = 64  # every entry's data starts at a file offset that is a multiple of this

ARCHIVE_FORMAT = "aotc"  # content of <root>/archive_format (AOTInductor writes "pt2")
ARCHIVE_VERSION = "1"  # content of <root>/archive_version: the layout version

MANIFEST = "manifest.json"
LIBRARY = "model.so"

# One path component written by aotc: model names, the root, weight entry names.
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def is_safe_component(name: str) -> bool:
    return _COMPONENT.fullmatch(name) is not None


def sanitize(name: str) -> str:
    """|name| reduced to a safe component: other characters become '_'."""
    out = _BAD_CHAR.sub("_", name)[:128]
    if not out or not is_safe_component(out):
        out = ("_" + out)[:128]
    return out


def path_problem(path: object) -> str | None:
    """Why |path| is unsafe as an archive path (or a relative one), else None.

    Refuses what could escape an extraction directory or mean different files on
    different systems: absolute paths, drive letters, backslashes, '.', '..', empty
    components, control characters.
    """
    if not isinstance(path, str) or not path:
        return "empty or not a string"
    if path.startswith("/"):
        return "absolute path"
    if "\\" in path:
        return "backslash in path"
    if re.match(r"[A-Za-z]:", path):
        return "drive letter"
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return "control character"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"component {part!r} not allowed"
    return None


def check_relpath(path: object, field: str) -> str:
    problem = path_problem(path)
    if problem:
        raise ValueError(f"{field}: unsafe path {path!r}: {problem}")
    assert isinstance(path, str)
    return path


class Layout:
    """Where each part of a package lives, for one root folder name."""

    def __init__(self, root: str) -> None:
        self.root = root

    @property
    def archive_format(self) -> str:
        return f"{self.root}/archive_format"

    @property
    def archive_version(self) -> str:
        return f"{self.root}/archive_version"

    def model_dir(self, model: str) -> str:
        return f"{self.root}/data/aotc/{model}/"

    def manifest(self, model: str) -> str:
        return self.model_dir(model) + MANIFEST

    def kernels_dir(self, model: str) -> str:
        return self.model_dir(model) + "kernels/"

    def weights_dir(self, model: str) -> str:
        return f"{self.root}/data/weights/{model}/"

    def samples_dir(self, model: str) -> str:
        return f"{self.root}/data/sample_inputs/{model}/"

    def model_dirs(self, model: str) -> tuple[str, str, str]:
        """The three folders that hold a model's entries."""
        return self.model_dir(model), self.weights_dir(model), self.samples_dir(model)
