"""`sceneparser parse --threads`: the default chosen by benchmarks/bench_threads.py (issue 17)."""

from __future__ import annotations

import argparse

import pytest

from sceneparser.commands import parse as P
from sceneparser.errors import InputError


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    P.add_arguments(ap)
    return ap.parse_args(["img.jpg", *argv])


def test_one_thread_with_the_default_model_torch_default_with_another():
    assert P._threads(_args()) == 1
    assert P._threads(_args("--model", "some/dir")) is None
    assert P._threads(_args("--threads", "3")) == 3
    assert P._threads(_args("--threads", "0")) is None
    with pytest.raises(InputError):
        P._threads(_args("--threads", "-1"))


def test_help_documents_the_measurement():
    ap = argparse.ArgumentParser()
    P.add_arguments(ap)
    text = next(a.help for a in ap._actions if "--threads" in a.option_strings)
    assert "bench_threads.py" in text and "THREADS_NUMBERS" not in text
