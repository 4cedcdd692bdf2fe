"""Worker processes that never outlive the process that started them.

``convert`` and ``synth`` fork worker pools. If the parent is killed with SIGKILL, no Python code
of the parent runs, so the pool cannot stop its workers: they were reparented to init and kept
running (and writing spill files) long after. :func:`die_with_parent` is the pools' initializer:

* on Linux it asks the kernel, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, to kill the worker the moment
  its parent dies. The kernel does it whatever way the parent dies, with no polling and no thread
  in the worker. (The signal comes when the parent *thread* that forked the worker ends; the pools
  here are started and fed from the main thread, whose end is the process's end.)
* elsewhere (macOS, or a Linux without a usable libc) a daemon thread polls ``os.getppid()`` twice
  a second and exits the worker with ``os._exit`` when the parent has changed.

Either way the worker also checks once, right after arming, that its parent is still the one that
started it: a parent that died between the fork and the ``prctl`` call sends no signal.

Workers hold nothing worth saving (their spill files live in the writer's temporary folder,
which the next run removes), so an immediate SIGKILL is the right end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.5


def _arm_pdeathsig() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(_POLL_S)


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when process ``parent_pid`` (its parent) dies."""
    if not _arm_pdeathsig():
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the watch was armed
        os._exit(1)


__all__ = ["die_with_parent"]
