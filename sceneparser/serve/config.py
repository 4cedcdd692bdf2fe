"""The settings of one HTTP service: limits, batching, authentication (the ``sceneparser serve`` flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching settings of one server (the ``sceneparser serve`` flags)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 8
    max_wait_ms: float = 10.0
    max_arrival_wait_ms: float = 100.0
    max_queue_size: int = 32
    max_image_pixels: int = 4096 * 4096
    max_request_bytes: int = 20 * 1024 * 1024
    max_query_chars: int = 1000
    max_queries: int = 16
    request_timeout_s: float = 300.0
    model_name: str = "sceneparser"
    model_aliases: tuple[str, ...] = ()  # also accepted as "model" in chat requests (e.g. the --model path)
    exif_transpose: bool = False
    max_inflight: int | None = None  # requests in the server at once (default 2 x queue + batch)
    max_new_tokens: int = 2048  # the server's answer cap; a chat request's max_tokens can only lower it
    api_key: str | None = None  # when set, every route but /health needs "Authorization: Bearer <key>"
    body_timeout_s: float = 5.0  # reading a request body may take this long ...
    body_timeout_s_per_mb: float = 5.0  # ... plus this per MB (declared, else the cap): then 408
    max_drain_bytes: int = 128 * 1024 * 1024  # a refused body is read (and dropped) up to this, so the client sees the answer

    @property
    def inflight_limit(self) -> int:
        if self.max_inflight is not None:
            return self.max_inflight
        return 2 * self.max_queue_size + self.max_batch_size
