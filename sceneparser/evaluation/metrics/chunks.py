"""Scoring a large answer file in several processes: line-aligned byte ranges, forked children.

The file is cut into ``workers`` byte ranges, each starting at a line start (just after a
``\\n``, so Python's text-mode line splitting is the same inside every range). The calling
process scores the first range while forked children score the others; each child sends back
its metric (pickled) and the problems of its lines, numbered within its range. The caller then
merges the metrics (:meth:`MetricBase.merge`, exact: every accumulator is a count) and renumbers
the children's lines once it knows how many lines came before. Platforms without ``fork`` score
in one process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from typing import Callable

PARALLEL_MIN_BYTES = 16 << 20  # smaller files are scored in one process (forking costs more than it saves)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def line_aligned_starts(path, workers: int) -> list[int]:
    """``[0, s1, ...]``: where each of up to ``workers`` ranges starts (``[0]``: one process)."""
    size = os.path.getsize(path)
    if workers < 2 or size < PARALLEL_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        return [0]
    starts = [0]
    with open(path, "rb") as f:
        for k in range(1, workers):
            f.seek(max(starts[-1], size * k // workers))
            f.readline()  # to the end of the line the cut falls in
            pos = f.tell()
            if pos >= size:
                break
            if pos > starts[-1]:
                starts.append(pos)
    return starts


class Child:
    """``work()`` run in a forked process; :meth:`result` returns its value or raises its exception."""

    def __init__(self, work: Callable[[], object]):
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child_main, args=(send, work), daemon=True)
        self._proc.start()
        send.close()

    def result(self):
        try:
            ok, value = pickle.loads(self._recv.recv_bytes())
        except EOFError:
            self._proc.join()
            raise RuntimeError(f"metrics worker process died (exit code {self._proc.exitcode})") from None
        self._proc.join()
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()


def _child_main(send, work) -> None:
    try:
        payload = pickle.dumps((True, work()), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            payload = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            payload = pickle.dumps((False, RuntimeError(f"metrics worker: {exc!r}")))
    send.send_bytes(payload)
    send.close()
