"""aotc: ahead-of-time compiler for PyTorch models (import aot)."""

__version__ = "0.1.0"
