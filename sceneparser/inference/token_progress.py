"""A one-line "tokens so far" indicator for generations that run past a few seconds.

The decode loop calls :meth:`TokenTicker.step` once per step with the number of sequences still
running; the ticker only adds to a counter and, at most twice a second once ``delay_s`` has
passed, rewrites one line on stderr (``generating: 812 tokens, 3 sequences, 41.2 tokens/s``).
It never touches the tokens, so the results are the same with or without it. It stays silent
when stderr is not a terminal, outside the main thread (servers), while another progress bar
(tqdm) is on screen, or when ``SCENEPARSER_NO_PROGRESS`` is set; the line is cleared at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time

DELAY_S = 3.0
INTERVAL_S = 0.5


def _wanted(stream) -> bool:
    if os.environ.get("SCENEPARSER_NO_PROGRESS", "") not in ("", "0"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    tqdm_cls = sys.modules.get("tqdm").tqdm if "tqdm" in sys.modules else None
    return not (tqdm_cls is not None and getattr(tqdm_cls, "_instances", None))


class TokenTicker:
    """Counts generated tokens; shows them once a generation has run for ``delay_s`` seconds."""

    __slots__ = ("stream", "delay_s", "t0", "next_t", "tokens", "shown", "enabled")

    def __init__(self, stream=None, *, delay_s: float = DELAY_S, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.t0 = time.perf_counter()
        self.next_t = self.t0 + delay_s
        self.tokens = 0
        self.shown = False
        self.enabled = enabled  # None: decided when the delay has passed

    def step(self, running: int) -> None:
        """One decode step produced ``running`` tokens."""
        self.tokens += running
        now = time.perf_counter()
        if now < self.next_t:
            return
        self.next_t = now + INTERVAL_S
        if self.enabled is None:
            self.enabled = _wanted(self.stream)
        if not self.enabled:
            self.next_t = float("inf")
            return
        rate = self.tokens / (now - self.t0)
        self.stream.write(f"\rgenerating: {self.tokens} tokens, {running} sequence{'s' if running != 1 else ''}"
                          f" running, {rate:.1f} tokens/s\033[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Clear the line (if anything was shown)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
