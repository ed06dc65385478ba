"""A small progress reporter for the export driver: one line per stage with its
time, written only to a terminal (never into logs or pipes unless verbose),
silent with quiet=True.

    progress = Progress(quiet=False)
    with progress.stage("frontend"):
        ...
    progress.done()                       # "  total 3.2 s"
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, quiet: bool = False, verbose: bool = False, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        tty = bool(isatty and isatty())
        self.enabled = not quiet and (tty or verbose)
        self._tty = tty
        self._start = time.perf_counter()
        self.times: dict[str, float] = {}  # stage name -> seconds (always recorded)
        # Build counters (compiles, cache_hits, cache_misses) and times inside
        # a stage (torch_export, within frontend), printed by done().
        self.counters: dict[str, int] = {}
        self.inner_times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Times the block as stage |name|; prints "name ... 1.23 s"."""
        if self.enabled and self._tty:
            self.stream.write(f"  {name} ...")
            self.stream.flush()
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            if self.enabled and self._tty:
                self.stream.write(" failed\n")
                self.stream.flush()
            raise
        seconds = time.perf_counter() - start
        self.times[name] = self.times.get(name, 0.0) + seconds
        if self.enabled:
            line = f" {seconds:.2f} s\n" if self._tty else f"  {name} ... {seconds:.2f} s\n"
            self.stream.write(line)
            self.stream.flush()

    def done(self) -> None:
        self._total = time.perf_counter() - self._start
        if self.enabled:
            for name, seconds in self.inner_times.items():
                self.stream.write(f"  {name} {seconds:.2f} s (within its stage)\n")
            if self.counters:
                text = ", ".join(f"{k} {v}" for k, v in self.counters.items())
                self.stream.write(f"  {text}\n")
            self.stream.write(f"  total {self._total:.2f} s\n")
            self.stream.flush()

    def summary(self) -> dict[str, object]:
        """Stage times, the total and the counters, for --stats-json."""
        total = getattr(self, "_total", time.perf_counter() - self._start)
        return {"stages": dict(self.times), "total": total, **self.inner_times, **self.counters}
