"""Python binding to the aotc C++ runtime (ctypes over the C API in aotc.h).

    import aot.runtime
    model = aot.runtime.load("model.pt2")          # the package's only model, on CPU
    (y,) = model(x)                                 # always a tuple of torch tensors

[Note: zero-copy binding]
Inputs reach the runtime as views of the caller's tensors (data_ptr, real
sizes and strides); the runtime copies non-contiguous ones itself and writes
mutated inputs back into the caller's memory. Outputs are torch tensors this
module allocates from the sizes ``aotc_model_plan`` gives, then filled in place
by ``aotc_model_run``: no copy on either side.

[Note: who validates]
Python checks only what ctypes needs to build a view (a torch.Tensor, a dtype
and device aotc can name, rank <= 16). Everything else (input count, dtype,
shape, device, ranges) is checked by the C runtime, so C++ and Python users get
the same messages, raised here as ``AotcError`` with the runtime's message
verbatim.

[Note: threads]
ctypes releases the GIL around every call into libaotc, and nothing in this
module takes a lock on the run path, so runs from several Python threads on one
model overlap as they do in C++ (models that mutate state are serialised by the
runtime, see docs/ABI.md). ``close()`` must not race a run on the same model.

torch is imported lazily inside functions: importing this module does not
import torch.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "AotcError",
    "LoadedModel",
    "Package",
    "TensorSpec",
    "library_path",
    "load",
    "open_package",
    "set_library_path",
]

MAX_DIMS = 16  # AOTC_MAX_DIMS
_API_MAJOR = 1  # AOTC_API_VERSION_MAJOR this binding is written against

# aotc_dtype_e, by torch dtype name (torch.float32 -> "float32").
DTYPE_CODES: dict[str, int] = {
    "float32": 0,
    "float16": 1,
    "bfloat16": 2,
    "float64": 3,
    "int8": 4,
    "uint8": 5,
    "int16": 6,
    "int32": 7,
    "int64": 8,
    "bool": 9,
}
DTYPE_NAMES: dict[int, str] = {code: name for name, code in DTYPE_CODES.items()}

_DEVICE_CPU = 0  # aotc_device_type_e
_DEVICE_CUDA = 1

_LIBRARY_LOADING = {"auto": 0, "memfd": 1, "tempfile": 2}  # aotc_library_loading_e


class AotcError(Exception):
    """An error reported by the aotc runtime.

    ``code`` is the status code's name ("INVALID_ARGUMENT", "CORRUPT_PACKAGE", ...),
    ``code_value`` its number (aotc_status_code_e) and ``message`` the runtime's
    message, verbatim; ``str(error)`` is the message.
    """

    def __init__(self, code: str, message: str, code_value: int = -1) -> None:
        super().__init__(message)
        self.code = code
        self.code_value = code_value
        self.message = message

    def __repr__(self) -> str:
        return f"AotcError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class TensorSpec:
    """Static spec of one model input or output.

    ``shape`` holds an int per static dim and the dim's expression string
    ("s0", "2*s0") per dynamic dim; ``ranges`` holds (min, max) per dim, max
    None when unbounded. ``dtype`` is a torch dtype name ("float32").
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    mutated: bool = False
    ranges: tuple[tuple[int, int | None], ...] = ()

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    @property
    def is_dynamic(self) -> bool:
        return any(isinstance(d, str) for d in self.shape)

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


# --------------------------------------------------------------------------- #
# ctypes declarations (mirror aotc.h)                                          #
# --------------------------------------------------------------------------- #


