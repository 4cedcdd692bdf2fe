"""Shared pytest configuration and session fixtures.

Fixtures that build models or data call the package's own public functions, so they also
exercise them. Keep them small: the whole suite must stay well under 30 minutes on 2 cores.
"""

from __future__ import annotations

import os

import pytest

# Nothing in the test-suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic dataset (train.jsonl, val.jsonl, images, masks) in the benchmark format."""
    from sceneparser.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, num_images=12, seed=1234, image_size=(160, 120), val_fraction=0.25)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A complete tiny random model directory that SceneParser.from_pretrained can load."""
    from sceneparser.model.loading import save_model_dir
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    out = tmp_path_factory.mktemp("tiny_model")
    save_model_dir(model, processor, out)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """An ASGI app served by uvicorn in a thread on a free loopback port (a context manager)."""

    def __init__(self, app, port: int | None = None):
        import threading

        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        import time

        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def unused_port():
    """``unused_port()``: a loopback port nothing listens on (yet)."""
    return free_port


@pytest.fixture(scope="session")
def live_server():
    """``live_server(app)``: a context manager serving ``app`` on loopback (uvicorn in a thread)."""
    return LiveServer
