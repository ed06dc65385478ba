"""Run many groups of cases over worker processes.

Each worker is a spawned Python process (torch, op_db and the registry
loaded once) that takes one task at a time: the (op, sample) pairs of one
dtype to check together (check.py). A worker that dies (a crash in
generated code) or runs past the time limit is replaced; its task is split
into single samples and run again, so a crash or a hang is pinned on the one
sample that causes it and costs the sweep nothing else.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from .cases import CaseId
from .check import CRASH, EAGER_ERROR, TIMEOUT, Result


@dataclass(frozen=True)
class Task:
    """Samples compiled together: (op, sample index) pairs of one dtype."""

    dtype: str
    samples: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        ops = sorted({op for op, _ in self.samples})
        if len(ops) == 1:
            indices = [i for _, i in self.samples]
            return f"{ops[0]} {self.dtype} #{min(indices)}-{max(indices)}"
        return f"{ops[0]} (+{len(ops) - 1} ops) {self.dtype}"

    def single(self) -> list[Task]:
        return [Task(self.dtype, (s,)) for s in self.samples]


def pack_tasks(counts: dict[tuple[str, str], int], chunk: int) -> list[Task]:
    """Tasks of at most |chunk| samples from {(op, dtype): sample count}: a
    large op alone in as many tasks as it needs, small ops packed together
    (one build per task is the sweep's main cost)."""
    tasks: list[Task] = []
    pending: dict[str, list[tuple[str, int]]] = {}
    for (op, dtype), count in sorted(counts.items()):
        samples = [(op, i) for i in range(count)]
        if count >= chunk // 2:
            tasks += [Task(dtype, tuple(samples[k : k + chunk])) for k in range(0, count, chunk)]
            continue
        bucket = pending.setdefault(dtype, [])
        if len(bucket) + count > chunk:
            tasks.append(Task(dtype, tuple(bucket)))
            bucket.clear()
        bucket += samples
    tasks += [Task(dtype, tuple(bucket)) for dtype, bucket in sorted(pending.items()) if bucket]
    return tasks


def _worker_main(conn: Connection, build_jobs: int) -> None:
    # One CPU thread per worker for eager and the runtime: the workers are
    # the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The samples exercise every corner of torch; its warnings and export's
    # graph dumps for data-dependent ops would bury the sweep's progress.
    warnings.simplefilter("ignore")
    logging.getLogger("torch").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)
    from ..options import ExportOptions
    from .cases import load_op_db, make_cases
    from .check import check_cases

    db = load_op_db()
    options = ExportOptions(provenance=False, build_jobs=build_jobs)
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        cases, results = [], []
        for op, indices in _by_op(task.samples).items():
            try:
                cases += make_cases(db[op], task.dtype, indices)
            except Exception as e:  # the sample generator itself failed
                reason = f"OpInfo's sample generator raised: {e}"
                results += [Result(CaseId(op, task.dtype, i), EAGER_ERROR, reason) for i in indices]
        results += check_cases(cases, options)
        conn.send([r.as_dict() for r in results])


def _by_op(samples: Sequence[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for op, index in samples:
        out.setdefault(op, []).append(index)
    return out


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: Task | None = None
    started: float = 0.0


class Sweep:
    """Runs tasks over |jobs| workers; |on_results| gets each task's results
    as they come."""

    def __init__(
        self,
        jobs: int,
        timeout_s: float,
        on_results: Callable[[Task, list[Result]], None],
        build_jobs: int = 1,
    ) -> None:
        self.jobs = max(1, jobs)
        self.timeout_s = timeout_s
        self.on_results = on_results
        self.build_jobs = build_jobs
        self._ctx = multiprocessing.get_context("spawn")

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, self.build_jobs), daemon=True)
        process.start()
        child.close()
        if parent.recv() != "ready":
            raise RuntimeError("coverage worker failed to start")
        return _Worker(process, parent)

    def run(self, tasks: Iterable[Task]) -> None:
        queue: deque[Task] = deque(tasks)
        workers: list[_Worker] = []
        try:
            while queue or any(w.task for w in workers):
                while queue and len([w for w in workers if w.task]) < self.jobs:
                    idle = next((w for w in workers if w.task is None), None)
                    if idle is None:
                        idle = self._start_worker()
                        workers.append(idle)
                    idle.task, idle.started = queue.popleft(), time.monotonic()
                    idle.conn.send(idle.task)
                busy = [w for w in workers if w.task]
                ready = wait([w.conn for w in busy], timeout=1.0)
                for w in busy:
                    if w.conn in ready:
                        self._receive(w, queue, workers)
                    elif time.monotonic() - w.started > self.timeout_s:
                        self._lose(w, queue, workers, TIMEOUT, f"over {self.timeout_s:.0f} s")
        finally:
            for w in workers:
                _stop(w)

    def _receive(self, w: _Worker, queue: deque[Task], workers: list[_Worker]) -> None:
        task = w.task
        assert task is not None
        try:
            payload = w.conn.recv()
        except (EOFError, OSError):
            w.process.join(5)
            code = w.process.exitcode
            self._lose(w, queue, workers, CRASH, f"the worker died (exit code {code})")
            return
        w.task = None
        self.on_results(task, [Result.from_dict(d) for d in payload])

    def _lose(
        self, w: _Worker, queue: deque[Task], workers: list[_Worker], status: str, why: str
    ) -> None:
        """|w| crashed or hung: its task again one sample at a time, or, for a
        single sample, that sample's result."""
        task = w.task
        assert task is not None
        _stop(w)
        workers.remove(w)
        if len(task.samples) > 1:
            queue.extendleft(reversed(task.single()))
            return
        op, index = task.samples[0]
        results = [Result(CaseId(op, task.dtype, index), status, why)]
        self.on_results(task, results)


def _stop(w: _Worker) -> None:
    if w.process.is_alive():
        try:
            w.conn.send(None)
        except OSError:
            pass
        w.process.join(1)
    if w.process.is_alive():
        w.process.kill()
        w.process.join()
    w.conn.close()


def order_by_size(tasks: Sequence[Task]) -> list[Task]:
    """Largest tasks first, so the last ones to finish are short."""
    return sorted(tasks, key=lambda t: -len(t.samples))