class _TensorView(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device_type", ctypes.c_int32),
        ("device_index", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("sizes", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class _TensorSpec(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("sizes", ctypes.c_int64 * MAX_DIMS),
        ("dim_exprs", ctypes.c_char_p * MAX_DIMS),
        ("dim_min", ctypes.c_int64 * MAX_DIMS),
        ("dim_max", ctypes.c_int64 * MAX_DIMS),
        ("mutated", ctypes.c_int32),
    ]


class _PackageOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("verify_weights", ctypes.c_int32),
        ("library_loading", ctypes.c_int32),
        ("temp_dir", ctypes.c_char_p),
    ]


class _ModelOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("model_name", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
    ]


class _RunOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("stream", ctypes.c_void_p),
        ("num_threads", ctypes.c_int32),
    ]


_p = ctypes.c_void_p
_size = ctypes.c_size_t
_i64p = ctypes.POINTER(ctypes.c_int64)
_i64pp = ctypes.POINTER(_i64p)
_VIEWS = ctypes.POINTER(_TensorView)

# name: (restype, argtypes). Functions returning aotc_status_t* return _p.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "aotc_status_code": (ctypes.c_int, [_p]),
    "aotc_status_message": (ctypes.c_char_p, [_p]),
    "aotc_status_free": (None, [_p]),
    "aotc_status_code_name": (ctypes.c_char_p, [ctypes.c_int]),
    "aotc_api_version": (ctypes.c_uint32, []),
    "aotc_model_abi_version": (ctypes.c_uint32, []),
    "aotc_dtype_name": (ctypes.c_char_p, [ctypes.c_int]),
    "aotc_package_options_initialize": (None, [ctypes.POINTER(_PackageOptions)]),
    "aotc_package_open_file": (
        _p,
        [ctypes.c_char_p, ctypes.POINTER(_PackageOptions), ctypes.POINTER(_p)],
    ),
    "aotc_package_open_memory": (
        _p,
        [ctypes.c_void_p, _size, ctypes.POINTER(_PackageOptions), ctypes.POINTER(_p)],
    ),
    "aotc_package_release": (None, [_p]),
    "aotc_package_model_count": (_size, [_p]),
    "aotc_package_model_name": (ctypes.c_char_p, [_p, _size]),
    "aotc_model_options_initialize": (None, [ctypes.POINTER(_ModelOptions)]),
    "aotc_model_load": (_p, [_p, ctypes.POINTER(_ModelOptions), ctypes.POINTER(_p)]),
    "aotc_model_release": (None, [_p]),
    "aotc_model_input_count": (_size, [_p]),
    "aotc_model_output_count": (_size, [_p]),
    "aotc_model_input_spec": (_p, [_p, _size, ctypes.POINTER(_TensorSpec)]),
    "aotc_model_output_spec": (_p, [_p, _size, ctypes.POINTER(_TensorSpec)]),
    "aotc_model_metadata_json": (ctypes.c_char_p, [_p]),
    "aotc_model_name": (ctypes.c_char_p, [_p]),
    "aotc_model_device": (ctypes.c_char_p, [_p]),
    "aotc_model_plan": (_p, [_p, _i64pp, _size, _i64pp, _size]),
    "aotc_run_options_initialize": (None, [ctypes.POINTER(_RunOptions)]),
    "aotc_model_run": (_p, [_p, _VIEWS, _size, _VIEWS, _size, ctypes.POINTER(_RunOptions)]),
    "aotc_model_run_alloc": (
        _p,
        [_p, _VIEWS, _size, ctypes.POINTER(_RunOptions), ctypes.POINTER(_p), _size],
    ),
    "aotc_tensor_release": (None, [_p]),
    "aotc_model_update_constants": (
        _p,
        [_p, ctypes.POINTER(ctypes.c_char_p), _VIEWS, _size],
    ),
    "aotc_model_constant_count": (_size, [_p]),
    "aotc_model_constant_name": (ctypes.c_char_p, [_p, _size]),
}

# --------------------------------------------------------------------------- #
# Locating and loading libaotc.so                                              #
# --------------------------------------------------------------------------- #

_NATIVE_DIR = Path(__file__).resolve().parent / "_native"
_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path_override: Path | None = None


def _native_dirs() -> list[Path]:
    """aot/_native next to this module (an installed wheel), then any other
    aot/_native on sys.path: running from a source checkout, the checkout's
    aot is imported but the runtime lives in the pip-installed copy."""
    dirs = [_NATIVE_DIR]
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "aot" / "_native"
        if candidate not in dirs and candidate.is_dir():
            dirs.append(candidate)
    return dirs


