"""The "tokens so far" line of long generations, and quiet model loading."""

from __future__ import annotations

import io
import subprocess
import sys
import time

from sceneparser.inference.token_progress import TokenTicker


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_ticker_shows_tokens_after_the_delay_and_clears_the_line():
    out = _Tty()
    t = TokenTicker(out, delay_s=0.0)
    t.step(3)
    time.sleep(0.01)
    assert "generating: 3 tokens, 3 sequences running" in out.getvalue()
    t.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_ticker_is_silent_before_the_delay_and_off_a_terminal():
    out = _Tty()
    t = TokenTicker(out, delay_s=3600)
    for _ in range(100):
        t.step(2)
    t.close()
    assert out.getvalue() == "" and t.tokens == 200
    plain = io.StringIO()  # not a terminal (a log file)
    t = TokenTicker(plain, delay_s=0.0)
    t.step(1)
    t.close()
    assert plain.getvalue() == ""


def test_ticker_stays_silent_under_another_progress_bar():
    from tqdm import tqdm

    out = _Tty()
    with tqdm(total=1, file=io.StringIO()):
        t = TokenTicker(out, delay_s=0.0)
        t.step(1)
    assert out.getvalue() == ""


def test_loading_the_default_model_prints_nothing(tmp_path):
    code = ("from sceneparser.model.loading import default_model_dir, load_model_dir; "
            "load_model_dir(default_model_dir(), device='cpu')")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert quiet.stdout == "" and quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "SCENEPARSER_VERBOSE": "1"})
    assert "Loading weights" in loud.stderr
