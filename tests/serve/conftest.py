"""Fixtures of the serve/demo tests: one SceneParser over the shared tiny random model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_parser(tiny_model_dir):
    """The tiny random model behind the real API, with short answers so tests stay fast."""
    from sceneparser.serve.jobs import load_parser

    return load_parser(str(tiny_model_dir), max_new_tokens=12, batch_size=8)