def _default_library_path() -> Path:
    """<native dir>/<libdir>/libaotc.so as the wheel installs it (CMake's
    AOTC_INSTALL_ROOT); the first existing candidate, else the canonical one."""
    for native in _native_dirs():
        for libdir in ("lib", "lib64"):
            d = native / libdir
            candidates = [d / "libaotc.so", d / "libaotc.so.1"]
            if d.is_dir():
                candidates.extend(sorted(d.glob("libaotc.so.*")))
            for c in candidates:
                if c.is_file():
                    return c
    return _NATIVE_DIR / "lib" / "libaotc.so"


def set_library_path(path: str | os.PathLike[str]) -> None:
    """Use the libaotc.so at |path| instead of the installed one.

    Must be called before the first load; calling it again with the same path
    afterwards is allowed (a no-op).
    """
    global _lib_path_override
    new = Path(path).resolve()
    with _lib_lock:
        if _lib is not None and _lib_path_override != new:
            raise RuntimeError(
                f"aotc runtime library already loaded from {library_path()}; "
                "set_library_path() must be called before the first load"
            )
        _lib_path_override = new


def library_path() -> Path:
    """The libaotc.so this module uses (or will use on first load):
    set_library_path()'s, else $AOTC_RUNTIME_LIBRARY, else the installed one."""
    if _lib_path_override is not None:
        return _lib_path_override
    chosen = os.environ.get("AOTC_RUNTIME_LIBRARY")
    return Path(chosen).resolve() if chosen else _default_library_path()


def _library() -> ctypes.CDLL:
    global _lib
    lib = _lib
    if lib is not None:
        return lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"aotc runtime library not found at {path}; reinstall with pip install ."
            )
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise OSError(f"cannot load the aotc runtime library {path}: {e}") from e
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as e:
                raise OSError(f"{path} does not export {name}: is it an aotc runtime?") from e
            fn.restype = restype
            fn.argtypes = argtypes
        version = lib.aotc_api_version()
        if version >> 16 != _API_MAJOR:
            raise OSError(
                f"{path} implements aotc C API {version >> 16}.{version & 0xFFFF}, "
                f"this binding needs {_API_MAJOR}.x"
            )
        _lib = lib
        return lib


def _check(lib: ctypes.CDLL, status: int | None) -> None:
    """Raises AotcError for a non-NULL aotc_status_t*, freeing it."""
    if not status:
        return
    try:
        code = lib.aotc_status_code(status)
        message = (lib.aotc_status_message(status) or b"").decode("utf-8", "replace")
        name = (lib.aotc_status_code_name(code) or b"UNKNOWN").decode()
    finally:
        lib.aotc_status_free(status)
    raise AotcError(name, message, code)


def _str(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b is not None else ""


# --------------------------------------------------------------------------- #
# Tensors <-> views                                                            #
# --------------------------------------------------------------------------- #


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


_torch_codes: dict[Any, int] = {}  # torch.dtype -> aotc code, filled on first use


def _dtype_code(dtype: Any) -> int | None:
    code = _torch_codes.get(dtype)
    if code is None:
        code = DTYPE_CODES.get(_dtype_name(dtype))
        if code is not None:
            _torch_codes[dtype] = code
    return code


def _fill_view(v: _TensorView, t: Any, what: Any) -> None:
    """Points view |v| at torch tensor |t|'s memory (no copy). |what()| names
    the tensor in errors (built only when one is raised)."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what()}: expected a torch.Tensor, got {type(t).__name__}")
    code = _dtype_code(t.dtype)
    if code is None:
        supported = ", ".join(DTYPE_CODES)
        raise AotcError(
            "UNSUPPORTED",
            f"{what()}: dtype {_dtype_name(t.dtype)} is not supported by aotc ({supported})",
            18,
        )
    if t.layout != torch.strided:
        raise AotcError("UNSUPPORTED", f"{what()}: {t.layout} tensors are not supported", 18)
    dev = t.device
    if dev.type == "cpu":
        device_type, device_index = _DEVICE_CPU, 0
    elif dev.type == "cuda":
        device_type, device_index = _DEVICE_CUDA, dev.index or 0
    else:
        raise AotcError(
            "UNSUPPORTED", f"{what()}: tensors on {dev.type} are not supported (cpu, cuda)", 18
        )
    ndim = t.dim()
    if ndim > MAX_DIMS:
        raise AotcError(
            "INVALID_ARGUMENT", f"{what()}: rank {ndim} exceeds the maximum of {MAX_DIMS}", 16
        )
    v.data = t.data_ptr()
    v.dtype = code
    v.device_type = device_type
    v.device_index = device_index
    v.ndim = ndim
    v.sizes[:ndim] = t.shape
    v.strides[:ndim] = t.stride()


def _views(tensors: Sequence[Any], kind: str, specs: Sequence[TensorSpec]) -> Any:
    """A C array of views of |tensors| (inputs or outputs, named after |specs|)."""
    arr = (_TensorView * max(len(tensors), 1))()
    for i, t in enumerate(tensors):

        def what(i: int = i) -> str:
            return f'{kind} {i} "{specs[i].name}"' if i < len(specs) else f"{kind} {i}"

        _fill_view(arr[i], t, what)
    return arr


def _spec_from_c(s: _TensorSpec) -> TensorSpec:
    shape: list[int | str] = []
    ranges: list[tuple[int, int | None]] = []
    for d in range(s.ndim):
        if s.sizes[d] >= 0:
            shape.append(int(s.sizes[d]))
        else:
            shape.append(_str(s.dim_exprs[d]) or f"d{d}")
        hi = int(s.dim_max[d])
        ranges.append((int(s.dim_min[d]), None if hi == (1 << 63) - 1 else hi))
    return TensorSpec(
        name=_str(s.name),
        dtype=DTYPE_NAMES.get(s.dtype, f"unknown({s.dtype})"),
        shape=tuple(shape),
        mutated=bool(s.mutated),
        ranges=tuple(ranges),
    )


# --------------------------------------------------------------------------- #
# Package and model                                                            #
# --------------------------------------------------------------------------- #


def _package_options(
    lib: ctypes.CDLL, verify_weights: bool, library_loading: str, temp_dir: Any
) -> _PackageOptions:
    opts = _PackageOptions()
    lib.aotc_package_options_initialize(ctypes.byref(opts))
    opts.verify_weights = 1 if verify_weights else 0
    if library_loading not in _LIBRARY_LOADING:
        raise ValueError(
            f"library_loading must be one of {', '.join(_LIBRARY_LOADING)}, got {library_loading!r}"
        )
    opts.library_loading = _LIBRARY_LOADING[library_loading]
    if temp_dir is not None:
        opts.temp_dir = os.fsencode(temp_dir)
    return opts


def _buffer_pointer(source: bytes | bytearray | memoryview) -> tuple[Any, int]:
    """(pointer, size) of |source|'s bytes for a call that copies them; no
    copy here unless the buffer is read-only and not bytes, or not contiguous."""
    if isinstance(source, bytes):
        return (source or None), len(source)
    view = memoryview(source)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B")
    if view.nbytes == 0:
        return None, 0
    if view.readonly:
        return view.tobytes(), view.nbytes
    return (ctypes.c_char * view.nbytes).from_buffer(view), view.nbytes


_HandleT = TypeVar("_HandleT", bound="_CHandle")


class _CHandle:
    """Owns one reference to a C object and releases it once (close, ``with``,
    or garbage collection). Subclasses name the C release function."""

    _release_function = ""
    _handle: int | None = None

    def _live(self) -> int:
        h = self._handle
        if h is None:
            raise ValueError(f"{self._describe()} is closed")
        return h

    def _describe(self) -> str:
        return type(self).__name__

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Releases the C object (idempotent). Must not race another call on it."""
        h, self._handle = self._handle, None
        if h is not None and _lib is not None:
            getattr(_lib, self._release_function)(h)

    def __enter__(self: _HandleT) -> _HandleT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing useful to do
            pass


class Package(_CHandle):
    """An open .pt2 package (aotc_package_t). Thread-safe.

    Loaded models keep the package alive, so a Package may be closed as soon as
    its models are loaded.
    """

    _release_function = "aotc_package_release"

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        verify_weights: bool = True,
        library_loading: str = "auto",
        temp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._handle: int | None = None
        lib = _library()
        opts = _package_options(lib, verify_weights, library_loading, temp_dir)
        out = ctypes.c_void_p()
        if not isinstance(source, (str, os.PathLike)):
            data, size = _buffer_pointer(source)  # bytes or any buffer: the package itself
            st = lib.aotc_package_open_memory(data, size, ctypes.byref(opts), ctypes.byref(out))
            self.path: str | None = None
        else:
            path = os.fspath(source)
            st = lib.aotc_package_open_file(
                os.fsencode(path), ctypes.byref(opts), ctypes.byref(out)
            )
            self.path = path
        _check(lib, st)
        self._handle = out.value

    @property
    def model_names(self) -> list[str]:
        lib, h = _library(), self._live()
        return [
            _str(lib.aotc_package_model_name(h, i)) for i in range(lib.aotc_package_model_count(h))
        ]

    def load(self, model_name: str | None = None, device: str | None = None) -> LoadedModel:
        """Loads |model_name| (None: the only model) on |device| ("cpu", "cuda", "cuda:N")."""
        lib, h = _library(), self._live()
        opts = _ModelOptions()
        lib.aotc_model_options_initialize(ctypes.byref(opts))
        if model_name is not None:
            opts.model_name = model_name.encode()
        if device is not None:
            opts.device = str(device).encode()
        out = ctypes.c_void_p()
        _check(lib, lib.aotc_model_load(h, ctypes.byref(opts), ctypes.byref(out)))
        return LoadedModel(out.value)

    def _describe(self) -> str:
        return "the package"


def open_package(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    verify_weights: bool = True,
    library_loading: str = "auto",
    temp_dir: str | os.PathLike[str] | None = None,
) -> Package:
    """Opens a package from a path or from its bytes (copied by the runtime)."""
    return Package(
        source, verify_weights=verify_weights, library_loading=library_loading, temp_dir=temp_dir
    )


def load(
    path: str | os.PathLike[str] | bytes | bytearray | memoryview,
    model_name: str | None = None,
    device: str | None = None,
    **package_options: Any,
) -> LoadedModel:
    """Opens the package at |path| (or in bytes) and loads one model.

    ``package_options`` go to open_package (verify_weights, library_loading,
    temp_dir).
    """
    with open_package(path, **package_options) as pkg:
        return pkg.load(model_name, device)


class LoadedModel(_CHandle):
    """A model loaded by the runtime (aotc_model_t), ready to run.

    Calling it, ``model(*inputs)``, returns a tuple of torch tensors, one per
    output, even when the model has one output. Concurrent calls from several
    threads are safe and overlap. Release it with ``close()`` or a ``with``
    block; it is also released when garbage collected.
    """

    _release_function = "aotc_model_release"

    def __init__(self, handle: int) -> None:
        self._handle: int | None = handle
        lib = _library()
        self.name: str = _str(lib.aotc_model_name(handle))
        self.device: str = _str(lib.aotc_model_device(handle))
        self.input_specs: list[TensorSpec] = self._specs(lib, handle, "input")
        self.output_specs: list[TensorSpec] = self._specs(lib, handle, "output")
        self.metadata: dict[str, Any] = json.loads(
            _str(lib.aotc_model_metadata_json(handle)) or "{}"
        )
        self.constant_names: list[str] = [
            _str(lib.aotc_model_constant_name(handle, i))
            for i in range(lib.aotc_model_constant_count(handle))
        ]
        self._output_dtypes = [s.dtype for s in self.output_specs]
        self._input_ndims = [len(s.shape) for s in self.input_specs]
        # Outputs whose shapes are all static need no plan() call per run
        # (the run still checks the inputs).
        self._static_output_sizes: list[list[int]] | None = None
        if all(isinstance(d, int) for s in self.output_specs for d in s.shape):
            self._static_output_sizes = [list(s.shape) for s in self.output_specs]  # type: ignore[misc]

    @staticmethod
    def _specs(lib: ctypes.CDLL, handle: int, kind: str) -> list[TensorSpec]:
        count = getattr(lib, f"aotc_model_{kind}_count")(handle)
        getter = getattr(lib, f"aotc_model_{kind}_spec")
        specs = []
        for i in range(count):
            s = _TensorSpec()
            _check(lib, getter(handle, i, ctypes.byref(s)))
            specs.append(_spec_from_c(s))
        return specs

    def __repr__(self) -> str:
        ins = ", ".join(str(s) for s in self.input_specs)
        outs = ", ".join(str(s) for s in self.output_specs)
        state = "" if self._handle is not None else " closed"
        return f"<aotc LoadedModel {self.name!r} on {self.device}{state}: ({ins}) -> ({outs})>"

    # -- running ------------------------------------------------------------ #

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        return self.run(inputs)

    def run(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any] | None = None,
        num_threads: int = 0,
        stream: Any = None,
    ) -> tuple[Any, ...]:
        """Runs the model on |inputs| (torch tensors, not copied).

        |outputs|: tensors to write into (contiguous, the model's device, the
        output specs' dtypes, the sizes plan() gives); None allocates them.
        |num_threads|: CPU threads for this run (0: runtime default).
        |stream|: CUDA stream (an int handle or an object with .cuda_stream);
        None on a CUDA model means torch's current stream.
        Returns the outputs as a tuple.
        """
        lib, h = _library(), self._live()
        opts = self._run_options(lib, num_threads, stream)
        inputs = self._contiguous_on_gpu(list(inputs), opts.stream)
        in_views = _views(inputs, "input", self.input_specs)
        if outputs is None:
            outputs = self._allocate_outputs(lib, h, inputs, in_views, opts)
        else:
            outputs = list(outputs)
        out_views = _views(outputs, "output", self.output_specs)
        st = lib.aotc_model_run(
            h, in_views, len(inputs), out_views, len(outputs), ctypes.byref(opts)
        )
        _check(lib, st)
        return tuple(outputs)

    def _contiguous_on_gpu(self, inputs: list[Any], stream: int | None) -> list[Any]:
        """The CUDA runtime takes contiguous inputs only (docs/ABI.md 9.2): a
        strided CUDA tensor the model does not mutate is copied here, on the
        run's stream; one it mutates is passed on (and refused, since a copy
        would lose the write)."""
        if not self.device.startswith("cuda"):
            return inputs
        strided = [
            i
            for i, t in enumerate(inputs)
            if getattr(t, "is_cuda", False)
            and not t.is_contiguous()
            and i < len(self.input_specs)
            and not self.input_specs[i].mutated
        ]
        if not strided:
            return inputs
        import torch

        with torch.cuda.stream(torch.cuda.ExternalStream(stream or 0, device=self.device)):
            for i in strided:
                inputs[i] = inputs[i].contiguous()
        return inputs

    def _run_options(self, lib: ctypes.CDLL, num_threads: int, stream: Any) -> _RunOptions:
        opts = _RunOptions()
        lib.aotc_run_options_initialize(ctypes.byref(opts))
        opts.num_threads = int(num_threads)
        if stream is None and self.device.startswith("cuda"):
            import torch

            stream = torch.cuda.current_stream(self.device)
        if stream is not None:
            opts.stream = int(getattr(stream, "cuda_stream", stream))
        return opts

    def _allocate_outputs(
        self, lib: ctypes.CDLL, h: int, inputs: list[Any], in_views: Any, opts: _RunOptions
    ) -> list[Any]:
        import torch

        sizes = self._static_output_sizes or self._plan_views(lib, h, inputs, in_views)
        if sizes is None:
            # The inputs cannot be planned: let run_alloc report what is wrong
            # with them, with the runtime's full message (dtype, rank, shape).
            self._raise_input_error(lib, h, inputs, in_views, opts)
        return [
            torch.empty(s, dtype=getattr(torch, dt), device=self.device)
            for s, dt in zip(sizes, self._output_dtypes, strict=True)
        ]

    def _plan_views(
        self, lib: ctypes.CDLL, h: int, inputs: list[Any], in_views: Any
    ) -> list[list[int]] | None:
        """Output sizes for the inputs' sizes, or None when plan() refuses them."""
        if len(inputs) != len(self.input_specs):
            return None
        if any(in_views[i].ndim != n for i, n in enumerate(self._input_ndims)):
            return None
        try:
            return self._plan_sizes(lib, h, [in_views[i].sizes for i in range(len(inputs))])
        except AotcError:
            return None

    def _raise_input_error(
        self, lib: ctypes.CDLL, h: int, inputs: list[Any], in_views: Any, opts: _RunOptions
    ) -> None:
        n_out = len(self.output_specs)
        outs = (ctypes.c_void_p * max(n_out, 1))()
        st = lib.aotc_model_run_alloc(h, in_views, len(inputs), ctypes.byref(opts), outs, n_out)
        if not st:
            # plan() refused what run accepted: report plan's own error.
            for i in range(n_out):
                if outs[i]:
                    lib.aotc_tensor_release(outs[i])
            self.plan([tuple(in_views[i].sizes[: in_views[i].ndim]) for i in range(len(inputs))])
            raise AotcError("INTERNAL", "aotc_model_plan refused inputs that run accepted", 1)
        _check(lib, st)

    def _plan_sizes(self, lib: ctypes.CDLL, h: int, input_sizes: list[Any]) -> list[list[int]]:
        n_in, n_out = len(input_sizes), len(self.output_specs)
        in_ptrs = (_i64p * max(n_in, 1))()
        for i, s in enumerate(input_sizes):
            in_ptrs[i] = ctypes.cast(s, _i64p)
        out_arrays = [(ctypes.c_int64 * MAX_DIMS)() for _ in range(n_out)]
        out_ptrs = (_i64p * max(n_out, 1))()
        for i, a in enumerate(out_arrays):
            out_ptrs[i] = ctypes.cast(a, _i64p)
        _check(lib, lib.aotc_model_plan(h, in_ptrs, n_in, out_ptrs, n_out))
        return [
            list(a[: len(spec.shape)])
            for a, spec in zip(out_arrays, self.output_specs, strict=True)
        ]

    def plan(self, input_shapes: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
        """Output shapes for inputs of |input_shapes| (checks dims, ranges, relations)."""
        lib, h = _library(), self._live()
        shapes = [tuple(int(d) for d in s) for s in input_shapes]
        # aotc_model_plan takes no ranks: check them here, or it would read
        # past what the caller gave.
        for i, (shape, spec) in enumerate(zip(shapes, self.input_specs, strict=False)):
            if len(shape) != len(spec.shape):
                raise AotcError(
                    "INVALID_ARGUMENT",
                    f'input {i} "{spec.name}": expected {len(spec.shape)} dims, got {len(shape)}',
                    16,
                )
            if len(shape) > MAX_DIMS:  # only reachable with a spec over MAX_DIMS
                raise AotcError("INVALID_ARGUMENT", f"input {i}: rank above {MAX_DIMS}", 16)
        arrays = [(ctypes.c_int64 * MAX_DIMS)(*s) for s in shapes]
        return [tuple(s) for s in self._plan_sizes(lib, h, arrays)]

    # -- constants ---------------------------------------------------------- #

    def update_constants(self, constants: Mapping[str, Any]) -> None:
        """Swaps in a complete new set of constants: |constants| maps the name of
        every non-state constant (see ``constant_names``) to a tensor.

        The runtime copies the values (it needs contiguous host memory, so
        tensors on another device or with other strides are first copied to a
        contiguous CPU tensor here; dtype and shape are checked by the
        runtime). Runs in flight finish on the old set.
        """
        import torch

        lib, h = _library(), self._live()
        items = []
        for name, t in constants.items():
            if isinstance(t, torch.Tensor):
                t = t.detach().to("cpu").contiguous()
            items.append((str(name), t))
        names = (ctypes.c_char_p * max(len(items), 1))()
        values = (_TensorView * max(len(items), 1))()
        for i, (name, t) in enumerate(items):
            names[i] = name.encode()
            _fill_view(values[i], t, lambda name=name: f'constant "{name}"')
        # |items| holds the (possibly converted) tensors alive across the call.
        _check(lib, lib.aotc_model_update_constants(h, names, values, len(items)))

    # -- lifetime ----------------------------------------------------------- #

    def _describe(self) -> str:
        return f"model {self.name!r}"
